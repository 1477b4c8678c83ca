package bench

import (
	"fmt"
	"time"
)

// newRows are the rows of issue 14's scenarios: processing against both
// peers, Redis cost, isolation, skew and waiting cost.
func (r *Report) newRows() []Row {
	var rows []Row
	ratio := func(a, b float64) float64 {
		if b == 0 {
			return 0
		}
		return a / b
	}
	if f := r.Processing; f != nil {
		for _, p := range f.Points {
			x := ratio(p.Wahaq, p.Features)
			rows = append(rows, Row{ID: fmt.Sprintf("processing_features_c%d", p.Concurrency),
				Name: fmt.Sprintf("6 processing vs asynq+features, %d logouts, c=%d", f.N, p.Concurrency), Unit: "tasks/s",
				Wahaq: p.Wahaq, Baseline: p.Features, BaselineName: "asynq + x/rate semaphore cap + ResultWriter/Retention + Unique",
				Ratio: x, RatioOf: "wahaq/baseline", Target: "ratio ≥ 1.2", Met: x >= 1.2})
		}
		for _, p := range f.Points {
			x := ratio(p.Wahaq, p.Bare)
			rows = append(rows, Row{ID: fmt.Sprintf("processing_bare_c%d", p.Concurrency),
				Name: fmt.Sprintf("6 processing vs bare asynq, %d logouts, c=%d", f.N, p.Concurrency), Unit: "tasks/s",
				Wahaq: p.Wahaq, Baseline: p.Bare, BaselineName: "bare asynq handler, same HTTP call",
				Ratio: x, RatioOf: "wahaq/baseline", Target: "ratio ≥ 0.9", Met: x >= 0.9})
		}
	}
	if f := r.RedisCost; f != nil {
		x := ratio(f.Wahaq.CPUMicros, f.Bare.CPUMicros)
		name := fmt.Sprintf("7 Redis CPU per logout (%d logouts, c=%d, private redis-server)", f.N, f.Concurrency)
		rows = append(rows,
			Row{ID: "redis_cpu_per_logout", Name: name, Unit: "µs", Wahaq: f.Wahaq.CPUMicros, Baseline: f.Bare.CPUMicros,
				BaselineName: "bare asynq", Ratio: x, RatioOf: "wahaq/baseline", Target: "ratio ≤ 2", Met: x > 0 && x <= 2},
			Row{ID: "redis_cpu_per_logout_features", Name: name, Unit: "µs", Wahaq: f.Wahaq.CPUMicros, Baseline: f.Features.CPUMicros,
				BaselineName: "asynq + features", Ratio: ratio(f.Wahaq.CPUMicros, f.Features.CPUMicros), RatioOf: "wahaq/baseline", Target: "none", Info: true},
			Row{ID: "redis_commands_per_logout", Name: "7 Redis commands per logout (INFO commandstats)", Unit: "calls",
				Wahaq: f.Wahaq.Commands, Baseline: f.Bare.Commands, BaselineName: "bare asynq",
				Ratio: ratio(f.Wahaq.Commands, f.Bare.Commands), RatioOf: "wahaq/baseline", Target: "none", Info: true},
			Row{ID: "redis_commands_per_logout_features", Name: "7 Redis commands per logout (INFO commandstats)", Unit: "calls",
				Wahaq: f.Wahaq.Commands, Baseline: f.Features.Commands, BaselineName: "asynq + features",
				Ratio: ratio(f.Wahaq.Commands, f.Features.Commands), RatioOf: "wahaq/baseline", Target: "none", Info: true})
	}
	if f := r.Isolation; f != nil {
		x := ratio(f.Alone.Seconds(), f.Beside.Seconds())
		rows = append(rows, Row{ID: "isolation",
			Name: fmt.Sprintf("8 healthy batch of %d (L=%s, cap %d) beside a hung server (%d tasks), c=%d", f.N, f.Latency, f.Cap, f.HungN, f.Concurrency),
			Unit: "s", Wahaq: f.Beside.Seconds(), Baseline: f.Alone.Seconds(), BaselineName: "the same batch alone",
			Ratio: x, RatioOf: "alone/beside", Target: "ratio ≥ 0.8", Met: x >= 0.8})
	}
	if f := r.Skew; f != nil {
		big := ratio(f.BigIdeal.Seconds(), f.BigActual.Seconds())
		small := ratio(f.SmallLatest.Seconds(), f.SmallIdeal.Seconds())
		rows = append(rows,
			Row{ID: "skew_big_efficiency",
				Name: fmt.Sprintf("9 skew: big server (%d of %d servers' sessions, cap %d, L=%s)", f.Big, f.Servers, f.Cap, f.Latency),
				Unit: "s", Wahaq: f.BigActual.Seconds(), Baseline: f.BigIdeal.Seconds(), BaselineName: "ideal ceil(N/C)·L",
				Ratio: big, RatioOf: "ideal/actual", Target: "ratio ≥ 0.9", Met: big >= 0.9},
			Row{ID: "skew_small_lateness", Name: fmt.Sprintf("9 skew: latest of nine small servers (%d sessions each)", f.Small),
				Unit: "s", Wahaq: f.SmallLatest.Seconds(), Baseline: f.SmallIdeal.Seconds(), BaselineName: "ideal ceil(N/C)·L",
				Ratio: small, RatioOf: "actual/ideal", Target: "ratio ≤ 1.5", Met: small > 0 && small <= 1.5})
	}
	if f := r.Waiting; f != nil {
		name := fmt.Sprintf("10 waiting: capped teardown (cap %d, L=%s, c=%d, %s window)", f.Cap, f.Latency, f.Concurrency, f.Window.Round(time.Second))
		rows = append(rows,
			Row{ID: "waiting_scripts_per_logout", Name: name + ", script calls per completed logout", Unit: "calls",
				Wahaq: f.Wahaq.Scripts, Baseline: f.Features.Scripts, BaselineName: "asynq + x/rate semaphore, retry in 1 s",
				Ratio: ratio(f.Wahaq.Scripts, f.Features.Scripts), RatioOf: "wahaq/baseline", Target: "wahaq ≤ 8", Met: f.Wahaq.Scripts <= 8},
			Row{ID: "waiting_dequeues_per_logout", Name: name + ", dequeues per completed logout", Unit: "calls",
				Wahaq: f.Wahaq.Dequeues, Baseline: f.Features.Dequeues, BaselineName: "asynq + x/rate semaphore, retry in 1 s",
				Ratio: ratio(f.Wahaq.Dequeues, f.Features.Dequeues), RatioOf: "wahaq/baseline", Target: "none", Info: true})
	}
	if f := r.Idle; f != nil {
		for _, p := range f.Points {
			x := ratio(p.Wahaq, p.Bare)
			rows = append(rows, Row{ID: fmt.Sprintf("idle_commands_%d", p.Servers),
				Name: fmt.Sprintf("11 idle worker, %d servers, Redis commands a second (%s window, private redis-server)", p.Servers, f.Window.Round(time.Second)),
				Unit: "calls/s", Wahaq: p.Wahaq, Baseline: p.Bare, BaselineName: fmt.Sprintf("bare asynq Server, %d queues, default config", p.Servers),
				Ratio: x, RatioOf: "wahaq/baseline", Target: "ratio ≤ 1", Met: x <= 1})
		}
	}
	if f := r.Fleet; f != nil {
		ideal := ratio(f.Ideal.Seconds(), f.Wahaq.Seconds())
		name := fmt.Sprintf("12 fleet teardown: %d servers, %d sessions each, L=%s, c=%d", f.Servers, f.Sessions, f.Latency, f.Concurrency)
		rows = append(rows,
			Row{ID: "fleet_efficiency", Name: name, Unit: "s", Wahaq: f.Wahaq.Seconds(), Baseline: f.Ideal.Seconds(),
				BaselineName: "ideal ceil(N/c)·L", Ratio: ideal, RatioOf: "ideal/actual", Target: "ratio ≥ 0.9", Met: ideal >= 0.9},
			Row{ID: "fleet_bare", Name: name, Unit: "s", Wahaq: f.Wahaq.Seconds(), Baseline: f.Bare.Seconds(),
				BaselineName: "bare asynq Server, same queues and HTTP call", Ratio: ratio(f.Bare.Seconds(), f.Wahaq.Seconds()),
				RatioOf: "baseline/wahaq", Target: "none", Info: true})
	}
	if f := r.Callbacks; f != nil {
		x := ratio(f.Alone.Seconds(), f.Beside.Seconds())
		rows = append(rows, Row{ID: "callbacks_hanging",
			Name: fmt.Sprintf("13 logouts beside %d hanging receivers: batch of %d (L=%s, cap %d, c=%d), %d deliveries stuck", f.Hanging, f.N, f.Latency, f.Cap, f.Concurrency, f.Stuck),
			Unit: "s", Wahaq: f.Beside.Seconds(), Baseline: f.Alone.Seconds(), BaselineName: "the same batch alone",
			Ratio: x, RatioOf: "alone/beside", Target: "ratio ≥ 0.9", Met: x >= 0.9})
	}
	return rows
}
