package bench

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/wahaq/wahaq/tasks"
	"github.com/wahaq/wahaq/wahaclient"
	"github.com/wahaq/wahaq/wahaclient/wahafake"
)

// ---- 10. the cost of waiting on a full server ----

// WaitingSide is one contender's Redis work per completed logout while most
// of its slots wait on the server's cap.
type WaitingSide struct {
	Completed         int64
	Scripts, Dequeues float64 // per completed logout
	CommandsPerLogout float64
}

// WaitingFigures compare wahaq's waiting cost with the hand-written peer's.
type WaitingFigures struct {
	N, Cap, Concurrency int
	Latency, Window     time.Duration
	Wahaq, Features     WaitingSide
}

const (
	waitingCap         = 4
	waitingConcurrency = 20
	waitingLatency     = time.Second
)

// Waiting queues more logouts than the window can complete on one server
// (cap 4, 1 s per logout), runs a worker of concurrency 20 on a private
// redis-server for WaitingWindow, and divides the script calls and dequeues
// Redis counted by the logouts completed.
func Waiting(ctx context.Context, e *env) (WaitingFigures, error) {
	f := WaitingFigures{Cap: waitingCap, Concurrency: waitingConcurrency, Latency: waitingLatency, Window: e.sizes.WaitingWindow}
	f.N = int(2*f.Window/f.Latency)*f.Cap + 2*f.Concurrency // never runs dry in the window
	own, err := startOwnRedis()
	if err != nil {
		return f, err
	}
	defer own.close()
	ns := e.ns(ScenarioWaiting)
	for _, side := range []struct {
		who contender
		out *WaitingSide
	}{{contFeatures, &f.Features}, {contWahaq, &f.Wahaq}} {
		fake, err := newFake(f.Latency)
		if err != nil {
			return f, err
		}
		s, err := waitingRun(ctx, own, fake, ns, side.who, f)
		fake.Close()
		if err != nil {
			return f, err
		}
		*side.out = s
		e.logf("waiting: %s %d completed in %s, %.1f scripts, %.1f dequeues per completed logout", side.who, s.Completed, f.Window, s.Scripts, s.Dequeues)
		if err := own.rdb.FlushAll(ctx).Err(); err != nil { // our own server
			return f, err
		}
	}
	return f, nil
}

func waitingRun(ctx context.Context, own *ownRedis, fake *wahafake.Server, ns string, who contender, f WaitingFigures) (WaitingSide, error) {
	var s WaitingSide
	sessions := fake.AddSessions("wt", f.N, wahafake.StatusWorking)
	var completed func() (int64, error)
	var start func() error
	var stop func()
	switch who {
	case contWahaq:
		p, err := producer(own.rdb, ns)
		if err != nil {
			return s, err
		}
		info, err := p.EnqueueBatch(ctx, tasks.BatchRequest{Sessions: sessions})
		if err != nil {
			return s, err
		}
		w, err := newWorker(own.rdb, ns, fake.URL(), f.Concurrency, f.Cap)
		if err != nil {
			return s, err
		}
		start, stop = w.Start, w.Shutdown
		completed = func() (int64, error) {
			b, err := inspector(own.rdb, ns).Batch(ctx, info.BatchID)
			if err != nil {
				return 0, err
			}
			return b.Outcomes[tasks.OutcomeLoggedOut], nil
		}
	case contFeatures:
		q := bareQueue(ns)
		if _, err := bareEnqueue(ctx, asynq.NewClientFromRedisClient(own.rdb), q, sessions, 16, featuresEnqueueOpts()...); err != nil {
			return s, err
		}
		wc, err := wahaclient.New(wahaclient.Config{BaseURL: fake.URL()})
		if err != nil {
			return s, err
		}
		var done atomic.Int64
		srv := featuresServer(own.rdb, q, f.Concurrency)
		h := featuresHandler(newSemaphore(own.rdb, q+"-default", f.Cap), wc, func() { done.Add(1) })
		start = func() error { return srv.Start(h) }
		stop = srv.Shutdown
		completed = func() (int64, error) { return done.Load(), nil }
	default:
		return s, errors.New("waiting: no such contender")
	}
	if err := own.reset(ctx); err != nil {
		return s, err
	}
	before, err := own.stats(ctx)
	if err != nil {
		return s, err
	}
	if err := start(); err != nil {
		return s, err
	}
	defer stop()
	select {
	case <-ctx.Done():
		return s, ctx.Err()
	case <-time.After(f.Window):
	}
	after, err := own.stats(ctx)
	if err != nil {
		return s, err
	}
	if s.Completed, err = completed(); err != nil {
		return s, err
	}
	if s.Completed == 0 {
		return s, fmt.Errorf("%s completed no logout in %s", who, f.Window)
	}
	d := statsDelta(before, after)
	n := float64(s.Completed)
	s.Scripts, s.Dequeues, s.CommandsPerLogout = float64(d.scripts())/n, float64(d.dequeues())/n, float64(d.total())/n
	return s, nil
}
