package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/wahaq/wahaq/tasks"
	"github.com/wahaq/wahaq/wahaclient/wahafake"
	"github.com/wahaq/wahaq/worker"
)

// ---- 8. isolation: a healthy server beside a hung one ----

// IsolationFigures time a healthy server's batch alone and beside a hung
// server's batch, on the same worker.
type IsolationFigures struct {
	N, HungN, Cap, Concurrency int
	Latency                    time.Duration
	Alone, Beside              time.Duration
}

// isolationCap is each server's cap; the worker has the default 20 slots.
const isolationCap = 8

// Isolation logs out N sessions of a healthy server (Latency per logout,
// cap 8) on a worker of concurrency 20, once alone and once while HungN
// sessions of a second server, whose logouts never answer, are queued too.
func Isolation(ctx context.Context, e *env) (IsolationFigures, error) {
	f := IsolationFigures{N: e.sizes.IsolationN, HungN: max(e.sizes.IsolationN/4, 2*isolationCap), Cap: isolationCap, Concurrency: 20, Latency: e.sizes.IsolationLatency}
	ns := e.ns(ScenarioIsolation)
	var err error
	if f.Alone, err = isolationRun(ctx, e, ns+"-alone", f, false); err != nil {
		return f, err
	}
	e.logf("isolation: healthy %d alone in %s", f.N, f.Alone.Round(time.Millisecond))
	if f.Beside, err = isolationRun(ctx, e, ns+"-beside", f, true); err != nil {
		return f, err
	}
	e.logf("isolation: healthy %d beside a hung server in %s", f.N, f.Beside.Round(time.Millisecond))
	return f, nil
}

func isolationRun(ctx context.Context, e *env, ns string, f IsolationFigures, withHung bool) (time.Duration, error) {
	healthy, err := newFake(f.Latency)
	if err != nil {
		return 0, err
	}
	defer healthy.Close()
	hung, err := newFake(0)
	if err != nil {
		return 0, err
	}
	defer hung.Close()
	hung.SetDefaultFault(&wahafake.Fault{Delay: time.Hour}) // a client that gives up ends the wait
	p, err := producer(e.rdb, ns, "healthy", "hung")
	if err != nil {
		return 0, err
	}
	if withHung {
		if _, err := p.EnqueueBatch(ctx, tasks.BatchRequest{Instance: "hung", Sessions: hung.AddSessions("hung", f.HungN, wahafake.StatusWorking)}); err != nil {
			return 0, err
		}
	}
	w, err := worker.New(worker.Config{Redis: e.rdb, Namespace: ns, Concurrency: f.Concurrency, ShutdownGrace: time.Second,
		Instances: []worker.Instance{
			{Name: "healthy", BaseURL: healthy.URL(), Concurrency: f.Cap},
			{Name: "hung", BaseURL: hung.URL(), Concurrency: f.Cap},
		}, Registerer: prometheus.NewRegistry()})
	if err != nil {
		return 0, err
	}
	if err := w.Start(); err != nil {
		return 0, err
	}
	defer func() {
		_ = hung.Close() // drop the hung calls so the shutdown does not wait for them
		w.Shutdown()
	}()
	if withHung {
		// Let the hung server's tasks take what they take before the
		// healthy batch arrives.
		if err := waitUntil(ctx, time.Minute, func() (bool, error) {
			time.Sleep(20 * time.Millisecond)
			return hung.Stats().InFlight >= f.Cap, nil
		}); err != nil {
			return 0, fmt.Errorf("the hung server never held its cap: %w", err)
		}
	}
	return timeBatch(ctx, e.rdb, ns, p, "healthy", healthy.AddSessions("ok", f.N, wahafake.StatusWorking), 3*time.Minute)
}

// timeBatch enqueues one batch and returns how long it took to be done,
// every session logged out.
func timeBatch(ctx context.Context, rdb redis.UniversalClient, ns string, p *tasks.Producer, instance string, sessions []string, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	info, err := p.EnqueueBatch(ctx, tasks.BatchRequest{Instance: instance, Sessions: sessions})
	if err != nil {
		return 0, err
	}
	b, err := waitBatch(ctx, inspector(rdb, ns, instance), info.BatchID, 2*time.Millisecond, timeout)
	took := time.Since(start)
	if err != nil {
		return 0, err
	}
	if got := b.Outcomes[tasks.OutcomeLoggedOut]; got != int64(len(sessions)) {
		return 0, fmt.Errorf("%s: %d of %d logged out (%v)", instance, got, len(sessions), b.Outcomes)
	}
	return took, nil
}
