// Package store is wahaq's Redis engine: the key layout (Keys), every Lua
// script that changes a task, and their Go wrappers. Each state change of a
// task is one script touching only keys of one queue's hash tag, so it is
// atomic and valid on Redis Cluster.
//
// The public packages are built on it: tasks (Producer, Inspector) and
// worker. store speaks its own types (Record, Batch, Finish) and the shared
// ones of internal/base; it never imports tasks, which converts store's
// records into its public model, as asynq's root package converts
// internal/rdb's.
package store

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wahaq/wahaq/internal/asynqcompat"
)

// DefaultNamespace prefixes wahaq's queue names: the queue of instance I is
// "wahaq:I".
const DefaultNamespace = "wahaq"

// asynqMaxRetry is the retry limit written into asynq's message. wahaq counts
// retries itself (base.Payload.MaxRetries) because asynq archives a task whose
// retry count is reached even when the handler only waited for a
// concurrency slot, and such a wait must never spend a retry.
const asynqMaxRetry = math.MaxInt32

// AsynqMaxRetry is asynq's retry limit for tasks whose handler counts its
// own retries (logouts, discoveries): asynq archives a task handed back at
// its limit even when the hand-back is not a failure, so that limit must
// never be reached.
const AsynqMaxRetry = asynqMaxRetry

// pipelineChunk bounds how many scripts or reads go to Redis in one
// pipeline, keeping the client's buffers and Redis' reply buffer small.
const pipelineChunk = 1000

// Store runs wahaq's scripts and reads on one Redis. It is safe for
// concurrent use.
type Store struct {
	rdb       redis.UniversalClient
	ns        string
	now       func() time.Time
	lease     time.Duration
	published sync.Map // queue name -> struct{}: registered in asynq:queues
}

// Options configures a Store.
type Options struct {
	// Namespace prefixes queue names. Defaults to DefaultNamespace ("wahaq").
	// Tests use a namespace each to share one Redis.
	Namespace string
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
	// BatchLease is how long a producer's claim on a batch it fills lasts
	// without renewal (batch_lease.go). Defaults to DefaultBatchLease (10 s).
	BatchLease time.Duration
}

// New returns a Store on rdb.
func New(rdb redis.UniversalClient, opts Options) *Store {
	if opts.Namespace == "" {
		opts.Namespace = DefaultNamespace
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.BatchLease <= 0 {
		opts.BatchLease = DefaultBatchLease
	}
	return &Store{rdb: rdb, ns: opts.Namespace, now: opts.Now, lease: opts.BatchLease}
}

// Redis returns the client the store uses.
func (s *Store) Redis() redis.UniversalClient { return s.rdb }

// Namespace returns the store's namespace.
func (s *Store) Namespace() string { return s.ns }

// Queue returns the asynq queue name of an instance.
func (s *Store) Queue(instance string) string { return s.ns + ":" + instance }

// Keys returns the keys of an instance's queue.
func (s *Store) Keys(instance string) Keys { return KeysFor(s.ns, instance) }

// publish registers a queue in asynq's set of queues, once per process, so
// asynq's tools (and its Inspector) see it.
func (s *Store) publish(ctx context.Context, q string) error {
	if _, ok := s.published.Load(q); ok {
		return nil
	}
	if err := s.rdb.SAdd(ctx, asynqcompat.AllQueues, q).Err(); err != nil {
		return fmt.Errorf("register queue %s: %w", q, err)
	}
	s.published.Store(q, struct{}{})
	return nil
}

// scriptCall is one call of a script in a pipeline.
type scriptCall struct {
	keys []string
	args []any
}

// runPipelined runs calls of one script in a single round trip and returns
// their replies in order. EVALSHA fails with NOSCRIPT when Redis does not know
// the script (first use, a restart, a failover); such a call did not run, so
// it is safe to load the script and send just those calls again. On an
// error the replies are still returned (nil for calls never sent), so a
// caller can use those that succeeded.
func (s *Store) runPipelined(ctx context.Context, script *redis.Script, calls []scriptCall) ([]*redis.Cmd, error) {
	cmds := make([]*redis.Cmd, len(calls))
	todo := make([]int, len(calls))
	for i := range todo {
		todo[i] = i
	}
	for round := 0; round < 2 && len(todo) > 0; round++ {
		pipe := s.rdb.Pipeline()
		for _, i := range todo {
			cmds[i] = script.EvalSha(ctx, pipe, calls[i].keys, calls[i].args...)
		}
		_, _ = pipe.Exec(ctx)
		var again []int
		for _, i := range todo {
			if err := cmds[i].Err(); err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
				again = append(again, i)
			}
		}
		if len(again) > 0 {
			if err := script.Load(ctx, s.rdb).Err(); err != nil {
				return cmds, err
			}
		}
		todo = again
	}
	for _, c := range cmds {
		if err := c.Err(); err != nil {
			return cmds, err
		}
	}
	return cmds, nil
}

// ceilUnix is t in whole Unix seconds, rounded up. asynq keeps a scheduled
// task's time in whole seconds and moves the task to the queue as soon as the
// current second reaches it, so a truncated time would run a logout up to a
// second before the time it was scheduled for.
func ceilUnix(t time.Time) int64 {
	s := t.Unix()
	if t.Nanosecond() > 0 {
		s++
	}
	return s
}

// ttlSeconds is d in whole seconds, rounded up, at least 1 (EXPIRE 0 deletes).
func ttlSeconds(d time.Duration) int64 { return int64(math.Max(1, math.Ceil(d.Seconds()))) }

// timeoutSeconds is asynq's per-attempt timeout in whole seconds, rounded up;
// 0 means none.
func timeoutSeconds(d time.Duration) int64 { return int64(math.Ceil(d.Seconds())) }
