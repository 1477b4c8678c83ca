package worker

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/asynqcompat"
	"github.com/wahaq/wahaq/internal/redistest"
	"github.com/wahaq/wahaq/internal/store"
	"github.com/wahaq/wahaq/tasks"
	"github.com/wahaq/wahaq/wahaclient/wahafake"
)

// TestCompletedLogoutsSettleAsynqInFinish: once asynq's done has been seen
// with the digest the fence knows, every completed logout's Finish does
// asynq's done, so asynq's own done no longer reaches Redis (counted past
// the worker's hook), and asynq still reads its queue as it would have:
// nothing active, every task processed. A failed attempt is left to asynq.
func TestCompletedLogoutsSettleAsynqInFinish(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	ns := redistest.Namespace(t)
	fake := wahafake.NewT(t, wahafake.Options{})
	w, err := New(Config{Redis: rdb, Namespace: ns, Instances: []Instance{{Name: "default", BaseURL: fake.URL()}},
		Concurrency: 4, PollInterval: 10 * time.Millisecond, DelayedInterval: 50 * time.Millisecond,
		RetryBase: 10 * time.Millisecond, RetryMax: 20 * time.Millisecond, Registerer: prometheus.NewRegistry(), FastPath: FastPathOn})
	require.NoError(t, err)
	sent := &wire{n: map[asynqcompat.Op]int{}}
	rdb.AddHook(sent)
	sessions := fake.AddSessions("s", 30, wahafake.StatusWorking)
	// one session answers 503 once: its first attempt fails and retries
	fake.Script(sessions[0], wahafake.Fault{Status: 503, Times: 1})
	got := runToDone(t, rdb, ns, w, sessions)
	require.EqualValues(t, len(sessions), got.Outcomes[tasks.OutcomeLoggedOut])
	w.Shutdown()

	// the tasks that ended before asynq's first done came back leave it to
	// asynq: at most one per handler
	dones := sent.count(asynqcompat.OpDone)
	t.Logf("%d of %d asynq dones reached Redis", dones, len(sessions))
	require.Positive(t, dones, "asynq's first done is what the fence checks")
	require.LessOrEqual(t, dones, 4, "only the dones before the first was seen reached Redis")
	require.Zero(t, w.hook.PendingSettled(), "asynq took every settled id")
	q := store.KeysFor(ns, "default").Queue
	info, err := asynq.NewInspectorFromRedisClient(rdb).GetQueueInfo(q)
	require.NoError(t, err)
	require.Zero(t, info.Active)
	require.Zero(t, info.Pending)
	require.Zero(t, info.Retry)
	// asynq counts an attempt that failed as processed too
	require.Equal(t, len(sessions)+1, info.Processed, "asynq counts every completed logout")
	require.Equal(t, 1, info.Failed, "the 503 attempt went through asynq's retry")
}

// warnings keeps the warnings of an asynq server's logger.
type warnings struct {
	mu  sync.Mutex
	got []string
}

func (l *warnings) Debug(...any) {}
func (l *warnings) Info(...any)  {}
func (l *warnings) Warn(args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.got = append(l.got, fmt.Sprint(args...))
}
func (l *warnings) Error(args ...any) { l.Warn(args...) }
func (l *warnings) Fatal(args ...any) { l.Warn(args...) }

func (l *warnings) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.got...)
}

// TestHandlerInAnotherServer mounts Worker.Handler in an asynq server of
// the caller's own, on a client without the worker's hook, after the
// worker's own server has run (so its fast path settles): that server
// still does every done itself, with no "NOT FOUND" from a task the
// finish already settled, and asynq reads the queue as it would have.
func TestHandlerInAnotherServer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := redistest.Client(t)
	ns := redistest.Namespace(t)
	fake := wahafake.NewT(t, wahafake.Options{})
	w, err := New(Config{Redis: rdb, Namespace: ns, Instances: []Instance{{Name: "default", BaseURL: fake.URL()}},
		Concurrency: 4, PollInterval: 10 * time.Millisecond, Registerer: prometheus.NewRegistry(), FastPath: FastPathOn})
	require.NoError(t, err)
	first := fake.AddSessions("w", 8, wahafake.StatusWorking)
	runToDone(t, rdb, ns, w, first)
	w.Shutdown()
	require.True(t, w.hook.Fence().Settle(), "the worker's own server settled in its finishes")

	own := redistest.Client(t) // the caller's client: no wahaq hook
	q := store.KeysFor(ns, "default").Queue
	logs := &warnings{}
	srv := asynq.NewServerFromRedisClient(own, asynq.Config{Concurrency: 4, Queues: map[string]int{q: 1},
		TaskCheckInterval: 10 * time.Millisecond, Logger: logs, LogLevel: asynq.WarnLevel})
	require.NoError(t, srv.Start(w.Handler()))
	t.Cleanup(srv.Shutdown)
	prod, err := tasks.NewProducer(tasks.Config{Redis: rdb, Namespace: ns, Instances: []string{"default"}})
	require.NoError(t, err)
	insp, err := tasks.NewInspector(tasks.Config{Redis: rdb, Namespace: ns, Instances: []string{"default"}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = insp.Close() })
	second := fake.AddSessions("o", 20, wahafake.StatusWorking)
	b, err := prod.EnqueueBatch(ctx, tasks.BatchRequest{Sessions: second})
	require.NoError(t, err)
	var got *tasks.Batch
	require.Eventually(t, func() bool {
		got, err = insp.Batch(ctx, b.BatchID)
		return err == nil && got.Done
	}, 30*time.Second, 10*time.Millisecond)
	require.EqualValues(t, len(second), got.Outcomes[tasks.OutcomeLoggedOut])
	srv.Shutdown()

	require.Empty(t, logs.all(), "the caller's server did its dones without a complaint")
	info, err := asynq.NewInspectorFromRedisClient(own).GetQueueInfo(q)
	require.NoError(t, err)
	require.Zero(t, info.Active)
	require.Zero(t, info.Retry)
	require.Equal(t, len(first)+len(second), info.Processed, "each task counted once")
}
