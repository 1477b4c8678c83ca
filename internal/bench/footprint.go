package bench

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/wahaq/wahaq/tasks"
	"github.com/wahaq/wahaq/wahaclient/wahafake"
)

// ---- 5. footprint ----

// FootprintFigures are Redis bytes per retained result and worker peak RSS.
type FootprintFigures struct {
	N int
	// Bytes per completed task kept for polling: MEMORY USAGE summed over
	// every key of the namespace (records, batch, queue bookkeeping)
	// divided by N.
	WahaqBytes, BareBytes float64
	// Peak RSS (VmHWM) of a worker child process while it ran the N-task
	// batch; 0 where /proc is missing.
	WahaqRSS, BareRSS int64
	WahaqTime         time.Duration
	BareTime          time.Duration
}

// Footprint enqueues N logouts, lets a worker child process (`wahaq bench
// --child`, a real wahaq worker) perform them, reads its peak RSS from
// /proc/PID/status, and measures Redis memory of the retained results. The
// baseline is a bare asynq child whose tasks are enqueued with
// asynq.Retention(24h) and whose handler writes the same result JSON with
// the ResultWriter.
func Footprint(ctx context.Context, e *env) (FootprintFigures, error) {
	n := e.sizes.FootprintN
	f := FootprintFigures{N: n}
	fake, err := newFake(0)
	if err != nil {
		return f, err
	}
	defer fake.Close()
	ns := e.ns(ScenarioFootprint)
	conc := e.sizes.Concurrency

	// wahaq.
	p, err := producer(e.rdb, ns)
	if err != nil {
		return f, err
	}
	info, err := p.EnqueueBatch(ctx, tasks.BatchRequest{Sessions: fake.AddSessions("fw", n, wahafake.StatusWorking)})
	if err != nil {
		return f, err
	}
	start := time.Now()
	f.WahaqRSS, err = e.runChild(ctx, ChildSpec{Mode: "wahaq", RedisURL: e.redisURL, Namespace: ns, WahaURL: fake.URL(), Concurrency: conc},
		func() (bool, error) {
			b, err := inspector(e.rdb, ns).Batch(ctx, info.BatchID)
			if err != nil {
				return false, err
			}
			return b.Done, nil
		})
	f.WahaqTime = time.Since(start)
	if err != nil {
		return f, fmt.Errorf("wahaq worker child: %w", err)
	}
	if f.WahaqBytes, err = bytesPerTask(ctx, e.rdb, ns+":", n); err != nil {
		return f, err
	}
	e.logf("footprint: wahaq %d in %s, peak RSS %d KiB, %.0f B/result", n, f.WahaqTime.Round(time.Millisecond), f.WahaqRSS>>10, f.WahaqBytes)
	if err := cleanup(ctx, e.rdb, ns+":"); err != nil {
		return f, err
	}

	// bare asynq with retention.
	q := bareQueue(ns)
	client := asynq.NewClientFromRedisClient(e.rdb)
	if _, err := bareEnqueue(ctx, client, q, fake.AddSessions("fb", n, wahafake.StatusWorking), e.sizes.EnqueueGoroutines,
		asynq.Retention(24*time.Hour)); err != nil {
		return f, err
	}
	insp := asynq.NewInspectorFromRedisClient(e.rdb)
	start = time.Now()
	f.BareRSS, err = e.runChild(ctx, ChildSpec{Mode: "bare", RedisURL: e.redisURL, Queue: q, WahaURL: fake.URL(), Concurrency: conc},
		func() (bool, error) {
			qi, err := insp.GetQueueInfo(q)
			if err != nil {
				return false, err
			}
			return qi.Completed >= n, nil
		})
	f.BareTime = time.Since(start)
	if err != nil {
		return f, fmt.Errorf("bare asynq child: %w", err)
	}
	if f.BareBytes, err = bytesPerTask(ctx, e.rdb, q, n); err != nil {
		return f, err
	}
	e.logf("footprint: bare asynq %d in %s, peak RSS %d KiB, %.0f B/result", n, f.BareTime.Round(time.Millisecond), f.BareRSS>>10, f.BareBytes)
	return f, nil
}

// bytesPerTask sums MEMORY USAGE over every key whose name holds prefix and
// divides by n.
func bytesPerTask(ctx context.Context, rdb redis.UniversalClient, prefix string, n int) (float64, error) {
	var total int64
	var keys []string
	flush := func() error {
		pipe := rdb.Pipeline()
		cmds := make([]*redis.IntCmd, len(keys))
		for i, k := range keys {
			cmds[i] = pipe.MemoryUsage(ctx, k, 0)
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		for _, c := range cmds {
			total += c.Val()
		}
		keys = keys[:0]
		return nil
	}
	iter := rdb.Scan(ctx, 0, "*{"+prefix+"*", 2000).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
		if len(keys) == 1000 {
			if err := flush(); err != nil {
				return 0, err
			}
		}
	}
	if err := iter.Err(); err != nil {
		return 0, err
	}
	if err := flush(); err != nil {
		return 0, err
	}
	return float64(total) / float64(n), nil
}
