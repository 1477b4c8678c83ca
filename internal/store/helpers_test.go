package store_test

import (
	"time"

	"github.com/redis/go-redis/v9"
)

func redisZ(member string) redis.Z { return redisZAt(member, time.Now()) }

func redisZAt(member string, at time.Time) redis.Z {
	return redis.Z{Score: float64(at.UnixMilli()), Member: member}
}
