package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is the outcome of a run: the machine, the raw figures of each
// scenario that ran, and the rows of the table.
type Report struct {
	Cores        int           `json:"cores"`
	GoVersion    string        `json:"go_version"`
	OS           string        `json:"os"`
	RedisVersion string        `json:"redis_version"`
	Started      time.Time     `json:"started"`
	Elapsed      time.Duration `json:"-"`
	Sizes        Sizes         `json:"-"`

	Enqueue    *EnqueueFigures    `json:"-"`
	Throughput *ThroughputFigures `json:"-"`
	Latency    *LatencyFigures    `json:"-"`
	Teardown   *TeardownFigures   `json:"-"`
	Footprint  *FootprintFigures  `json:"-"`
	Processing *ProcessingFigures `json:"-"`
	RedisCost  *RedisCostFigures  `json:"-"`
	Isolation  *IsolationFigures  `json:"-"`
	Skew       *SkewFigures       `json:"-"`
	Waiting    *WaitingFigures    `json:"-"`
	Idle       *IdleFigures       `json:"-"`
	Fleet      *FleetFigures      `json:"-"`
	Callbacks  *CallbacksFigures  `json:"-"`
}

// Row is one line of the table: wahaq's figure, the baseline's figure from
// the same run, and their ratio.
type Row struct {
	// ID is stable, for scripts: enqueue, throughput, latency_p50,
	// latency_p99, teardown, redis_bytes_per_result, worker_peak_rss.
	ID string `json:"id"`
	// Name says what was measured.
	Name string `json:"name"`
	// Unit of Wahaq and Baseline: tasks/s, ms, s, B, MiB.
	Unit     string  `json:"unit"`
	Wahaq    float64 `json:"wahaq"`
	Baseline float64 `json:"baseline"`
	// BaselineName says what the baseline is.
	BaselineName string `json:"baseline_name"`
	// Ratio is wahaq/baseline, except for teardown where it is
	// ideal/actual (baseline/wahaq); RatioOf says which.
	Ratio   float64 `json:"ratio"`
	RatioOf string  `json:"ratio_of"`
	// Target is the target and Met whether this run meets it.
	Target string `json:"target"`
	Met    bool   `json:"met"`
	// Info marks a row the issue sets no target for (shown for context);
	// its MET column reads "—" and Met is false.
	Info bool `json:"info,omitempty"`
}

