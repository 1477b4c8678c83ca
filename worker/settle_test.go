package worker

import (
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

// TestCompletedLogoutsSettleAsynqInFinish: every completed logout's Finish
// does asynq's done, so asynq's own done never reaches Redis (counted past
// the worker's hook), and asynq still reads its queue as it would have:
// nothing active, every task processed. A failed attempt is left to asynq.
func TestCompletedLogoutsSettleAsynqInFinish(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	ns := redistest.Namespace(t)
	fake := wahafake.NewT(t, wahafake.Options{})
	w, err := New(Config{Redis: rdb, Namespace: ns, Instances: []Instance{{Name: "default", BaseURL: fake.URL()}},
		Concurrency: 4, PollInterval: 10 * time.Millisecond, DelayedInterval: 50 * time.Millisecond,
		RetryBase: 10 * time.Millisecond, RetryMax: 20 * time.Millisecond, Registerer: prometheus.NewRegistry()})
	require.NoError(t, err)
	sent := &wire{n: map[asynqcompat.Op]int{}}
	rdb.AddHook(sent)
	sessions := fake.AddSessions("s", 30, wahafake.StatusWorking)
	// one session answers 503 once: its first attempt fails and retries
	fake.Script(sessions[0], wahafake.Fault{Status: 503, Times: 1})
	got := runToDone(t, rdb, ns, w, sessions)
	require.EqualValues(t, len(sessions), got.Outcomes[tasks.OutcomeLoggedOut])
	w.Shutdown()

	require.Zero(t, sent.count(asynqcompat.OpDone), "no asynq done reached Redis")
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
