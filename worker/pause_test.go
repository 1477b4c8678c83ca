package worker_test

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/store"
	"github.com/wahaq/wahaq/tasks"
	"github.com/wahaq/wahaq/wahaclient/wahafake"
	"github.com/wahaq/wahaq/wahaqtest"
	"github.com/wahaq/wahaq/worker"
)

// TestPauseResume2000 pauses a 2,000-session batch mid-way on a server
// capped at 4 logouts in flight, while one of its logouts is in flight and
// will fail (503, then retried): nothing of the batch starts while it is
// paused, not even that retry, across a restart of every worker; once
// resumed, every session is logged out exactly once and the batch reads
// done.
func TestPauseResume2000(t *testing.T) {
	if testing.Short() {
		t.Skip("2,000 logouts through two workers; skipped with -short")
	}
	t.Parallel()
	const n = 2000
	cfg := func(c *worker.Config) {
		c.Concurrency = 8
		c.InstanceConcurrency = 4
		c.ReconcileInterval = 100 * time.Millisecond
	}
	env := wahaqtest.Start(t, wahaqtest.Options{Fake: wahafake.Options{LogoutLatency: 2 * time.Millisecond}, Worker: cfg})
	second := env.StartWorker(t, cfg)
	ctx := context.Background()
	names := env.Fake.AddSessions("p", n, wahafake.StatusWorking)
	// Slow and failing once: the first is in flight when the batch is
	// paused, the others not started yet.
	slow := names[n/2 : n/2+4]
	for _, s := range slow {
		env.Fake.Script(s, wahafake.Fault{Status: http.StatusServiceUnavailable, Times: 1, Delay: 2 * time.Second})
	}
	info, err := env.Producer.EnqueueBatch(ctx, tasks.BatchRequest{Sessions: names})
	require.NoError(t, err)
	slowID := taskOf(t, env, info.BatchID, slow[0])

	require.Eventually(t, func() bool {
		tk, err := env.Inspector.Task(ctx, slowID)
		require.NoError(t, err)
		return tk.State == tasks.StateActive
	}, 2*time.Minute, 5*time.Millisecond, "the batch reaches its middle")
	p, err := env.Producer.PauseBatch(tasks.WithActor(ctx, "ops"), info.BatchID)
	require.NoError(t, err)
	require.True(t, p.Paused)
	require.Equal(t, "ops", p.Batch.PausedBy)

	// What was in flight finishes; the failed attempt waits for its retry.
	b := waitBatchFunc(t, env, info.BatchID, func(b *tasks.Batch) bool { return b.Counts[tasks.StateActive] == 0 })
	require.False(t, b.Done)
	require.Less(t, b.Counts[tasks.StateCompleted], int64(n))
	require.Equal(t, 1, env.Fake.LogoutCalls(slow[0]), "its attempt ended in a 503")
	settled := env.Fake.TotalLogoutCalls()
	atPause := map[string]int{}
	for _, s := range slow {
		atPause[s] = env.Fake.LogoutCalls(s)
	}

	// Restart every worker.
	env.Worker.Shutdown()
	second.Shutdown()
	env.StartWorker(t, cfg)
	env.StartWorker(t, cfg)
	k := store.KeysFor(env.Namespace, env.Instance)
	require.Eventually(t, func() bool {
		b, err := env.Inspector.Batch(ctx, info.BatchID)
		require.NoError(t, err)
		held, err := env.Redis.ZCard(ctx, k.BatchHeld(info.BatchID)).Result()
		require.NoError(t, err)
		final := b.Counts[tasks.StateCompleted] + b.Counts[tasks.StateDead] + b.Counts[tasks.StateCanceled]
		return held == b.Total-final
	}, time.Minute, 10*time.Millisecond, "every task not final is held, the retry too")
	require.Equal(t, settled, env.Fake.TotalLogoutCalls(), "no logout started while paused, across the restart")
	b, err = env.Inspector.Batch(ctx, info.BatchID)
	require.NoError(t, err)
	require.True(t, b.Paused)
	require.False(t, b.Done)
	require.Zero(t, b.Counts[tasks.StateActive])
	require.Zero(t, b.Counts[tasks.StateCanceled]+b.Counts[tasks.StateDead], "neither canceled nor failed")
	require.Equal(t, 1, env.Fake.LogoutCalls(slow[0]), "no retry while paused")
	for _, s := range slow[1:] {
		// Not started, in flight at the pause, or even retried before it
		// (with the fast path off, a task handed back at a full cap can
		// run after those behind it): whatever it had, nothing since.
		require.Equal(t, atPause[s], env.Fake.LogoutCalls(s), s)
		require.LessOrEqual(t, atPause[s], 2, s)
	}

	r, err := env.Producer.ResumeBatch(ctx, info.BatchID)
	require.NoError(t, err)
	require.False(t, r.Paused)
	require.Positive(t, r.Moved)
	b = env.WaitBatch(t, info.BatchID, 2*time.Minute)
	require.True(t, b.Done)
	require.EqualValues(t, n, b.Outcomes[tasks.OutcomeLoggedOut])
	st := env.Fake.Stats()
	for _, s := range names {
		want := 1
		if slices.Contains(slow, s) {
			want = 2 // a 503, then the logout
		}
		require.Equal(t, want, st.LogoutCalls[s], s)
	}
	require.Equal(t, len(slow), st.CallsByStatus["503"])
	require.Equal(t, n+len(slow), st.TotalLogoutCalls)
	require.Zero(t, st.ConcurrentSameSession)
	require.LessOrEqual(t, st.MaxInFlight, 4, "the cap held")
}

