package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/wahaq/wahaq/internal/redistest"
)

// TestMain lets the footprint scenario start this test binary as its worker
// child process.
func TestMain(m *testing.M) {
	if os.Getenv(ChildEnv) != "" {
		os.Exit(ChildMain())
	}
	os.Exit(m.Run())
}

// TestRunTiny runs every scenario at tiny sizes against the test Redis. It
// proves the code works end to end; it asserts no timing.
func TestRunTiny(t *testing.T) {
	if testing.Short() {
		t.Skip("runs workers and child processes")
	}
	rdb := redistest.Client(t)
	sizes := Sizes{
		EnqueueN: 200, EnqueueGoroutines: 4,
		ThroughputN: 200, Concurrency: 8,
		LatencySamples: 5, LatencyBareSamples: 2,
		TeardownN: 16, TeardownCap: 4, TeardownWorkers: 2, TeardownLatency: 20 * time.Millisecond,
		FootprintN: 200,
		IsolationN: 20, IsolationLatency: 5 * time.Millisecond,
		SkewSmall: 2, SkewLatency: 10 * time.Millisecond,
		WaitingWindow: 2 * time.Second,
		IdleServers:   [3]int{1, 3}, IdleWindow: time.Second,
		FleetServers: 3, FleetSessions: 2, FleetConcurrency: 4, FleetLatency: 5 * time.Millisecond,
		CallbacksN: 20,
	}
	var progress bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	runID := newRunID()
	rep, err := Run(ctx, Options{Redis: rdb, RedisURL: redistest.URL(t), Sizes: sizes, Progress: &progress, RunID: runID})
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, progress.String())
	}
	rows := rep.Rows()
	want := []string{"enqueue", "throughput", "latency_p50", "latency_p99", "teardown", "redis_bytes_per_result", "worker_peak_rss",
		"processing_features_c20", "processing_features_c50", "processing_bare_c20", "processing_bare_c50",
		"redis_cpu_per_logout", "redis_cpu_per_logout_features", "redis_commands_per_logout", "redis_commands_per_logout_features",
		"isolation", "skew_big_efficiency", "skew_small_lateness", "waiting_scripts_per_logout", "waiting_dequeues_per_logout",
		"idle_commands_1", "idle_commands_3", "fleet_efficiency", "fleet_bare",
		"callbacks_hanging"}
	if len(rows) != len(want) {
		t.Fatalf("%d rows, want %d: %+v", len(rows), len(want), rows)
	}
	for i, r := range rows {
		if r.ID != want[i] {
			t.Errorf("row %d is %q, want %q", i, r.ID, want[i])
		}
		if r.Wahaq <= 0 || r.Baseline <= 0 || r.Ratio <= 0 {
			// peak RSS is 0 only where /proc is missing; an idle worker
			// may make no Redis call at all in the tiny window
			idle := strings.HasPrefix(r.ID, "idle_") && r.Wahaq == 0 && r.Baseline > 0
			if !idle && !(r.ID == "worker_peak_rss" && r.Wahaq == 0 && r.Baseline == 0 && !procAvailable()) {
				t.Errorf("row %s: figures must be positive: %+v", r.ID, r)
			}
		}
	}
	var table bytes.Buffer
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	out := table.String()
	for _, r := range rows {
		if !strings.Contains(out, r.Name) {
			t.Errorf("table lacks row %q:\n%s", r.Name, out)
		}
	}
	if got := strings.Count(out, "×"); got != len(rows) {
		t.Errorf("table shows %d ratios, want %d:\n%s", got, len(rows), out)
	}
	if !strings.Contains(out, "cores") {
		t.Errorf("header lacks the core count:\n%s", out)
	}
	var doc struct {
		Cores int   `json:"cores"`
		Rows  []Row `json:"rows"`
	}
	var js bytes.Buffer
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(js.Bytes(), &doc); err != nil || doc.Cores == 0 || len(doc.Rows) != len(rows) {
		t.Errorf("JSON report: %v %s", err, js.String())
	}
	// Nothing left behind.
	if keys, _ := rdb.Keys(ctx, "*wbench-"+runID+"-*").Result(); len(keys) > 0 {
		t.Errorf("keys left behind: %v", keys[:min(len(keys), 10)])
	}
	t.Logf("\n%s", out)
}

func procAvailable() bool {
	_, err := os.Stat("/proc/self/status")
	return err == nil
}

func TestPercentile(t *testing.T) {
	d := []time.Duration{5, 1, 4, 2, 3}
	if got := percentile(d, 50); got != 3 {
		t.Errorf("p50 = %d, want 3", got)
	}
	if got := percentile(d, 99); got != 5 {
		t.Errorf("p99 = %d, want 5", got)
	}
}
