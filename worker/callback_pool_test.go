package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/store"
	"github.com/wahaq/wahaq/tasks"
	"github.com/wahaq/wahaq/wahaclient/wahafake"
	"github.com/wahaq/wahaq/wahaqtest"
	"github.com/wahaq/wahaq/worker"
)

// hangingReceivers are loopback callback receivers that accept a POST and
// never answer until the test ends; they count the requests that arrived
// and those the sender cut off.
type hangingReceivers struct {
	urls    []string
	arrived atomic.Int64
	cut     atomic.Int64
}

func newHangingReceivers(t *testing.T, n int) *hangingReceivers {
	h := &hangingReceivers{}
	release := make(chan struct{})
	var once sync.Once
	for range n {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h.arrived.Add(1)
			select {
			case <-release:
			case <-r.Context().Done():
				h.cut.Add(1)
			}
		}))
		// Cleanups run last-in first-out: release every handler before the
		// first Close waits for them.
		t.Cleanup(srv.Close)
		h.urls = append(h.urls, srv.URL+"/hook")
	}
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	return h
}

// TestHangingReceiversDoNotHoldHandlerSlots: 40 receivers that never
// answer hold 40 deliveries at once, far more than the worker's 4 handler
// slots, and a 40-session batch without callbacks still completes while
// every one of them is stuck: no delivery runs in a handler slot or is in
// asynq's queues.
func TestHangingReceiversDoNotHoldHandlerSlots(t *testing.T) {
	t.Parallel()
	const n = 40
	env := wahaqtest.Start(t, wahaqtest.Options{
		Fake:  wahafake.Options{APIKey: "k"},
		Tasks: func(c *tasks.Config) { c.CallbackAllow = []string{"127.0.0.1"} },
		Worker: func(c *worker.Config) {
			c.Concurrency = 4
			c.CallbackConcurrency = n
			c.CallbackSecret = newSecret(t)
			c.CallbackAllow = []string{"127.0.0.1"}
		},
	})
	ctx := context.Background()
	hang := newHangingReceivers(t, n)
	for i, u := range hang.urls {
		s := fmt.Sprintf("hang-%d", i)
		env.Fake.AddSession(s, wahafake.StatusWorking)
		_, err := env.Producer.Enqueue(ctx, tasks.LogoutRequest{Session: s, CallbackURL: u})
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool { return hang.arrived.Load() == n }, 60*time.Second, 20*time.Millisecond,
		"every receiver holds one delivery")

	ainsp := asynq.NewInspectorFromRedisClient(env.Redis)
	q := env.Producer.Queue(env.Instance)
	sessions := make([]string, n)
	for i := range sessions {
		sessions[i] = fmt.Sprintf("plain-%d", i)
		env.Fake.AddSession(sessions[i], wahafake.StatusWorking)
	}
	b, err := env.Producer.EnqueueBatch(ctx, tasks.BatchRequest{Sessions: sessions})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		active, err := ainsp.ListActiveTasks(q)
		require.NoError(t, err)
		for _, a := range active {
			require.NotEqual(t, "wahaq:callback", a.Type, "a delivery holds a handler slot")
		}
		bb, err := env.Inspector.Batch(ctx, b.BatchID)
		return err == nil && bb.Done
	}, 60*time.Second, 20*time.Millisecond, "the batch completes while the deliveries hang")
	bb, err := env.Inspector.Batch(ctx, b.BatchID)
	require.NoError(t, err)
	require.EqualValues(t, n, bb.Counts[tasks.StateCompleted])
	require.EqualValues(t, n, hang.arrived.Load(), "the stuck deliveries were not sent again")
	require.Zero(t, hang.cut.Load(), "the batch completed while all 40 deliveries were still stuck")
	pending, err := ainsp.ListPendingTasks(q)
	require.NoError(t, err)
	for _, p := range pending {
		require.NotEqual(t, "wahaq:callback", p.Type, "a delivery waits in asynq's queue")
	}
}

