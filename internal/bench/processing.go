package bench

import (
	"context"
	"time"
)

// ---- 6. processing against both peers, concurrency 20 and 50 ----

// ProcessingPoint is one concurrency's figures, in logouts per second.
type ProcessingPoint struct {
	Concurrency           int
	Wahaq, Bare, Features float64
	WahaqTime, BareTime   time.Duration
	FeaturesTime          time.Duration
}

// ProcessingFigures are the processing scenario's figures.
type ProcessingFigures struct {
	N      int
	Points []ProcessingPoint
}

// processingConcurrencies are the two concurrencies.
var processingConcurrencies = []int{20, 50}

// Processing performs N logouts against a zero-latency fake WAHA with each
// contender at concurrency 20 and 50, in the order bare, features, wahaq,
// each batch enqueued before its worker starts.
func Processing(ctx context.Context, e *env) (ProcessingFigures, error) {
	f := ProcessingFigures{N: e.sizes.ThroughputN}
	fake, err := newFake(0)
	if err != nil {
		return f, err
	}
	defer fake.Close()
	ns := e.ns(ScenarioProcessing)
	for _, c := range processingConcurrencies {
		p := ProcessingPoint{Concurrency: c}
		for _, side := range []struct {
			who contender
			d   *time.Duration
		}{{contBare, &p.BareTime}, {contFeatures, &p.FeaturesTime}, {contWahaq, &p.WahaqTime}} {
			d, err := processRun(ctx, e.rdb, fake, ns, side.who, f.N, c, nil)
			if err != nil {
				return f, err
			}
			*side.d = d
			e.logf("processing: %s c=%d %d in %s", side.who, c, f.N, d.Round(time.Millisecond))
			if err := cleanup(ctx, e.rdb, ns); err != nil {
				return f, err
			}
		}
		p.Wahaq = float64(f.N) / p.WahaqTime.Seconds()
		p.Bare = float64(f.N) / p.BareTime.Seconds()
		p.Features = float64(f.N) / p.FeaturesTime.Seconds()
		f.Points = append(f.Points, p)
	}
	return f, nil
}
