package bench

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/wahaq/wahaq/tasks"
	"github.com/wahaq/wahaq/wahaclient"
	"github.com/wahaq/wahaq/wahaclient/wahafake"
)

// ---- 2. processing throughput ----

// ThroughputFigures are the processing scenario's figures, in tasks per
// second.
type ThroughputFigures struct {
	N, Concurrency int
	Wahaq, Bare    float64
	WahaqTime      time.Duration
	BareTime       time.Duration
}

// Throughput processes N logouts against a zero-latency fake WAHA: wahaq's
// worker (instance cap = concurrency, so the cap does not throttle) versus a
// bare asynq handler making the same call, same concurrency.
func Throughput(ctx context.Context, e *env) (ThroughputFigures, error) {
	n, conc := e.sizes.ThroughputN, e.sizes.Concurrency
	f := ThroughputFigures{N: n, Concurrency: conc}
	fake, err := newFake(0)
	if err != nil {
		return f, err
	}
	defer fake.Close()
	ns := e.ns(ScenarioThroughput)

	// Bare asynq first: enqueue (not timed), then time the processing.
	bareSessions := fake.AddSessions("tb", n, wahafake.StatusWorking)
	client := asynq.NewClientFromRedisClient(e.rdb)
	q := bareQueue(ns)
	if _, err := bareEnqueue(ctx, client, q, bareSessions, e.sizes.EnqueueGoroutines); err != nil {
		return f, err
	}
	wc, err := wahaclient.New(wahaclient.Config{BaseURL: fake.URL()})
	if err != nil {
		return f, err
	}
	var done atomic.Int64
	all := make(chan struct{})
	srv := bareServer(e.rdb, q, conc)
	start := time.Now()
	if err := srv.Start(bareHandler(wc, false, func() {
		if done.Add(1) == int64(n) {
			close(all)
		}
	})); err != nil {
		return f, err
	}
	select {
	case <-all:
	case <-ctx.Done():
		srv.Shutdown()
		return f, ctx.Err()
	case <-time.After(10 * time.Minute):
		srv.Shutdown()
		return f, fmt.Errorf("bare asynq processed %d of %d in 10m", done.Load(), n)
	}
	f.BareTime = time.Since(start)
	srv.Shutdown()
	e.logf("throughput: bare asynq %d in %s", n, f.BareTime.Round(time.Millisecond))

	// wahaq.
	p, err := producer(e.rdb, ns)
	if err != nil {
		return f, err
	}
	info, err := p.EnqueueBatch(ctx, tasks.BatchRequest{Sessions: fake.AddSessions("tw", n, wahafake.StatusWorking)})
	if err != nil {
		return f, err
	}
	w, err := newWorker(e.rdb, ns, fake.URL(), conc, conc)
	if err != nil {
		return f, err
	}
	start = time.Now()
	if err := w.Start(); err != nil {
		return f, err
	}
	b, err := waitBatch(ctx, inspector(e.rdb, ns), info.BatchID, 5*time.Millisecond, 10*time.Minute)
	f.WahaqTime = time.Since(start)
	w.Shutdown()
	if err != nil {
		return f, err
	}
	if b.Outcomes[tasks.OutcomeLoggedOut] != int64(n) {
		return f, fmt.Errorf("wahaq: %d of %d logged out (%v)", b.Outcomes[tasks.OutcomeLoggedOut], n, b.Outcomes)
	}
	e.logf("throughput: wahaq %d in %s", n, f.WahaqTime.Round(time.Millisecond))
	f.Wahaq = float64(n) / f.WahaqTime.Seconds()
	f.Bare = float64(n) / f.BareTime.Seconds()
	return f, nil
}
