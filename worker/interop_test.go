package worker_test

import (
	"context"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/tasks"
	"github.com/wahaq/wahaq/wahaclient/wahafake"
	"github.com/wahaq/wahaq/wahaqtest"
	"github.com/wahaq/wahaq/worker"
)

// interop is one environment with a task in each state that stays put
// while no worker runs: scheduled, pending, retrying and dead.
type interop struct {
	env  *wahaqtest.Env
	insp *asynq.Inspector
	q    string
	// ids by state name; batch holds the scheduled and pending tasks.
	ids   map[string]string
	batch string
}

func newInterop(t *testing.T) *interop {
	t.Helper()
	ctx := context.Background()
	env := wahaqtest.Start(t, wahaqtest.Options{NoStart: true, Worker: func(c *worker.Config) {
		c.ReconcileInterval = -1 // the test runs each pass itself
		c.RetryBase, c.RetryMax = time.Hour, time.Hour
	}})
	for _, s := range []string{"s-sched", "s-pend", "s-retry", "s-dead"} {
		env.Fake.AddSession(s, wahafake.StatusWorking)
	}
	env.Fake.Script("s-dead", wahafake.Fault{Status: 401, Times: 1})
	env.Fake.Script("s-retry", wahafake.Fault{Status: 503})
	ix := &interop{env: env, insp: asynq.NewInspectorFromRedisClient(env.Redis), q: env.Producer.Queue(env.Instance), ids: map[string]string{}}

	// dead and retrying: one worker runs them once, then stops
	w := env.StartWorker(t, nil)
	for _, s := range []string{"s-dead", "s-retry"} {
		task, err := env.Producer.Enqueue(ctx, tasks.LogoutRequest{Session: s})
		require.NoError(t, err)
		ix.ids[s[2:]] = task.ID
	}
	env.WaitTask(t, ix.ids["dead"], 10*time.Second)
	env.WaitTaskFunc(t, ix.ids["retry"], 10*time.Second, "retrying", func(tk *tasks.Task) bool { return tk.State == tasks.StateRetrying })
	require.Eventually(t, func() bool {
		info, err := ix.insp.GetTaskInfo(ix.q, ix.ids["dead"])
		return err == nil && info.State == asynq.TaskStateArchived
	}, 10*time.Second, 10*time.Millisecond)
	w.Shutdown()

	info, err := env.Producer.EnqueueBatch(ctx, tasks.BatchRequest{Sessions: []string{"s-sched"}, When: tasks.When{In: time.Hour}})
	require.NoError(t, err)
	ix.batch = info.BatchID
	st, err := env.Producer.Enqueue(ctx, tasks.LogoutRequest{Session: "s-pend"})
	require.NoError(t, err)
	ix.ids["pend"] = st.ID
	page, err := env.Inspector.DeadLetters(ctx, "", 0, 10)
	require.NoError(t, err)
	require.Len(t, page.Tasks, 1)
	for _, tk := range page.Tasks {
		ix.ids["dead"] = tk.ID
	}
	sched := findSession(t, ix, "s-sched")
	ix.ids["sched"] = sched
	return ix
}

func findSession(t *testing.T, ix *interop, session string) string {
	t.Helper()
	list, err := ix.insp.ListScheduledTasks(ix.q)
	require.NoError(t, err)
	for _, ti := range list {
		task, err := ix.env.Inspector.Task(context.Background(), ti.ID)
		require.NoError(t, err)
		if task.Session == session {
			return ti.ID
		}
	}
	t.Fatalf("no scheduled task of %s", session)
	return ""
}

// check asserts the invariants after a reconcile pass: no record is live
// without an asynq task, wahaq's dead letters and asynq's archive agree,
// and WAHA never saw two logouts of one session at once.
func (ix *interop) check(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	for state, id := range ix.ids {
		task, err := ix.env.Inspector.Task(ctx, id)
		if err != nil {
			continue // expired
		}
		if !task.State.Final() {
			_, err := ix.insp.GetTaskInfo(ix.q, id)
			require.NoError(t, err, "the %s task %s is %s in wahaq but gone from asynq", state, id, task.State)
		}
	}
	page, err := ix.env.Inspector.DeadLetters(ctx, "", 0, 100)
	require.NoError(t, err)
	dead := map[string]bool{}
	for _, tk := range page.Tasks {
		dead[tk.ID] = true
		if info, err := ix.insp.GetTaskInfo(ix.q, tk.ID); err == nil {
			require.Equal(t, asynq.TaskStateArchived, info.State, "dead letter %s", tk.ID)
		}
	}
	archived, err := ix.insp.ListArchivedTasks(ix.q)
	if err == nil {
		for _, ti := range archived {
			require.True(t, dead[ti.ID], "asynq archived %s but wahaq's dead letters miss it", ti.ID)
		}
	}
	require.Zero(t, ix.env.Fake.ConcurrentSameSession(), "WAHA saw two logouts of one session at once")
}