// Rows returns the table's rows for the scenarios that ran.
func (r *Report) Rows() []Row {
	var rows []Row
	ratio := func(a, b float64) float64 {
		if b == 0 {
			return 0
		}
		return a / b
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	if f := r.Enqueue; f != nil {
		x := ratio(f.Wahaq, f.Bare)
		rows = append(rows, Row{ID: "enqueue", Name: fmt.Sprintf("1 bulk enqueue, %d logouts", f.N), Unit: "tasks/s",
			Wahaq: f.Wahaq, Baseline: f.Bare, BaselineName: fmt.Sprintf("asynq Client.Enqueue, %d goroutines", f.Goroutines),
			Ratio: x, RatioOf: "wahaq/baseline", Target: "ratio ≥ 1.7", Met: x >= 1.7})
	}
	if f := r.Throughput; f != nil {
		x := ratio(f.Wahaq, f.Bare)
		rows = append(rows, Row{ID: "throughput", Name: fmt.Sprintf("2 processing, %d logouts, concurrency %d", f.N, f.Concurrency), Unit: "tasks/s",
			Wahaq: f.Wahaq, Baseline: f.Bare, BaselineName: "bare asynq handler, same HTTP call",
			Ratio: x, RatioOf: "wahaq/baseline", Target: "ratio ≥ 0.9", Met: x >= 0.9})
	}
	if f := r.Latency; f != nil {
		rows = append(rows,
			Row{ID: "latency_p50", Name: fmt.Sprintf("3 latency p50, enqueue→completed (%d / %d samples)", f.Samples, f.BareSamples), Unit: "ms",
				Wahaq: ms(f.WahaqP50), Baseline: ms(f.BareP50), BaselineName: "asynq default config (1 s polling)",
				Ratio: ratio(ms(f.WahaqP50), ms(f.BareP50)), RatioOf: "wahaq/baseline", Target: "p50 ≤ 20 ms", Met: f.WahaqP50 <= 20*time.Millisecond},
			Row{ID: "latency_p99", Name: "3 latency p99, enqueue→completed", Unit: "ms",
				Wahaq: ms(f.WahaqP99), Baseline: ms(f.BareP99), BaselineName: "asynq default config (1 s polling)",
				Ratio: ratio(ms(f.WahaqP99), ms(f.BareP99)), RatioOf: "wahaq/baseline", Target: "p99 ≤ 100 ms", Met: f.WahaqP99 <= 100*time.Millisecond})
	}
	if f := r.Teardown; f != nil {
		x := ratio(f.Ideal.Seconds(), f.Actual.Seconds())
		rows = append(rows, Row{ID: "teardown", Name: fmt.Sprintf("4 teardown N=%d L=%s C=%d, %d workers in-process", f.N, f.Latency, f.Cap, f.Workers),
			Unit: "s", Wahaq: f.Actual.Seconds(), Baseline: f.Ideal.Seconds(), BaselineName: "ideal ceil(N/C)·L",
			Ratio: x, RatioOf: "ideal/actual", Target: "ratio ≥ 0.9", Met: x >= 0.9})
	}
	if f := r.Footprint; f != nil {
		rows = append(rows,
			Row{ID: "redis_bytes_per_result", Name: "5 Redis bytes per retained result (MEMORY USAGE)", Unit: "B",
				Wahaq: f.WahaqBytes, Baseline: f.BareBytes, BaselineName: "asynq Retention(24h) + ResultWriter",
				Ratio: ratio(f.WahaqBytes, f.BareBytes), RatioOf: "wahaq/baseline", Target: "≤ 1024 B", Met: f.WahaqBytes > 0 && f.WahaqBytes <= 1024},
			Row{ID: "worker_peak_rss", Name: fmt.Sprintf("5 worker peak RSS, child process, %d-task batch", f.N), Unit: "MiB",
				Wahaq: float64(f.WahaqRSS) / (1 << 20), Baseline: float64(f.BareRSS) / (1 << 20), BaselineName: "bare asynq worker child",
				Ratio: ratio(float64(f.WahaqRSS), float64(f.BareRSS)), RatioOf: "wahaq/baseline", Target: "≤ 64 MiB", Met: f.WahaqRSS > 0 && f.WahaqRSS <= 64<<20})
	}
	return append(rows, r.newRows()...)
}

func formatValue(v float64, unit string) string {
	switch unit {
	case "tasks/s":
		return fmt.Sprintf("%.0f tasks/s", v)
	case "ms":
		return fmt.Sprintf("%.1f ms", v)
	case "s":
		return fmt.Sprintf("%.2f s", v)
	case "B":
		return fmt.Sprintf("%.0f B", v)
	case "MiB":
		return fmt.Sprintf("%.1f MiB", v)
	case "calls/s":
		return fmt.Sprintf("%.0f calls/s", v)
	case "µs", "calls":
		return fmt.Sprintf("%.1f %s", v, unit)
	}
	return fmt.Sprintf("%g %s", v, unit)
}

// Header is the line above the table: the machine and the toolchain.
func (r *Report) Header() string {
	rv := r.RedisVersion
	if rv == "" {
		rv = "unknown"
	}
	return fmt.Sprintf("wahaq bench: %d cores (runtime.NumCPU), %s %s, Redis %s", r.Cores, r.GoVersion, r.OS, rv)
}

// WriteTable prints the header and the table.
func (r *Report) WriteTable(w io.Writer) error {
	var b strings.Builder
	b.WriteString(r.Header() + "\n\n")
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ROW\tWAHAQ\tBASELINE\tRATIO\tTARGET\tMET\tBASELINE IS")
	for _, row := range r.Rows() {
		met := "yes"
		switch {
		case row.Info:
			met = "—"
		case !row.Met:
			met = "NO"
		}
		x := fmt.Sprintf("%.2f×", row.Ratio)
		if row.RatioOf != "wahaq/baseline" {
			x += " (" + row.RatioOf + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", row.Name, formatValue(row.Wahaq, row.Unit), formatValue(row.Baseline, row.Unit),
			x, row.Target, met, row.BaselineName)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(&b, "\nratio is wahaq/baseline unless marked; every baseline ran in this run, on this Redis. Took %s.\n", r.Elapsed.Round(100*time.Millisecond))
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteJSON prints the report as one JSON document.
func (r *Report) WriteJSON(w io.Writer) error {
	doc := struct {
		Cores        int       `json:"cores"`
		GoVersion    string    `json:"go_version"`
		OS           string    `json:"os"`
		RedisVersion string    `json:"redis_version"`
		Started      time.Time `json:"started"`
		ElapsedSec   float64   `json:"elapsed_seconds"`
		Rows         []Row     `json:"rows"`
	}{r.Cores, r.GoVersion, r.OS, r.RedisVersion, r.Started, r.Elapsed.Seconds(), r.Rows()}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}