// TestJoinedRequestsEachGetOneDelivery: three requests join one task (the
// first schedules it, the second is deduplicated onto it, the third pulls
// it forward to now), each with its own callback_url: each receiver gets
// exactly one delivery, signed, of the final task, each with its own
// webhook-id.
func TestJoinedRequestsEachGetOneDelivery(t *testing.T) {
	t.Parallel()
	secret := newSecret(t)
	env := callbackEnv(t, secret, wahafake.Options{APIKey: "k"})
	env.Fake.AddSession("joined", wahafake.StatusWorking)
	ctx := context.Background()
	rcv := []*receiver{newReceiver(t), newReceiver(t), newReceiver(t)}

	first, err := env.Producer.Enqueue(ctx, tasks.LogoutRequest{Session: "joined", When: tasks.When{In: time.Hour}, CallbackURL: rcv[0].URL + "/a"})
	require.NoError(t, err)
	second, err := env.Producer.Enqueue(ctx, tasks.LogoutRequest{Session: "joined", When: tasks.When{In: 2 * time.Hour}, CallbackURL: rcv[1].URL + "/b"})
	require.NoError(t, err)
	require.True(t, second.Deduplicated)
	require.Equal(t, first.ID, second.ID)
	third, err := env.Producer.Enqueue(ctx, tasks.LogoutRequest{Session: "joined", CallbackURL: rcv[2].URL + "/c"})
	require.NoError(t, err)
	require.True(t, third.Rescheduled, "now pulls the schedule forward")
	require.Equal(t, first.ID, third.ID)
	require.Equal(t, 2, third.Callback.Joined)

	final := waitCallback(t, env, first.ID)
	require.Equal(t, tasks.StateCompleted, final.State)
	ids := map[string]bool{}
	for i, r := range rcv {
		require.Eventually(t, func() bool { return len(r.deliveries()) > 0 }, 30*time.Second, 20*time.Millisecond, "receiver %d", i)
	}
	// Each delivery has been recorded once the deliveries set is empty.
	require.Eventually(t, func() bool {
		return pendingDeliveries(t, env) == 0
	}, 30*time.Second, 20*time.Millisecond)
	for i, r := range rcv {
		got := r.deliveries()
		require.Len(t, got, 1, "receiver %d gets exactly one delivery", i)
		verify(t, secret, got[0])
		var m map[string]any
		require.NoError(t, json.Unmarshal(got[0].body, &m))
		require.Equal(t, first.ID, m["id"])
		require.Equal(t, "completed", m["state"])
		require.False(t, ids[got[0].id], "a webhook-id of its own")
		ids[got[0].id] = true
	}
}

// TestJoinedBatchKeepsTheTasksCallback: a batch that names a session with a
// logout of its own leaves that task's callback to its request; a request
// that joins a batch's task gets its own delivery.
func TestJoinedBatchKeepsTheTasksCallback(t *testing.T) {
	t.Parallel()
	secret := newSecret(t)
	env := callbackEnv(t, secret, wahafake.Options{APIKey: "k"})
	ctx := context.Background()
	own, joiner, batchRcv := newReceiver(t), newReceiver(t), newReceiver(t)
	// Scheduled: nothing runs until the test says so.
	task, err := env.Producer.Enqueue(ctx, tasks.LogoutRequest{Session: "jb-own", When: tasks.When{In: time.Hour}, CallbackURL: own.URL})
	require.NoError(t, err)
	b, err := env.Producer.EnqueueBatch(ctx, tasks.BatchRequest{Sessions: []string{"jb-own", "jb-other"}, When: tasks.When{In: 2 * time.Hour},
		CallbackURL: batchRcv.URL})
	require.NoError(t, err)
	require.Equal(t, 1, b.Deduplicated, "jb-own's logout stays its own request's")
	// A request for now joins the batch's task and pulls it forward.
	joined, err := env.Producer.Enqueue(ctx, tasks.LogoutRequest{Session: "jb-other", CallbackURL: joiner.URL})
	require.NoError(t, err)
	require.True(t, joined.Deduplicated)
	require.True(t, joined.Rescheduled)
	require.Equal(t, b.BatchID, *joined.BatchID)
	_, err = env.Producer.Cancel(ctx, task.ID)
	require.NoError(t, err)

	waitCallback(t, env, task.ID)
	waitCallback(t, env, joined.ID)
	require.Eventually(t, func() bool {
		return len(batchRcv.deliveries()) == 1 && pendingDeliveries(t, env) == 0
	}, 30*time.Second, 20*time.Millisecond)
	for name, r := range map[string]*receiver{"own": own, "joiner": joiner, "batch": batchRcv} {
		got := r.deliveries()
		require.Len(t, got, 1, name)
		verify(t, secret, got[0])
	}
}

