package bench

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/wahaq/wahaq/tasks"
	"github.com/wahaq/wahaq/wahaclient/wahafake"
	"github.com/wahaq/wahaq/worker"
)

// ---- 4. teardown efficiency ----

// TeardownFigures compare a capped bulk teardown with its ideal time.
type TeardownFigures struct {
	N, Cap, Workers int
	Latency         time.Duration
	Ideal, Actual   time.Duration
	MaxInFlight     int // the most logouts the fake saw at once (≤ Cap)
}

// Teardown logs out N running sessions, each logout taking L on the fake,
// with a per-server cap C shared by W worker.Worker instances in this
// process (each with the default concurrency of 20). Ideal is ceil(N/C)·L.
func Teardown(ctx context.Context, e *env) (TeardownFigures, error) {
	sz := e.sizes
	f := TeardownFigures{N: sz.TeardownN, Cap: sz.TeardownCap, Workers: sz.TeardownWorkers, Latency: sz.TeardownLatency}
	f.Ideal = time.Duration(math.Ceil(float64(f.N)/float64(f.Cap))) * f.Latency
	fake, err := newFake(f.Latency)
	if err != nil {
		return f, err
	}
	defer fake.Close()
	sessions := fake.AddSessions("td", f.N, wahafake.StatusWorking)
	ns := e.ns(ScenarioTeardown)
	p, err := producer(e.rdb, ns)
	if err != nil {
		return f, err
	}
	var ws []*worker.Worker
	defer func() {
		for _, w := range ws {
			w.Shutdown()
		}
	}()
	for range f.Workers {
		w, err := newWorker(e.rdb, ns, fake.URL(), 0, f.Cap) // 0: default concurrency (20)
		if err != nil {
			return f, err
		}
		if err := w.Start(); err != nil {
			return f, err
		}
		ws = append(ws, w)
	}
	time.Sleep(200 * time.Millisecond) // let the workers settle
	start := time.Now()
	info, err := p.EnqueueBatch(ctx, tasks.BatchRequest{Sessions: sessions})
	if err != nil {
		return f, err
	}
	b, err := waitBatch(ctx, inspector(e.rdb, ns), info.BatchID, 2*time.Millisecond, 10*f.Ideal+time.Minute)
	f.Actual = time.Since(start)
	if err != nil {
		return f, err
	}
	if got := b.Outcomes[tasks.OutcomeLoggedOut]; got != int64(f.N) {
		return f, fmt.Errorf("%d of %d logged out (%v)", got, f.N, b.Outcomes)
	}
	f.MaxInFlight = fake.MaxInFlight()
	e.logf("teardown: %d sessions in %s (ideal %s, max in flight %d)", f.N, f.Actual.Round(time.Millisecond), f.Ideal, f.MaxInFlight)
	return f, nil
}
