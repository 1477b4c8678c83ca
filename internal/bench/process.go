package bench

// One batch of logouts processed by each of the three contenders — wahaq,
// bare asynq, asynq with the features by hand — timed from the worker's
// start (the batch is enqueued before it, not timed) to the batch reading
// done. The processing and Redis-cost scenarios share it.

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/wahaq/wahaq/tasks"
	"github.com/wahaq/wahaq/wahaclient"
	"github.com/wahaq/wahaq/wahaclient/wahafake"
)

// contender names one side of a processing run.
type contender string

const (
	contWahaq    contender = "wahaq"
	contBare     contender = "bare"
	contFeatures contender = "features"
)

// processRun enqueues n logouts for the contender in namespace ns (not timed),
// starts its worker with concurrency conc and returns how long it took to
// perform them all. between, when set, runs after the enqueue and before the
// worker starts (the Redis-cost scenario resets its counters there).
func processRun(ctx context.Context, rdb redis.UniversalClient, fake *wahafake.Server, ns string, who contender, n, conc int, between func() error) (time.Duration, error) {
	prefix := fmt.Sprintf("%s-%s-c%d", ns, who, conc)
	sessions := fake.AddSessions(prefix, n, wahafake.StatusWorking)
	if who == contWahaq {
		p, err := producer(rdb, ns)
		if err != nil {
			return 0, err
		}
		info, err := p.EnqueueBatch(ctx, tasks.BatchRequest{Sessions: sessions})
		if err != nil {
			return 0, err
		}
		w, err := newWorker(rdb, ns, fake.URL(), conc, conc)
		if err != nil {
			return 0, err
		}
		if between != nil {
			if err := between(); err != nil {
				return 0, err
			}
		}
		start := time.Now()
		if err := w.Start(); err != nil {
			return 0, err
		}
		b, err := waitBatch(ctx, inspector(rdb, ns), info.BatchID, 5*time.Millisecond, 10*time.Minute)
		took := time.Since(start)
		w.Shutdown()
		if err != nil {
			return 0, err
		}
		if got := b.Outcomes[tasks.OutcomeLoggedOut]; got != int64(n) {
			return 0, fmt.Errorf("wahaq: %d of %d logged out (%v)", got, n, b.Outcomes)
		}
		return took, nil
	}

	client := asynq.NewClientFromRedisClient(rdb)
	q := bareQueue(ns)
	var opts []asynq.Option
	if who == contFeatures {
		opts = featuresEnqueueOpts()
	}
	if _, err := bareEnqueue(ctx, client, q, sessions, 16, opts...); err != nil {
		return 0, err
	}
	wc, err := wahaclient.New(wahaclient.Config{BaseURL: fake.URL()})
	if err != nil {
		return 0, err
	}
	var done atomic.Int64
	all := make(chan struct{})
	count := func() {
		if done.Add(1) == int64(n) {
			close(all)
		}
	}
	var srv *asynq.Server
	var h asynq.Handler
	if who == contFeatures {
		// The cap equals the concurrency, as wahaq's instance cap does here,
		// so it costs its round trips but never throttles.
		srv = featuresServer(rdb, q, conc)
		h = featuresHandler(newSemaphore(rdb, q+"-default", conc), wc, count)
	} else {
		srv = bareServer(rdb, q, conc)
		h = bareHandler(wc, false, count)
	}
	if between != nil {
		if err := between(); err != nil {
			return 0, err
		}
	}
	start := time.Now()
	if err := srv.Start(h); err != nil {
		return 0, err
	}
	defer srv.Shutdown()
	select {
	case <-all:
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-time.After(10 * time.Minute):
		return 0, fmt.Errorf("%s processed %d of %d in 10m", who, done.Load(), n)
	}
	return time.Since(start), nil
}
