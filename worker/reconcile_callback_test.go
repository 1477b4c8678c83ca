package worker_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/tasks"
	"github.com/wahaq/wahaq/wahaclient/wahafake"
	"github.com/wahaq/wahaq/wahaqtest"
	"github.com/wahaq/wahaq/worker"
)

// TestReconcileRepairDeliversCallbackAndWakesWaiters: tasks made final by
// the reconciler, not by a worker's attempt (their asynq task deleted or
// archived behind wahaq's back, as asynq's CLI does), get their callback
// exactly once and wake their long-poll waiters; a batch they make done
// gets its own callback once.
func TestReconcileRepairDeliversCallbackAndWakesWaiters(t *testing.T) {
	t.Parallel()
	secret := newSecret(t)
	env := wahaqtest.Start(t, wahaqtest.Options{
		Fake:  wahafake.Options{APIKey: "k"},
		Tasks: func(c *tasks.Config) { c.CallbackAllow = []string{"127.0.0.1"} },
		Worker: func(c *worker.Config) {
			c.CallbackSecret = secret
			c.CallbackAllow = []string{"127.0.0.1"}
			c.CallbackRetryBase = 10 * time.Millisecond
			c.CallbackRetryMax = 20 * time.Millisecond
			c.ReconcileInterval = -1 // the test runs the one pass itself
		},
	})
	ctx := context.Background()
	ainsp := asynq.NewInspectorFromRedisClient(env.Redis)
	q := env.Producer.Queue(env.Instance)
	later := tasks.When{In: time.Hour} // scheduled: no worker runs them meanwhile

	gone, archived, inBatch := newReceiver(t), newReceiver(t), newReceiver(t)
	deleted, err := env.Producer.Enqueue(ctx, tasks.LogoutRequest{Session: "rc-gone", When: later, CallbackURL: gone.URL})
	require.NoError(t, err)
	arch, err := env.Producer.Enqueue(ctx, tasks.LogoutRequest{Session: "rc-archived", When: later, CallbackURL: archived.URL})
	require.NoError(t, err)
	b, err := env.Producer.EnqueueBatch(ctx, tasks.BatchRequest{Sessions: []string{"rc-batch"}, When: later, CallbackURL: inBatch.URL})
	require.NoError(t, err)
	batchTask, err := env.Inspector.BatchTasks(ctx, b.BatchID, tasks.TaskFilter{}, tasks.Page{})
	require.NoError(t, err)
	require.Len(t, batchTask.Tasks, 1)

	// Long-poll waiters on a task and on the batch, before the repair.
	woke := make(chan *tasks.Task, 1)
	wokeBatch := make(chan *tasks.Batch, 1)
	go func() { tk, _ := env.Inspector.WaitTask(ctx, deleted.ID, tasks.MaxWait); woke <- tk }()
	go func() { bb, _ := env.Inspector.WaitBatch(ctx, b.BatchID, tasks.MaxWait); wokeBatch <- bb }()
	select {
	case <-woke:
		t.Fatal("WaitTask returned before the task was final")
	case <-time.After(200 * time.Millisecond):
	}

	// Behind wahaq's back: asynq's own tools.
	require.NoError(t, ainsp.DeleteTask(q, deleted.ID))
	require.NoError(t, ainsp.ArchiveTask(q, arch.ID))
	require.NoError(t, ainsp.DeleteTask(q, batchTask.Tasks[0].ID))

	n, err := env.Worker.Reconcile(ctx)
	require.NoError(t, err)
	require.GreaterOrEqual(t, n, 3, "the three repairs")

	select {
	case tk := <-woke:
		require.NotNil(t, tk)
		require.Equal(t, tasks.StateCanceled, tk.State)
	case <-time.After(30 * time.Second):
		t.Fatal("the long-poll did not return after the reconciler canceled the task")
	}
	select {
	case bb := <-wokeBatch:
		require.NotNil(t, bb)
		require.True(t, bb.Done)
	case <-time.After(30 * time.Second):
		t.Fatal("the batch long-poll did not return after the reconciler made the batch done")
	}

	require.Equal(t, "delivered", waitCallback(t, env, deleted.ID).Callback.State)
	final := waitCallback(t, env, arch.ID)
	require.Equal(t, "delivered", final.Callback.State)
	require.Equal(t, tasks.StateDead, final.State)
	require.Eventually(t, func() bool {
		bb, err := env.Inspector.Batch(ctx, b.BatchID)
		return err == nil && bb.Callback != nil && bb.Callback.State == "delivered"
	}, 30*time.Second, 20*time.Millisecond)

	// A second pass repairs nothing more and delivers nothing more.
	_, err = env.Worker.Reconcile(ctx)
	require.NoError(t, err)
	time.Sleep(300 * time.Millisecond) // 15× the delivery retry cap: a second delivery would have come

	for _, tc := range []struct {
		name  string
		rcv   *receiver
		check func(m map[string]any)
	}{
		{"deleted", gone, func(m map[string]any) {
			require.Equal(t, deleted.ID, m["id"])
			require.Equal(t, "canceled", m["state"])
		}},
		{"archived", archived, func(m map[string]any) {
			require.Equal(t, arch.ID, m["id"])
			require.Equal(t, "dead", m["state"])
			require.Equal(t, "archived", m["outcome"])
		}},
		{"batch", inBatch, func(m map[string]any) {
			require.Equal(t, b.BatchID, m["batch_id"])
			require.Equal(t, true, m["done"])
			require.EqualValues(t, 1, m["counts"].(map[string]any)["canceled"])
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.rcv.deliveries()
			require.Len(t, got, 1, "exactly one delivery")
			verify(t, secret, got[0])
			var m map[string]any
			require.NoError(t, json.Unmarshal(got[0].body, &m))
			tc.check(m)
		})
	}
}
