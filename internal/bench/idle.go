package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/wahaq/wahaq/worker"
)

// ---- 11. the cost of an idle worker ----

// IdlePoint is one fleet size's idle cost: Redis commands a second (INFO
// commandstats, the calls inside scripts included) and script calls a
// second.
type IdlePoint struct {
	Servers                    int
	Wahaq, Bare                float64 // commands/s
	WahaqScripts, BareScripts  float64 // EVALSHA+EVAL /s
	WahaqCommands, BareTopCmds string  // the three busiest commands, for the log
}

// IdleFigures compare an idle wahaq worker's Redis load with bare asynq's
// with the same queues.
type IdleFigures struct {
	Warmup, Window time.Duration
	Points         []IdlePoint
}

// idleWarmup lets the worker's start-up reads (the gate view's first
// reads, the reconciler's first sweep, asynq's first recoverer run) pass
// before the counters are reset.
const idleWarmup = 3 * time.Second

// Idle runs, for each fleet size of IdleServers, one wahaq worker with that
// many WAHA servers in its configuration and nothing enqueued, then a bare
// asynq server (default configuration) with as many queues, each alone on a
// private redis-server, and counts the Redis commands each makes in
// IdleWindow after a warm-up.
func Idle(ctx context.Context, e *env) (IdleFigures, error) {
	f := IdleFigures{Warmup: idleWarmup, Window: e.sizes.IdleWindow}
	own, err := startOwnRedis()
	if err != nil {
		return f, err
	}
	defer own.close()
	fake, err := newFake(0)
	if err != nil {
		return f, err
	}
	defer fake.Close()
	ns := e.ns(ScenarioIdle)
	for _, n := range e.sizes.IdleServers {
		if n <= 0 {
			continue
		}
		p := IdlePoint{Servers: n}
		for _, side := range []contender{contBare, contWahaq} {
			d, err := idleRun(ctx, own, ns, fake.URL(), side, n, f.Warmup, f.Window)
			if err != nil {
				return f, err
			}
			per := func(x int64) float64 { return float64(x) / f.Window.Seconds() }
			if side == contWahaq {
				p.Wahaq, p.WahaqScripts, p.WahaqCommands = per(d.total()), per(d.scripts()), d.top(3)
			} else {
				p.Bare, p.BareScripts, p.BareTopCmds = per(d.total()), per(d.scripts()), d.top(3)
			}
			if err := own.rdb.FlushAll(ctx).Err(); err != nil { // our own server
				return f, err
			}
		}
		e.logf("idle: %d servers: wahaq %.0f commands/s (%s), bare asynq %.0f (%s)", n, p.Wahaq, p.WahaqCommands, p.Bare, p.BareTopCmds)
		f.Points = append(f.Points, p)
	}
	return f, nil
}

// idleRun starts one contender with n queues on own, waits warmup, and
// returns the counters' change over window.
func idleRun(ctx context.Context, own *ownRedis, ns, wahaURL string, who contender, n int, warmup, window time.Duration) (redisStats, error) {
	var stop func()
	switch who {
	case contWahaq:
		ins := make([]worker.Instance, n)
		for i := range ins {
			ins[i] = worker.Instance{Name: fmt.Sprintf("waha%d", i), BaseURL: wahaURL}
		}
		w, err := worker.New(worker.Config{Redis: own.rdb, Namespace: ns, Instances: ins, Registerer: prometheus.NewRegistry()})
		if err != nil {
			return redisStats{}, err
		}
		if err := w.Start(); err != nil {
			return redisStats{}, err
		}
		stop = w.Shutdown
	default:
		queues := make(map[string]int, n)
		for i := range n {
			queues[fmt.Sprintf("%s-bare-%d", ns, i)] = 1
		}
		srv := asynq.NewServerFromRedisClient(own.rdb, asynq.Config{Queues: queues, LogLevel: quietAsynq})
		if err := srv.Start(asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return nil })); err != nil {
			return redisStats{}, err
		}
		stop = srv.Shutdown
	}
	defer stop()
	if err := sleepCtx(ctx, warmup); err != nil {
		return redisStats{}, err
	}
	if err := own.reset(ctx); err != nil {
		return redisStats{}, err
	}
	before, err := own.stats(ctx)
	if err != nil {
		return redisStats{}, err
	}
	if err := sleepCtx(ctx, window); err != nil {
		return redisStats{}, err
	}
	after, err := own.stats(ctx)
	if err != nil {
		return redisStats{}, err
	}
	return statsDelta(before, after), nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
