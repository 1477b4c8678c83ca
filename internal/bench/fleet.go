package bench

import (
	"context"
	"fmt"
	"math"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/wahaq/wahaq/tasks"
	"github.com/wahaq/wahaq/wahaclient"
	"github.com/wahaq/wahaq/wahaclient/wahafake"
	"github.com/wahaq/wahaq/worker"
)

// ---- 12. a teardown across a fleet ----

// FleetFigures time a teardown of every session of a fleet of servers on
// one worker, against its ideal and against bare asynq.
type FleetFigures struct {
	Servers, Sessions, Concurrency int
	Latency                        time.Duration
	// Ideal is ceil(Servers·Sessions / Concurrency)·Latency: no server's
	// cap binds, the handlers do.
	Ideal, Wahaq, Bare time.Duration
}

// Fleet enqueues, at once, one batch of FleetSessions sessions on each of
// FleetServers servers (one fake WAHA, FleetLatency a logout) for one wahaq
// worker of FleetConcurrency handlers, and times it from the first enqueue
// to the last batch done; then the same logouts as bare asynq tasks on as
// many queues, for a bare asynq server of the same concurrency making the
// same HTTP call.
func Fleet(ctx context.Context, e *env) (FleetFigures, error) {
	sz := e.sizes
	f := FleetFigures{Servers: sz.FleetServers, Sessions: sz.FleetSessions, Concurrency: sz.FleetConcurrency, Latency: sz.FleetLatency}
	total := f.Servers * f.Sessions
	f.Ideal = time.Duration(math.Ceil(float64(total)/float64(f.Concurrency))) * f.Latency
	fake, err := newFake(f.Latency)
	if err != nil {
		return f, err
	}
	defer fake.Close()
	ns := e.ns(ScenarioFleet)
	timeout := 10*f.Ideal + time.Minute
	if f.Wahaq, err = fleetWahaq(ctx, e, fake, ns, f, timeout); err != nil {
		return f, err
	}
	if f.Bare, err = fleetBare(ctx, e, fake, ns, f, timeout); err != nil {
		return f, err
	}
	e.logf("fleet: %d logouts across %d servers: wahaq %s, bare asynq %s (ideal %s)", total, f.Servers,
		f.Wahaq.Round(time.Millisecond), f.Bare.Round(time.Millisecond), f.Ideal)
	return f, nil
}

func fleetWahaq(ctx context.Context, e *env, fake *wahafake.Server, ns string, f FleetFigures, timeout time.Duration) (time.Duration, error) {
	ins := make([]worker.Instance, f.Servers)
	names := make([]string, f.Servers)
	for i := range ins {
		names[i] = fmt.Sprintf("waha%d", i)
		// the default cap (4) never binds: the handlers are the limit
		ins[i] = worker.Instance{Name: names[i], BaseURL: fake.URL()}
	}
	w, err := worker.New(worker.Config{Redis: e.rdb, Namespace: ns, Instances: ins, Concurrency: f.Concurrency, Registerer: prometheus.NewRegistry()})
	if err != nil {
		return 0, err
	}
	if err := w.Start(); err != nil {
		return 0, err
	}
	defer w.Shutdown()
	p, err := producer(e.rdb, ns, names...)
	if err != nil {
		return 0, err
	}
	sessions := make([][]string, f.Servers)
	for i := range sessions {
		sessions[i] = fake.AddSessions(fmt.Sprintf("fl%d", i), f.Sessions, wahafake.StatusWorking)
	}
	if err := sleepCtx(ctx, time.Second); err != nil { // let the worker settle
		return 0, err
	}
	start := time.Now()
	ids := make([]string, f.Servers)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i := range ins {
		g.Go(func() error {
			info, err := p.EnqueueBatch(gctx, tasks.BatchRequest{Instance: names[i], Sessions: sessions[i]})
			if err != nil {
				return err
			}
			ids[i] = info.BatchID
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return 0, err
	}
	insp := inspector(e.rdb, ns, names...)
	for _, id := range ids { // the last one done ends the wait
		b, err := waitBatch(ctx, insp, id, 5*time.Millisecond, timeout)
		if err != nil {
			return 0, err
		}
		if got := b.Outcomes[tasks.OutcomeLoggedOut]; got != int64(f.Sessions) {
			return 0, fmt.Errorf("fleet: batch %s: %d of %d logged out (%v)", id, got, f.Sessions, b.Outcomes)
		}
	}
	return time.Since(start), nil
}

func fleetBare(ctx context.Context, e *env, fake *wahafake.Server, ns string, f FleetFigures, timeout time.Duration) (time.Duration, error) {
	wc, err := wahaclient.New(wahaclient.Config{BaseURL: fake.URL()})
	if err != nil {
		return 0, err
	}
	total := int64(f.Servers * f.Sessions)
	var done atomic.Int64
	all := make(chan struct{})
	queues := make(map[string]int, f.Servers)
	sessions := make([][]string, f.Servers)
	for i := range sessions {
		queues[fmt.Sprintf("%s-%d", bareQueue(ns), i)] = 1
		sessions[i] = fake.AddSessions(fmt.Sprintf("flb%d", i), f.Sessions, wahafake.StatusWorking)
	}
	srv := asynq.NewServerFromRedisClient(e.rdb, asynq.Config{Concurrency: f.Concurrency, Queues: queues, LogLevel: quietAsynq})
	if err := srv.Start(bareHandler(wc, false, func() {
		if done.Add(1) == total {
			close(all)
		}
	})); err != nil {
		return 0, err
	}
	defer srv.Shutdown()
	if err := sleepCtx(ctx, time.Second); err != nil {
		return 0, err
	}
	client := asynq.NewClientFromRedisClient(e.rdb)
	start := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i := range sessions {
		g.Go(func() error {
			_, err := bareEnqueue(gctx, client, fmt.Sprintf("%s-%d", bareQueue(ns), i), sessions[i], 1)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return 0, err
	}
	select {
	case <-all:
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-time.After(timeout):
		return 0, fmt.Errorf("fleet: bare asynq processed %d of %d in %s", done.Load(), total, timeout)
	}
	return time.Since(start), nil
}
