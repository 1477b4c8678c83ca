package store

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wahaq/wahaq/internal/base"
)

// cancelActiveScript records that an operator canceled an active task from
// asynq's tools (`asynq task cancel`, asynqmon's cancel): the record becomes
// canceled and expires, its slot, dedup claim and batch count move. asynq
// itself puts the canceled task in its retry set; the start script and the
// reconciler see the canceled record and never run it again.
//
// KEYS[1] semaphore, KEYS[2] record, KEYS[3] batch, KEYS[4] dedup.
// ARGV[1] id, ARGV[2] now (ms), ARGV[3] last error, ARGV[4] result TTL (s).
// Returns 1 when canceled, 0 when the record was not active.
var cancelActiveScript = redis.NewScript(batchLua + `
redis.call('ZREM', KEYS[1], ARGV[1])
local old = redis.call('HGET', KEYS[2], 'state')
if old ~= 'active' then return 0 end
redis.call('HSET', KEYS[2], 'state', 'canceled', 'fin', ARGV[2], 'err', ARGV[3])
redis.call('HDEL', KEYS[2], 'next')
redis.call('EXPIRE', KEYS[2], ARGV[4])
if redis.call('GET', KEYS[4]) == ARGV[1] then redis.call('DEL', KEYS[4]) end
if redis.call('HGET', KEYS[2], 'batch') and redis.call('EXISTS', KEYS[3]) == 1 then
  batch_move(KEYS[3], old, 'canceled')
  batch_done(KEYS[3], ARGV[4])
end
return 1
`)

// CancelActive records an active task as canceled by an operator, with
// lastError saying so. It reports whether the record was active.
func (s *Store) CancelActive(ctx context.Context, id string, p base.Payload, lastError string, resultTTL time.Duration) (bool, error) {
	k := s.Keys(p.Instance)
	n, err := cancelActiveScript.Run(ctx, s.rdb,
		[]string{k.Slots(), k.Record(id), k.Batch(p.BatchID), k.Dedup(p.Session)},
		id, s.now().UnixMilli(), lastError, ttlSeconds(resultTTL)).Int()
	if err != nil {
		return false, fmt.Errorf("cancel active task %s: %w", id, err)
	}
	return n == 1, nil
}