func (ix *interop) reconcile(t *testing.T) int {
	t.Helper()
	n, err := ix.env.Worker.Reconcile(context.Background())
	require.NoError(t, err)
	return n
}

func (ix *interop) task(t *testing.T, key string) *tasks.Task {
	t.Helper()
	task, err := ix.env.Inspector.Task(context.Background(), ix.ids[key])
	require.NoError(t, err)
	return task
}

// TestInteropAsynqInspector drives every asynq Inspector action an operator
// has (what the asynq CLI and asynqmon call) on tasks in every state, then
// one reconcile pass, and checks wahaq agrees with asynq (issue 10).
func TestInteropAsynqInspector(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("delete", func(t *testing.T) {
		t.Parallel()
		ix := newInterop(t)
		for _, k := range []string{"sched", "pend", "retry"} {
			require.NoError(t, ix.insp.DeleteTask(ix.q, ix.ids[k]), k)
		}
		require.Equal(t, 3, ix.reconcile(t))
		for _, k := range []string{"sched", "pend", "retry"} {
			task := ix.task(t, k)
			require.Equal(t, tasks.StateCanceled, task.State, k)
			require.NotNil(t, task.LastError)
			require.Contains(t, *task.LastError, "removed from the queue outside wahaq")
		}
		b, err := ix.env.Inspector.Batch(ctx, ix.batch)
		require.NoError(t, err)
		require.True(t, b.Done)
		require.Equal(t, int64(1), b.Counts[tasks.StateCanceled])
		// the claims are gone: the sessions can be logged out again
		again, err := ix.env.Producer.Enqueue(ctx, tasks.LogoutRequest{Session: "s-pend"})
		require.NoError(t, err)
		require.False(t, again.Deduplicated)
		require.Zero(t, ix.reconcile(t), "a second pass finds nothing")
		ix.check(t)
	})

	t.Run("archive", func(t *testing.T) {
		t.Parallel()
		ix := newInterop(t)
		for _, k := range []string{"sched", "pend", "retry"} {
			require.NoError(t, ix.insp.ArchiveTask(ix.q, ix.ids[k]), k)
		}
		require.Equal(t, 3, ix.reconcile(t))
		for _, k := range []string{"sched", "pend", "retry"} {
			task := ix.task(t, k)
			require.Equal(t, tasks.StateDead, task.State, k)
			require.Equal(t, tasks.OutcomeArchived, *task.Outcome, k)
		}
		page, err := ix.env.Inspector.DeadLetters(ctx, "", 0, 10)
		require.NoError(t, err)
		require.Len(t, page.Tasks, 4)
		b, err := ix.env.Inspector.Batch(ctx, ix.batch)
		require.NoError(t, err)
		require.True(t, b.Done)
		require.Equal(t, int64(1), b.Outcomes[tasks.OutcomeArchived])
		ix.check(t)
		// requeue-able, and then WAHA logs it out once
		res, err := ix.env.Inspector.Requeue(ctx, tasks.Selection{IDs: []string{ix.ids["pend"]}})
		require.NoError(t, err)
		require.Equal(t, tasks.RequeueStatus("requeued"), res[0].Status)
		require.NoError(t, ix.env.Worker.Start())
		require.Equal(t, tasks.StateCompleted, ix.env.WaitTask(t, ix.ids["pend"], 10*time.Second).State)
		ix.check(t)
	})

	t.Run("run", func(t *testing.T) {
		t.Parallel()
		ix := newInterop(t)
		// a dead letter run from asynq's archive is a requeue: the claim is
		// taken back, so a new logout of the session joins it
		require.NoError(t, ix.insp.RunTask(ix.q, ix.ids["dead"]))
		require.NoError(t, ix.insp.RunTask(ix.q, ix.ids["sched"]))
		require.GreaterOrEqual(t, ix.reconcile(t), 1)
		require.Equal(t, tasks.StatePending, ix.task(t, "dead").State)
		again, err := ix.env.Producer.Enqueue(ctx, tasks.LogoutRequest{Session: "s-dead"})
		require.NoError(t, err)
		require.True(t, again.Deduplicated)
		require.Equal(t, ix.ids["dead"], again.ID)
		// and wahaq's requeue does not queue the id a second time
		_, err = ix.env.Inspector.Requeue(ctx, tasks.Selection{IDs: []string{ix.ids["dead"]}})
		require.ErrorIs(t, err, tasks.ErrInvalidInput)
		require.NoError(t, ix.env.Worker.Start())
		done := ix.env.WaitTask(t, ix.ids["dead"], 10*time.Second)
		require.Equal(t, tasks.StateCompleted, done.State, "%+v %v %v", done, done.LastError, ix.env.Fake.Stats())
		// fresh retries, but the attempt numbers count on (issue 22): the
		// 401, then the run
		require.Equal(t, 2, done.Attempts)
		require.True(t, done.AttemptsLog[len(done.AttemptsLog)-1].Requeued)
		ix.env.WaitTask(t, ix.ids["sched"], 10*time.Second)
		ix.env.WaitBatch(t, ix.batch, 10*time.Second)
		require.Equal(t, 2, ix.env.Fake.Stats().LogoutCalls["s-dead"], "the 401, then one logout")
		ix.check(t)
	})

	t.Run("cancel active", func(t *testing.T) {
		t.Parallel()
		ix := newInterop(t)
		ix.env.Fake.Script("s-pend", wahafake.Fault{Delay: 30 * time.Second})
		require.NoError(t, ix.env.Worker.Start())
		ix.env.WaitTaskFunc(t, ix.ids["pend"], 10*time.Second, "active", func(tk *tasks.Task) bool { return tk.State == tasks.StateActive })
		// asynq's cancel is a pub/sub message: one published before the
		// worker's subscription is live (it is made as the server starts)
		// is lost, as it would be for an operator, who would cancel again.
		require.Eventually(t, func() bool {
			if ix.insp.CancelProcessing(ix.ids["pend"]) != nil {
				return false
			}
			tk, err := ix.env.Inspector.Task(ctx, ix.ids["pend"])
			return err == nil && tk.State != tasks.StateActive
		}, 10*time.Second, 500*time.Millisecond)
		task := ix.env.WaitTask(t, ix.ids["pend"], 10*time.Second)
		require.Equal(t, tasks.StateCanceled, task.State)
		require.NotNil(t, task.LastError)
		require.Contains(t, *task.LastError, "canceled by an operator")
		// asynq queued it for a retry; the reconciler removes it
		require.Eventually(t, func() bool {
			_, err := ix.insp.GetTaskInfo(ix.q, ix.ids["pend"])
			if err == nil {
				_, _ = ix.env.Worker.Reconcile(ctx)
			}
			return err != nil
		}, 10*time.Second, 50*time.Millisecond)
		ix.check(t)
	})

	t.Run("delete queue", func(t *testing.T) {
		t.Parallel()
		ix := newInterop(t)
		require.NoError(t, ix.insp.DeleteQueue(ix.q, true))
		ix.reconcile(t)
		for _, k := range []string{"sched", "pend", "retry"} {
			require.Equal(t, tasks.StateCanceled, ix.task(t, k).State, k)
		}
		require.Equal(t, tasks.StateDead, ix.task(t, "dead").State, "wahaq's dead letters outlive asynq's archive")
		queues, err := ix.insp.Queues()
		require.NoError(t, err)
		require.Contains(t, queues, ix.q, "registered again")
		b, err := ix.env.Inspector.Batch(ctx, ix.batch)
		require.NoError(t, err)
		require.True(t, b.Done)
		ix.check(t)
	})

	t.Run("pause", func(t *testing.T) {
		t.Parallel()
		ix := newInterop(t)
		require.NoError(t, ix.insp.PauseQueue(ix.q))
		require.Zero(t, ix.reconcile(t), "a paused queue is no divergence")
		require.Equal(t, tasks.StatePending, ix.task(t, "pend").State)
		require.NoError(t, ix.insp.UnpauseQueue(ix.q))
		require.NoError(t, ix.env.Worker.Start())
		require.Equal(t, tasks.StateCompleted, ix.env.WaitTask(t, ix.ids["pend"], 10*time.Second).State)
		ix.check(t)
	})
}
