package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/redistest"
	"github.com/wahaq/wahaq/tasks"
	"github.com/wahaq/wahaq/wahaclient/wahafake"
)

// discoveryEntries is the size of the listing of the test of record.
const discoveryEntries = 800_000

// maxDiscoveryGrowth is the bound on the worker's peak RSS growth while it
// discovers a listing of discoveryEntries sessions (issue 11 item 3).
const maxDiscoveryGrowth = 64 << 20

// vmHWM reads a process's peak resident set size (VmHWM) in bytes.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	require.NoError(t, err, "the test reads /proc (Linux)")
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			require.NoError(t, err)
			return kb << 10
		}
	}
	t.Fatalf("no VmHWM in /proc/%d/status", pid)
	return 0
}

// TestDiscovery800kPeakRSS is the test of record of the streaming
// discovery: a real `wahaq worker` process (built without -race, which
// inflates memory) discovers a WAHA listing of 800,000 sessions, which the
// fake writes as it sends it, into a private redis-server; the worker's
// peak RSS (VmHWM) grows by less than 64 MiB from its idle peak.
func TestDiscovery800kPeakRSS(t *testing.T) {
	if testing.Short() {
		t.Skip("800,000 sessions through a worker process; skipped with -short")
	}
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("needs /proc")
	}
	wahaqBin, _ := binaries(t)
	srv, err := redistest.Launch(redistest.ServerConfig{})
	require.NoError(t, err)
	t.Cleanup(srv.Kill)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { _ = rdb.Close() })
	ns := "rss"
	fake := wahafake.NewT(t, wahafake.Options{})
	fake.GenerateSessions("gen", discoveryEntries, wahafake.StatusStopped)

	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "REDIS_URL=redis://" + srv.Addr + "/0",
		"WAHAQ_NAMESPACE=" + ns, "WAHA_BASE_URL=" + fake.URL(), "WAHA_API_KEY=K",
		// One task at a time: while the discovery runs, no logout does, so
		// what grows is the discovery's.
		"WAHAQ_CONCURRENCY=1", "WAHAQ_INSTANCE_CONCURRENCY=1"}
	w := start(t, "worker", env, wahaqBin, "worker", "--metrics-addr", "")
	ctx := context.Background()
	prod, err := tasks.NewProducer(tasks.Config{Redis: rdb, Namespace: ns})
	require.NoError(t, err)
	insp, err := tasks.NewInspector(tasks.Config{Redis: rdb, Namespace: ns})
	require.NoError(t, err)
	// Idle for a while: the baseline is the worker's peak once it polls.
	require.Eventually(t, func() bool { return strings.Contains(w.out.String(), "worker started") }, 30*time.Second, 50*time.Millisecond)
	time.Sleep(2 * time.Second)
	before := vmHWM(t, w.cmd.Process.Pid)

	began := time.Now()
	info, err := prod.EnqueueDiscovery(ctx, tasks.DiscoveryRequest{})
	require.NoError(t, err)
	var b *tasks.Batch
	require.Eventually(t, func() bool {
		b, err = insp.Batch(ctx, info.BatchID)
		return err == nil && !b.Discovering
	}, 15*time.Minute, 200*time.Millisecond)
	took := time.Since(began)
	after := vmHWM(t, w.cmd.Process.Pid)
	w.stop(t, 60*time.Second)

	require.Empty(t, b.Error)
	require.False(t, b.Interrupted)
	require.EqualValues(t, discoveryEntries+1, b.Total, "every generated session and default")
	used, _ := rdb.Info(ctx, "memory").Result()
	var redisUsed string
	for _, l := range strings.Split(used, "\n") {
		if v, ok := strings.CutPrefix(l, "used_memory_human:"); ok {
			redisUsed = strings.TrimSpace(v)
		}
	}
	growth := after - before
	t.Logf("discovery of %d entries: %s; worker VmHWM %.1f MiB idle, %.1f MiB after, growth %.1f MiB (bound %d MiB); Redis used_memory %s",
		discoveryEntries, took.Round(100*time.Millisecond), float64(before)/(1<<20), float64(after)/(1<<20),
		float64(growth)/(1<<20), maxDiscoveryGrowth>>20, redisUsed)
	require.Less(t, growth, int64(maxDiscoveryGrowth))
}
