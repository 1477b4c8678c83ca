// Package redistest gives tests a real Redis to talk to.
//
// It connects to the server named by WAHAQ_TEST_REDIS_URL (default
// redis://127.0.0.1:6379/0). When nothing answers there it starts a
// throw-away redis-server on a free loopback port for the whole test binary,
// so the suite passes on a fresh machine that only has the redis-server
// binary. Each test gets its own namespace, so parallel tests and parallel
// packages share one server without seeing each other's keys or queues.
package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

var (
	once    sync.Once
	baseURL string
	initErr error
)

// URL returns the URL of the shared test Redis, starting one if needed.
func URL(tb testing.TB) string {
	tb.Helper()
	once.Do(func() { baseURL, initErr = resolve() })
	if initErr != nil {
		tb.Fatalf("redistest: no Redis for tests: %v", initErr)
	}
	return baseURL
}

// Client returns a client for the shared test Redis, closed when the test ends.
func Client(tb testing.TB) *redis.Client {
	tb.Helper()
	opt, err := redis.ParseURL(URL(tb))
	if err != nil {
		tb.Fatalf("redistest: %v", err)
	}
	c := redis.NewClient(opt)
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// Namespace returns a namespace unique to this test, for wahaq's key prefix and
// queue names. Keys under it are deleted when the test ends.
func Namespace(tb testing.TB) string {
	tb.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	ns := "t" + hex.EncodeToString(b[:])
	c := Client(tb)
	tb.Cleanup(func() { cleanup(c, ns) })
	return ns
}

func cleanup(c *redis.Client, ns string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, pattern := range []string{"*{" + ns + ":*", "*" + ns + ":*"} {
		iter := c.Scan(ctx, 0, pattern, 1000).Iterator()
		var batch []string
		for iter.Next(ctx) {
			batch = append(batch, iter.Val())
			if len(batch) == 500 {
				c.Unlink(ctx, batch...)
				batch = batch[:0]
			}
		}
		if len(batch) > 0 {
			c.Unlink(ctx, batch...)
		}
	}
	// asynq registers every queue name in this global set.
	members, _ := c.SMembers(ctx, "asynq:queues").Result()
	for _, m := range members {
		if len(m) > len(ns) && m[:len(ns)+1] == ns+":" {
			c.SRem(ctx, "asynq:queues", m)
		}
	}
}

func resolve() (string, error) {
	url := os.Getenv("WAHAQ_TEST_REDIS_URL")
	if url == "" {
		url = "redis://127.0.0.1:6379/0"
	}
	if ping(url) == nil {
		return url, nil
	}
	if os.Getenv("WAHAQ_TEST_REDIS_URL") != "" {
		return "", fmt.Errorf("WAHAQ_TEST_REDIS_URL=%s does not answer", url)
	}
	addr, err := StartServer()
	if err != nil {
		return "", err
	}
	return "redis://" + addr + "/0", nil
}

func ping(url string) error {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return err
	}
	opt.DialTimeout = 500 * time.Millisecond
	c := redis.NewClient(opt)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return c.Ping(ctx).Err()
}

// MustURL is URL for code without a testing.TB (runnable examples): it
// panics when no Redis can be had.
func MustURL() string {
	once.Do(func() { baseURL, initErr = resolve() })
	if initErr != nil {
		panic("redistest: no Redis for tests: " + initErr.Error())
	}
	return baseURL
}

// Cleanup deletes every key of a namespace (what Namespace registers for a
// test), for code without a testing.TB.
func Cleanup(c *redis.Client, ns string) { cleanup(c, ns) }