// n2000Pages bounds taskOf's paging.
const n2000Pages = 100

// taskOf finds the task of session in batch id.
func taskOf(t *testing.T, env *wahaqtest.Env, id, session string) string {
	t.Helper()
	page := tasks.Page{Limit: tasks.MaxPageLimit}
	for range n2000Pages {
		p, err := env.Inspector.BatchTasks(context.Background(), id, tasks.TaskFilter{}, page)
		require.NoError(t, err)
		for _, tk := range p.Tasks {
			if tk.Session == session {
				return tk.ID
			}
		}
		if p.NextCursor == "" {
			break
		}
		page.Cursor = p.NextCursor
	}
	t.Fatalf("no task of %s in batch %s", session, id)
	return ""
}

// waitBatchFunc polls batch id until cond holds.
func waitBatchFunc(t *testing.T, env *wahaqtest.Env, id string, cond func(*tasks.Batch) bool) *tasks.Batch {
	t.Helper()
	var b *tasks.Batch
	require.Eventually(t, func() bool {
		var err error
		b, err = env.Inspector.Batch(context.Background(), id)
		require.NoError(t, err)
		return cond(b)
	}, time.Minute, 5*time.Millisecond)
	return b
}

// TestPauseResumeAsynqDequeue: on a rate-limited server asynq's own
// dequeue delivers the tasks (the take is not used): the start script
// refuses those of a paused batch, the worker hands them back without a
// retry spent, the reconciler holds them; once resumed they run at once
// (not a minute later) and each session is logged out once.
func TestPauseResumeAsynqDequeue(t *testing.T) {
	t.Parallel()
	const n = 20
	env := wahaqtest.Start(t, wahaqtest.Options{NoStart: true, Worker: func(c *worker.Config) {
		c.Instances[0].Rate = 1000
		c.ReconcileInterval = 100 * time.Millisecond
	}})
	ctx := context.Background()
	names := env.Fake.AddSessions("r", n, wahafake.StatusWorking)
	info, err := env.Producer.EnqueueBatch(ctx, tasks.BatchRequest{Sessions: names})
	require.NoError(t, err)
	_, err = env.Producer.PauseBatch(ctx, info.BatchID)
	require.NoError(t, err)
	require.NoError(t, env.Worker.Start())
	k := store.KeysFor(env.Namespace, env.Instance)
	require.Eventually(t, func() bool {
		held, err := env.Redis.ZCard(ctx, k.BatchHeld(info.BatchID)).Result()
		require.NoError(t, err)
		return held == n
	}, time.Minute, 10*time.Millisecond, "handed back, then held by the reconciler")
	require.Zero(t, env.Fake.TotalLogoutCalls())

	// Resumed with no worker running: what it put back is due now.
	env.Worker.Shutdown()
	r, err := env.Producer.ResumeBatch(ctx, info.BatchID)
	require.NoError(t, err)
	require.EqualValues(t, n, r.Moved)
	due, err := env.Redis.ZCount(ctx, k.Retry(), "-inf", strconv.FormatInt(time.Now().Unix(), 10)).Result()
	require.NoError(t, err)
	pending, err := env.Redis.LLen(ctx, k.Pending()).Result()
	require.NoError(t, err)
	require.EqualValues(t, n, due+pending, "the hand-back's minute is not waited out")
	env.StartWorker(t, func(c *worker.Config) {
		c.Instances[0].Rate = 1000
		c.ReconcileInterval = 100 * time.Millisecond
	})
	b := env.WaitBatch(t, info.BatchID, wait)
	require.EqualValues(t, n, b.Outcomes[tasks.OutcomeLoggedOut])
	for _, s := range names {
		require.Equal(t, 1, env.Fake.LogoutCalls(s), s)
	}
	p, err := env.Inspector.BatchTasks(ctx, info.BatchID, tasks.TaskFilter{}, tasks.Page{Limit: n})
	require.NoError(t, err)
	for _, tk := range p.Tasks {
		require.Equal(t, 1, tk.Attempts, "%s: a paused wait spends no retry", tk.Session)
	}
}
