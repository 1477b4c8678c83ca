package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/redistest"
	"github.com/wahaq/wahaq/internal/store"
	"github.com/wahaq/wahaq/tasks"
)

// Process-level tests of a worker that dies (issue 11 item 7): a real wahaq
// worker process against a WAHA server whose logouts never answer.

// hungWAHA answers every request only when the client gives up.
func hungWAHA(t *testing.T) (*httptest.Server, *atomic.Int64) {
	var inFlight atomic.Int64
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inFlight.Add(1)
		defer inFlight.Add(-1)
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(func() { close(release); srv.Close() })
	return srv, &inFlight
}

// startDyingWorker starts a `wahaq worker` process (with setting, one
// NAME=value more) against a WAHA whose logouts hang, and enqueues a batch
// of two sessions, "a" and "b".
func startDyingWorker(t *testing.T, setting string) (*redis.Client, store.Keys, *proc, *atomic.Int64) {
	t.Helper()
	wahaqBin, _ := binaries(t)
	waha, inFlight := hungWAHA(t)
	rdb, ns := redistest.Client(t), redistest.Namespace(t)
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "REDIS_URL=" + redistest.URL(t),
		"WAHAQ_NAMESPACE=" + ns, "WAHA_BASE_URL=" + waha.URL, "WAHA_API_KEY=K", setting}
	prod, err := tasks.NewProducer(tasks.Config{Redis: rdb, Namespace: ns})
	require.NoError(t, err)
	w := start(t, "worker", env, wahaqBin, "worker", "--metrics-addr", "")
	_, err = prod.EnqueueBatch(context.Background(), tasks.BatchRequest{Sessions: []string{"a", "b"}})
	require.NoError(t, err)
	return rdb, store.KeysFor(ns, "default"), w, inFlight
}

func TestWorkerKilledFreesItsSlot(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binaries")
	}
	t.Parallel()
	rdb, k, w, inFlight := startDyingWorker(t, "WAHAQ_INSTANCE_CONCURRENCY=1")
	ctx := context.Background()
	require.Eventually(t, func() bool { return inFlight.Load() == 1 }, 20*time.Second, 10*time.Millisecond)
	require.EqualValues(t, 1, rdb.ZCard(ctx, k.Slots()).Val())
	require.Equal(t, store.GateMarker, rdb.Get(ctx, k.Paused()).Val(), "the cap of 1 is full: the queue is gated")

	require.NoError(t, w.cmd.Process.Signal(syscall.SIGKILL))
	<-w.done
	killed := time.Now()
	live := func() int64 {
		return rdb.ZCount(ctx, k.Slots(), "("+strconv.FormatInt(time.Now().UnixMilli(), 10), "+inf").Val()
	}
	require.Eventually(t, func() bool { return live() == 0 && rdb.Exists(ctx, k.Paused()).Val() == 0 },
		15*time.Second, 50*time.Millisecond, "the killed worker's slot and gate end with the lease")
	t.Logf("slot and gate of a worker killed mid-logout freed %s after SIGKILL", time.Since(killed).Round(100*time.Millisecond))
}

func TestWorkerSecondSIGTERMHandsTasksBack(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binaries")
	}
	t.Parallel()
	rdb, k, w, inFlight := startDyingWorker(t, "WAHAQ_SHUTDOWN_GRACE=2m")
	ctx := context.Background()
	require.Eventually(t, func() bool { return inFlight.Load() == 2 }, 20*time.Second, 10*time.Millisecond)

	require.NoError(t, w.cmd.Process.Signal(syscall.SIGTERM))
	require.Eventually(t, func() bool { return strings.Contains(w.out.String(), "finishing in-flight logouts") }, 10*time.Second, 10*time.Millisecond)
	select {
	case <-w.done:
		t.Fatal("the first SIGTERM waits for the running logouts (grace 2m)")
	case <-time.After(300 * time.Millisecond):
	}
	forced := time.Now()
	require.NoError(t, w.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-w.done:
	case <-time.After(15 * time.Second):
		t.Fatal("the second SIGTERM should stop the worker at once")
	}
	t.Logf("exited %s after the second SIGTERM", time.Since(forced).Round(10*time.Millisecond))
	require.NoError(t, w.err, "a forced stop still exits 0")
	require.Contains(t, w.out.String(), "forcing the stop")
	require.EqualValues(t, 2, rdb.LLen(ctx, k.Pending()).Val(), "both tasks are pending again in asynq")
	require.Zero(t, rdb.ZCard(ctx, k.Slots()).Val(), "their slots are free")
}