// TestTooManyCallbacksRefused: a request past MaxCallbacks is refused and
// changes nothing.
func TestTooManyCallbacksRefused(t *testing.T) {
	t.Parallel()
	env := callbackEnv(t, newSecret(t), wahafake.Options{APIKey: "k"})
	ctx := context.Background()
	later := tasks.When{In: time.Hour}
	var id string
	for i := range tasks.MaxCallbacks {
		tk, err := env.Producer.Enqueue(ctx, tasks.LogoutRequest{Session: "full", When: later, CallbackURL: fmt.Sprintf("http://127.0.0.1:9/%d", i)})
		require.NoError(t, err)
		id = tk.ID
	}
	_, err := env.Producer.Enqueue(ctx, tasks.LogoutRequest{Session: "full", CallbackURL: "http://127.0.0.1:9/over"})
	require.ErrorIs(t, err, tasks.ErrTooManyCallbacks)
	tk, err := env.Inspector.Task(ctx, id)
	require.NoError(t, err)
	require.Equal(t, tasks.StateScheduled, tk.State, "not pulled forward")
	require.Equal(t, tasks.MaxCallbacks-1, tk.Callback.Joined)
	// Without a callback_url the same request joins as before.
	same, err := env.Producer.Enqueue(ctx, tasks.LogoutRequest{Session: "full", When: later})
	require.NoError(t, err)
	require.Equal(t, id, same.ID)
}

// TestSubscriptionReceivesFinalTasksAndDoneBatches: a subscription gets a
// signed {"type","timestamp","data"} per final task and per done batch of
// its instance and events; after it is deleted, nothing more.
func TestSubscriptionReceivesFinalTasksAndDoneBatches(t *testing.T) {
	t.Parallel()
	secret := newSecret(t)
	env := callbackEnv(t, secret, wahafake.Options{APIKey: "k"})
	ctx := context.Background()
	all, batches := newReceiver(t), newReceiver(t)
	subAll, err := env.Producer.Subscribe(ctx, tasks.SubscriptionRequest{URL: all.URL + "/all"})
	require.NoError(t, err)
	require.Equal(t, []string{tasks.EventTaskFinal, tasks.EventBatchDone}, subAll.Events)
	require.Equal(t, []string{env.Instance}, subAll.Instances)
	subB, err := env.Producer.Subscribe(ctx, tasks.SubscriptionRequest{URL: batches.URL, Events: []string{tasks.EventBatchDone}})
	require.NoError(t, err)

	_, err = env.Producer.Enqueue(ctx, tasks.LogoutRequest{Session: "sub-a"})
	require.NoError(t, err)
	b, err := env.Producer.EnqueueBatch(ctx, tasks.BatchRequest{Sessions: []string{"sub-b"}})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		return len(all.deliveries()) == 3 && len(batches.deliveries()) == 1
	}, 30*time.Second, 20*time.Millisecond)

	types := map[string]int{}
	for _, d := range all.deliveries() {
		verify(t, secret, d)
		var ev struct {
			Type      string          `json:"type"`
			Timestamp time.Time       `json:"timestamp"`
			Data      json.RawMessage `json:"data"`
		}
		require.NoError(t, json.Unmarshal(d.body, &ev))
		require.False(t, ev.Timestamp.IsZero())
		types[ev.Type]++
		if ev.Type == tasks.EventBatchDone {
			var bb tasks.Batch
			require.NoError(t, json.Unmarshal(ev.Data, &bb))
			require.Equal(t, b.BatchID, bb.BatchID)
		}
	}
	require.Equal(t, map[string]int{tasks.EventTaskFinal: 2, tasks.EventBatchDone: 1}, types, "sub-a, sub-b and the batch")
	var ev map[string]any
	require.NoError(t, json.Unmarshal(batches.deliveries()[0].body, &ev))
	require.Equal(t, tasks.EventBatchDone, ev["type"])

	_, err = env.Producer.Unsubscribe(ctx, subAll.ID)
	require.NoError(t, err)
	_, err = env.Producer.Unsubscribe(ctx, subB.ID)
	require.NoError(t, err)
	after, err := env.Producer.Enqueue(ctx, tasks.LogoutRequest{Session: "sub-c", CallbackURL: batches.URL + "/own"})
	require.NoError(t, err)
	waitCallback(t, env, after.ID)
	require.Len(t, all.deliveries(), 3, "nothing after the subscription was deleted")
	require.Len(t, batches.deliveries(), 2, "only the task's own callback")
}

// pendingDeliveries counts the deliveries not yet delivered or failed.
func pendingDeliveries(t *testing.T, env *wahaqtest.Env) int64 {
	t.Helper()
	n, err := store.New(env.Redis, store.Options{Namespace: env.Namespace}).PendingDeliveries(context.Background(), env.Instance)
	require.NoError(t, err)
	return n
}
