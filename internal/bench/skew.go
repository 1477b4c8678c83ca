package bench

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/wahaq/wahaq/wahaclient/wahafake"
	"github.com/wahaq/wahaq/worker"
)

// ---- 9. skew: one big server among ten ----

// SkewFigures are the finish times of ten servers' batches enqueued at once,
// one server holding 20× the sessions of each other one.
type SkewFigures struct {
	Servers, Small, Big, Cap, Concurrency int
	Latency                               time.Duration
	// BigIdeal is ceil(Big/Cap)·Latency, SmallIdeal ceil(Small/Cap)·Latency.
	BigIdeal, SmallIdeal time.Duration
	// BigActual is the big batch's time; SmallLatest the latest small one's.
	BigActual, SmallLatest time.Duration
}

const (
	skewServers = 10
	skewFactor  = 20
	skewCap     = 4
)

// Skew enqueues, at once, SkewSmall sessions on each of nine fake WAHA
// servers and 20·SkewSmall on a tenth, every logout taking SkewLatency and
// every server capped at 4, and times each batch on one worker with enough
// slots for every cap (40).
func Skew(ctx context.Context, e *env) (SkewFigures, error) {
	f := SkewFigures{Servers: skewServers, Small: e.sizes.SkewSmall, Big: e.sizes.SkewSmall * skewFactor, Cap: skewCap,
		Concurrency: skewServers * skewCap, Latency: e.sizes.SkewLatency}
	f.BigIdeal = time.Duration(math.Ceil(float64(f.Big)/float64(f.Cap))) * f.Latency
	f.SmallIdeal = time.Duration(math.Ceil(float64(f.Small)/float64(f.Cap))) * f.Latency
	ns := e.ns(ScenarioSkew)
	fakes := make([]*wahafake.Server, skewServers)
	instances := make([]worker.Instance, skewServers)
	for i := range fakes {
		fk, err := newFake(f.Latency)
		if err != nil {
			return f, err
		}
		defer fk.Close()
		fakes[i] = fk
		instances[i] = worker.Instance{Name: fmt.Sprintf("waha%d", i), BaseURL: fk.URL(), Concurrency: f.Cap}
	}
	w, err := worker.New(worker.Config{Redis: e.rdb, Namespace: ns, Concurrency: f.Concurrency, Instances: instances, Registerer: prometheus.NewRegistry()})
	if err != nil {
		return f, err
	}
	if err := w.Start(); err != nil {
		return f, err
	}
	defer w.Shutdown()
	time.Sleep(200 * time.Millisecond) // let the worker settle
	names := make([]string, len(instances))
	for i, in := range instances {
		names[i] = in.Name
	}
	p, err := producer(e.rdb, ns, names...)
	if err != nil {
		return f, err
	}
	times := make([]time.Duration, skewServers)
	errs := make([]error, skewServers)
	var wg sync.WaitGroup
	for i := range fakes {
		n := f.Small
		if i == 0 {
			n = f.Big
		}
		sessions := fakes[i].AddSessions("sk", n, wahafake.StatusWorking)
		wg.Add(1)
		go func() {
			defer wg.Done()
			times[i], errs[i] = timeBatch(ctx, e.rdb, ns, p, instances[i].Name, sessions, 10*f.BigIdeal+time.Minute)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return f, err
		}
	}
	f.BigActual = times[0]
	for _, t := range times[1:] {
		f.SmallLatest = max(f.SmallLatest, t)
	}
	e.logf("skew: big %d in %s (ideal %s), latest small %d in %s (ideal %s)", f.Big, f.BigActual.Round(time.Millisecond), f.BigIdeal,
		f.Small, f.SmallLatest.Round(time.Millisecond), f.SmallIdeal)
	return f, nil
}
