package bench

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/hibiken/asynq"
	"github.com/wahaq/wahaq/tasks"
)

// ---- 1. bulk enqueue ----

// EnqueueFigures are the bulk-enqueue scenario's figures, in tasks per second.
type EnqueueFigures struct {
	N, Goroutines int
	Wahaq, Bare   float64 // tasks/s
	WahaqTime     time.Duration
	BareTime      time.Duration
}

// BulkEnqueue enqueues N logouts as one wahaq batch (validation, dedup,
// batch counters, records) and N bare asynq tasks with Client.Enqueue from
// G goroutines.
func BulkEnqueue(ctx context.Context, e *env) (EnqueueFigures, error) {
	n, g := e.sizes.EnqueueN, e.sizes.EnqueueGoroutines
	f := EnqueueFigures{N: n, Goroutines: g}
	ns := e.ns(ScenarioEnqueue)
	p, err := producer(e.rdb, ns)
	if err != nil {
		return f, err
	}
	// Warm up both paths (script cache, connection pool) outside the clock.
	if _, err := p.EnqueueBatch(ctx, tasks.BatchRequest{Sessions: sessionNames("warm", 100)}); err != nil {
		return f, err
	}
	client := asynq.NewClientFromRedisClient(e.rdb)
	q := bareQueue(ns)
	if _, err := bareEnqueue(ctx, client, q, sessionNames("warm", 100), g); err != nil {
		return f, err
	}

	// One 50,000-task batch takes about a second, within the noise of a
	// shared machine: run both sides three times, alternately, on an emptied
	// Redis each time, and keep each side's median.
	const rounds = 3
	sessions := sessionNames("s", n)
	var wahaqTimes, bareTimes []time.Duration
	for r := 0; r < rounds; r++ {
		start := time.Now()
		info, err := p.EnqueueBatch(ctx, tasks.BatchRequest{Sessions: sessions})
		took := time.Since(start)
		if err != nil {
			return f, err
		}
		if info.Total != int64(n) {
			return f, fmt.Errorf("wahaq batch holds %d tasks, want %d", info.Total, n)
		}
		wahaqTimes = append(wahaqTimes, took)
		e.logf("enqueue: wahaq %d in %s", n, took.Round(time.Millisecond))
		if err := cleanup(ctx, e.rdb, ns+":"); err != nil { // free wahaq's tasks before the baseline
			return f, err
		}
		took, err = bareEnqueue(ctx, client, q, sessions, g)
		if err != nil {
			return f, err
		}
		bareTimes = append(bareTimes, took)
		e.logf("enqueue: bare asynq %d in %s", n, took.Round(time.Millisecond))
		if err := cleanup(ctx, e.rdb, q); err != nil {
			return f, err
		}
	}
	f.WahaqTime, f.BareTime = medianDuration(wahaqTimes), medianDuration(bareTimes)
	f.Wahaq = float64(n) / f.WahaqTime.Seconds()
	f.Bare = float64(n) / f.BareTime.Seconds()
	return f, nil
}

// medianDuration returns the median of ds (which it sorts).
func medianDuration(ds []time.Duration) time.Duration {
	slices.Sort(ds)
	return ds[len(ds)/2]
}
