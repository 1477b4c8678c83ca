package bench

import (
	"context"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"slices"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/wahaq/wahaq/internal/asynqcompat"
	"github.com/wahaq/wahaq/tasks"
	"github.com/wahaq/wahaq/wahaclient"
	"github.com/wahaq/wahaq/wahaclient/wahafake"
	"github.com/wahaq/wahaq/worker"
)

// ---- 3. latency ----

// LatencyFigures are enqueue-to-completed latencies of single logouts on an
// idle system.
type LatencyFigures struct {
	Samples, BareSamples int
	WahaqP50, WahaqP99   time.Duration
	BareP50, BareP99     time.Duration
}

// pollEvery is how often a latency sample looks for its task's completion;
// it adds at most that much to each sample, on both sides.
const pollEvery = 500 * time.Microsecond

// Latency enqueues single logouts one at a time on an idle system and times
// each from just before the enqueue until Redis shows the task completed:
// wahaq's worker with its defaults (PollInterval 10ms) versus bare asynq
// with its defaults (1 s task check interval).
func Latency(ctx context.Context, e *env) (LatencyFigures, error) {
	f := LatencyFigures{Samples: e.sizes.LatencySamples, BareSamples: e.sizes.LatencyBareSamples}
	fake, err := newFake(0)
	if err != nil {
		return f, err
	}
	defer fake.Close()
	ns := e.ns(ScenarioLatency)
	idle := func() { time.Sleep(20*time.Millisecond + time.Duration(mrand.IntN(10_000))*time.Microsecond) }

	// wahaq, default worker config.
	p, err := producer(e.rdb, ns)
	if err != nil {
		return f, err
	}
	w, err := worker.New(worker.Config{Redis: e.rdb, Namespace: ns,
		Instances: []worker.Instance{{Name: "default", BaseURL: fake.URL()}}, Registerer: prometheus.NewRegistry()})
	if err != nil {
		return f, err
	}
	if err := w.Start(); err != nil {
		return f, err
	}
	sessions := fake.AddSessions("lw", f.Samples+5, wahafake.StatusWorking)
	// Warm-up (connections, scripts), not counted.
	for _, s := range sessions[f.Samples:] {
		if _, err := p.Enqueue(ctx, tasks.LogoutRequest{Session: s}); err != nil {
			w.Shutdown()
			return f, err
		}
	}
	time.Sleep(300 * time.Millisecond)
	wahaq := make([]time.Duration, 0, f.Samples)
	for _, s := range sessions[:f.Samples] {
		idle()
		start := time.Now()
		t, err := p.Enqueue(ctx, tasks.LogoutRequest{Session: s})
		if err != nil {
			w.Shutdown()
			return f, err
		}
		if err := waitUntil(ctx, 5*time.Second, func() (bool, error) {
			got, err := inspector(e.rdb, ns).Task(ctx, t.ID)
			if err != nil {
				return false, err
			}
			return got.State == tasks.StateCompleted, nil
		}); err != nil {
			w.Shutdown()
			return f, fmt.Errorf("wahaq task %s: %w", t.ID, err)
		}
		wahaq = append(wahaq, time.Since(start))
	}
	w.Shutdown()
	f.WahaqP50, f.WahaqP99 = percentile(wahaq, 50), percentile(wahaq, 99)
	e.logf("latency: wahaq p50 %s p99 %s over %d", f.WahaqP50, f.WahaqP99, len(wahaq))

	// bare asynq, default config.
	wc, err := wahaclient.New(wahaclient.Config{BaseURL: fake.URL()})
	if err != nil {
		return f, err
	}
	q := bareQueue(ns)
	srv := bareServer(e.rdb, q, e.sizes.Concurrency)
	if err := srv.Start(bareHandler(wc, false, nil)); err != nil {
		return f, err
	}
	defer srv.Shutdown()
	client := asynq.NewClientFromRedisClient(e.rdb)
	bare := make([]time.Duration, 0, f.BareSamples)
	for _, s := range fake.AddSessions("lb", f.BareSamples, wahafake.StatusWorking) {
		idle()
		start := time.Now()
		info, err := client.EnqueueContext(ctx, asynq.NewTask(tasks.TypeLogout, barePayload(s)), asynq.Queue(q))
		if err != nil {
			return f, err
		}
		key := asynqcompat.TaskKey(q, info.ID)
		// Without Retention asynq deletes the task's hash when it completes.
		if err := waitUntil(ctx, 10*time.Second, func() (bool, error) {
			n, err := e.rdb.Exists(ctx, key).Result()
			return n == 0, err
		}); err != nil {
			return f, fmt.Errorf("bare task %s: %w", info.ID, err)
		}
		bare = append(bare, time.Since(start))
	}
	f.BareP50, f.BareP99 = percentile(bare, 50), percentile(bare, 99)
	e.logf("latency: bare asynq p50 %s p99 %s over %d", f.BareP50, f.BareP99, len(bare))
	return f, nil
}

func waitUntil(ctx context.Context, timeout time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not completed within %s", timeout)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		time.Sleep(pollEvery)
	}
}

// percentile returns the p-th percentile (nearest rank).
func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}
