package bench

// The second baseline: asynq with wahaq's features written by hand, as a
// user who does not pick wahaq would write them. A per-server cap with the
// counting semaphore of asynq's x/rate, results with ResultWriter and
// Retention, dedup with Unique.
//
// x/rate (github.com/hibiken/asynq/x, last tagged 2021) is built on
// go-redis v8 and panics on asynq v0.26's go-redis v9 clients, so its
// semaphore is transcribed here: the same Lua script, the same key, the same
// Acquire/Release protocol (a token per task ID, expiring at the task's
// deadline).

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/wahaq/wahaq/wahaclient"
)

// semaphoreScript is x/rate's acquireCmd, verbatim.
var semaphoreScript = redis.NewScript(`
redis.call("ZREMRANGEBYSCORE", KEYS[1], "-inf", tonumber(ARGV[2])-1)
local count = redis.call("ZCARD", KEYS[1])

if (count < tonumber(ARGV[1])) then
     redis.call("ZADD", KEYS[1], ARGV[3], ARGV[4])
     return 'true'
else
     return 'false'
end
`)

// semaphore is x/rate's Semaphore on go-redis v9.
type semaphore struct {
	rdb       redis.UniversalClient
	key       string
	maxTokens int
}

func newSemaphore(rdb redis.UniversalClient, scope string, maxTokens int) *semaphore {
	return &semaphore{rdb: rdb, key: "asynq:sema:" + scope, maxTokens: maxTokens}
}

func (s *semaphore) acquire(ctx context.Context, taskID string) (bool, error) {
	d, ok := ctx.Deadline()
	if !ok {
		return false, errors.New("semaphore: context has no deadline")
	}
	return semaphoreScript.Run(ctx, s.rdb, []string{s.key}, s.maxTokens, time.Now().Unix(), d.Unix(), taskID).Bool()
}

func (s *semaphore) release(ctx context.Context, taskID string) error {
	return s.rdb.ZRem(ctx, s.key, taskID).Err()
}

// errNoToken is the handler's answer when the server's cap is full: retried
// after a second and not counted as a failure, as x/rate's example does.
var errNoToken = errors.New("server cap full")

// featuresEnqueueOpts are the options a hand-written producer passes: dedup
// of the same session while its task lives, results kept a day.
func featuresEnqueueOpts() []asynq.Option {
	return []asynq.Option{asynq.Unique(time.Hour), asynq.Retention(24 * time.Hour), asynq.MaxRetry(10)}
}

// featuresServer is an asynq server configured as the hand-written peer:
// cap-full answers retried after a second, not counted as failures.
func featuresServer(rdb redis.UniversalClient, q string, concurrency int) *asynq.Server {
	return asynq.NewServerFromRedisClient(rdb, asynq.Config{
		Concurrency: concurrency, Queues: map[string]int{q: 1}, LogLevel: quietAsynq,
		IsFailure: func(err error) bool { return !errors.Is(err, errNoToken) },
		RetryDelayFunc: func(n int, err error, t *asynq.Task) time.Duration {
			if errors.Is(err, errNoToken) {
				return time.Second
			}
			return asynq.DefaultRetryDelayFunc(n, err, t)
		},
	})
}

// featuresHandler takes a token of the server's semaphore, makes the same
// HTTP call as the bare handler, writes the result with the ResultWriter and
// releases the token.
func featuresHandler(sem *semaphore, client *wahaclient.Client, done func()) asynq.HandlerFunc {
	inner := bareHandler(client, true, done)
	return func(ctx context.Context, t *asynq.Task) error {
		id, ok := asynq.GetTaskID(ctx)
		if !ok {
			return fmt.Errorf("no task ID: %w", asynq.SkipRetry)
		}
		got, err := sem.acquire(ctx, id)
		if err != nil {
			return err
		}
		if !got {
			return errNoToken
		}
		defer func() { _ = sem.release(context.WithoutCancel(ctx), id) }()
		return inner(ctx, t)
	}
}
