package redistopo

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/robfig/cron/v3"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/asynqcompat"
	"github.com/wahaq/wahaq/internal/config"
	"github.com/wahaq/wahaq/internal/schedule"
	"github.com/wahaq/wahaq/internal/store"
	"github.com/wahaq/wahaq/tasks"
	"github.com/wahaq/wahaq/wahaclient"
	"github.com/wahaq/wahaq/wahaclient/wahafake"
	"github.com/wahaq/wahaq/worker"
)

// TestCluster runs wahaq's whole flow on a real three-master Redis Cluster
// through REDIS_CLUSTER_ADDRS' client: enqueue and dedup, a batch over two
// instances whose queues live on different masters, the per-instance
// concurrency cap, a dead letter requeued after the key is fixed, results,
// cancel, schedules (tick claims and a discovery teardown), a preview, a
// pause and a resume, and asynq's own Inspector on wahaq's queues.
func TestCluster(t *testing.T) {
	t.Parallel()
	cl := StartCluster(t)
	u, err := config.NewRedis("", cl.Addrs())
	require.NoError(t, err)
	rdb, ok := u.(*redis.ClusterClient)
	require.True(t, ok, "REDIS_CLUSTER_ADDRS must give a *redis.ClusterClient, got %T", u)
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	require.NoError(t, rdb.Ping(ctx).Err())

	ns := namespace()
	// Pick a second instance whose queue's slot lives on another master than
	// the default one's, so the flow really spans nodes.
	masterOf := func(instance string) string {
		n, err := rdb.MasterForKey(ctx, store.KeysFor(ns, instance).Pending())
		require.NoError(t, err)
		return n.Options().Addr
	}
	second := ""
	for i := range 50 {
		if c := fmt.Sprintf("eu%d", i); masterOf(c) != masterOf("default") {
			second = c
			break
		}
	}
	require.NotEmpty(t, second)
	t.Logf("queue %s:default on %s, %s:%s on %s", ns, masterOf("default"), ns, second, masterOf(second))

	fake := wahafake.NewT(t, wahafake.Options{APIKey: "key-1", LogoutLatency: 20 * time.Millisecond})
	fake2 := wahafake.NewT(t, wahafake.Options{APIKey: "key-2", LogoutLatency: 20 * time.Millisecond})
	startWorker(t, rdb, ns,
		worker.Instance{Name: "default", BaseURL: fake.URL(), APIKey: "key-1", Concurrency: 3},
		worker.Instance{Name: second, BaseURL: fake2.URL(), APIKey: "key-2", Concurrency: 2, Rate: 500})
	lister, err := wahaclient.New(wahaclient.Config{BaseURL: fake.URL(), APIKey: "key-1"})
	require.NoError(t, err)
	cfg := tasks.Config{Redis: rdb, Namespace: ns, Instances: []string{"default", second},
		WAHA: map[string]tasks.SessionLister{"default": lister}}
	prod, err := tasks.NewProducer(cfg)
	require.NoError(t, err)
	insp, err := tasks.NewInspector(cfg)
	require.NoError(t, err)
	aq := asynq.NewInspectorFromRedisClient(rdb)
	q := ns + ":default"

	t.Run("enqueue, dedup and results", func(t *testing.T) {
		fake.AddSession("solo", wahafake.StatusWorking)
		first, err := prod.Enqueue(ctx, tasks.LogoutRequest{Session: "solo", When: tasks.When{In: time.Hour}})
		require.NoError(t, err)
		// The dedup check reads the live task's asynq hash, a key the
		// script computes: same slot, so Redis Cluster accepts it.
		again, err := prod.Enqueue(ctx, tasks.LogoutRequest{Session: "solo"})
		require.NoError(t, err)
		require.True(t, again.Deduplicated)
		require.Equal(t, first.ID, again.ID)
		// Now means now: the request for now pulled the logout set for in
		// an hour forward (scheduled -> pending, in one script on the
		// task's slot).
		require.True(t, again.Rescheduled)
		require.Nil(t, again.ScheduledFor)
		done := waitTask(t, insp, first.ID, inState(tasks.StateCompleted))
		require.Equal(t, tasks.OutcomeLoggedOut, outcomeOf(done))
		require.NotNil(t, done.Result)
		require.Equal(t, "success", done.Result.Status)
		require.Equal(t, 1, fake.LogoutCalls("solo"))
		// Finished: the next enqueue is a new task.
		next, err := prod.Enqueue(ctx, tasks.LogoutRequest{Session: "solo"})
		require.NoError(t, err)
		require.False(t, next.Deduplicated)
		require.NotEqual(t, first.ID, next.ID)
		waitTask(t, insp, next.ID, inState(tasks.StateCompleted))
	})

	t.Run("batch over two instances with concurrency caps", func(t *testing.T) {
		fake.ResetStats()
		fake2.ResetStats()
		s1 := fake.AddSessions("bulk", 50, wahafake.StatusWorking)
		s2 := fake2.AddSessions("bulk", 50, wahafake.StatusWorking)
		b1, err := prod.EnqueueBatch(ctx, tasks.BatchRequest{Sessions: s1})
		require.NoError(t, err)
		b2, err := prod.EnqueueBatch(ctx, tasks.BatchRequest{Instance: second, Sessions: s2})
		require.NoError(t, err)
		require.EqualValues(t, 50, b1.Total)
		require.EqualValues(t, 50, b2.Total)
		for _, id := range []string{b1.BatchID, b2.BatchID} {
			b := waitBatch(t, insp, id)
			require.EqualValues(t, 50, b.Counts[tasks.StateCompleted], "batch %s: %+v", id, b)
			require.EqualValues(t, 50, b.Outcomes[tasks.OutcomeLoggedOut])
		}
		require.Equal(t, 50, fake.TotalLogoutCalls())
		require.Equal(t, 50, fake2.TotalLogoutCalls())
		require.LessOrEqual(t, fake.MaxInFlight(), 3, "cap of default")
		require.LessOrEqual(t, fake2.MaxInFlight(), 2, "cap of "+second)
		require.Positive(t, fake.MaxInFlight())
	})

	t.Run("preview, pause and resume", func(t *testing.T) {
		fake.ResetStats()
		fake2.ResetStats()
		s1 := fake.AddSessions("hold", 30, wahafake.StatusWorking)
		s2 := fake2.AddSessions("hold", 30, wahafake.StatusWorking)
		// the preview's live check reads dedup keys and asynq hashes of
		// one slot
		pv, err := prod.Preview(ctx, tasks.PreviewRequest{Sessions: s1})
		require.NoError(t, err)
		require.EqualValues(t, 30, pv.WouldEnqueue)
		// paused before any worker can take them: the take script (default)
		// holds them at the head, the start script (second, rate-limited:
		// asynq's own dequeue) refuses them and the reconciler holds them
		b1, err := prod.EnqueueBatch(ctx, tasks.BatchRequest{Sessions: s1, When: tasks.When{In: time.Hour}})
		require.NoError(t, err)
		b2, err := prod.EnqueueBatch(ctx, tasks.BatchRequest{Instance: second, Sessions: s2})
		require.NoError(t, err)
		for _, id := range []string{b1.BatchID, b2.BatchID} {
			p, err := prod.PauseBatch(ctx, id)
			require.NoError(t, err)
			require.True(t, p.Paused)
		}
		// the scheduled batch's tasks were held by the pause itself
		held, err := rdb.ZCard(ctx, store.KeysFor(ns, "default").BatchHeld(b1.BatchID)).Result()
		require.NoError(t, err)
		require.EqualValues(t, 30, held)
		for _, id := range []string{b1.BatchID, b2.BatchID} {
			p, err := prod.ResumeBatch(ctx, id)
			require.NoError(t, err)
			require.False(t, p.Paused)
		}
		b, err := insp.Batch(ctx, b1.BatchID)
		require.NoError(t, err)
		require.EqualValues(t, 30, b.Counts[tasks.StateScheduled], "back at their time")
		b = waitBatch(t, insp, b2.BatchID)
		require.EqualValues(t, 30, b.Outcomes[tasks.OutcomeLoggedOut])
		require.Equal(t, 30, fake2.TotalLogoutCalls())
		c, err := prod.CancelBatch(ctx, b1.BatchID)
		require.NoError(t, err)
		require.EqualValues(t, 30, c.Canceled)
		require.Zero(t, fake.TotalLogoutCalls())
	})

	t.Run("dead letter, fix the key, requeue", func(t *testing.T) {
		fake.AddSession("locked", wahafake.StatusWorking)
		fake.SetAPIKey("rotated") // the worker's key-1 is now refused
		task, err := prod.Enqueue(ctx, tasks.LogoutRequest{Session: "locked"})
		require.NoError(t, err)
		dead := waitTask(t, insp, task.ID, inState(tasks.StateDead))
		require.Equal(t, tasks.OutcomeAuthFailed, outcomeOf(dead))
		require.Equal(t, 1, dead.Attempts)
		page, err := insp.DeadLetters(ctx, "default", 0, 10)
		require.NoError(t, err)
		require.EqualValues(t, 1, page.Total)
		require.Equal(t, task.ID, page.Tasks[0].ID)

		// requeueScript's check for a newer live task of the session reads
		// that task's asynq hash by a computed name too: superseded here.
		live, err := prod.Enqueue(ctx, tasks.LogoutRequest{Session: "locked", When: tasks.When{In: time.Hour}})
		require.NoError(t, err)
		require.False(t, live.Deduplicated)
		var res []tasks.RequeueResult
		require.EventuallyWithT(t, func(c *assert.CollectT) {
			got, err := insp.Requeue(ctx, tasks.Selection{IDs: []string{task.ID}})
			if !assert.NoError(c, err) || !assert.NotEmpty(c, got) {
				return
			}
			res = got
			assert.NotEqual(c, tasks.RequeueBusy, got[0].Status)
		}, wait, 20*time.Millisecond)
		require.Equal(t, tasks.RequeueSuperseded, res[0].Status)
		require.Equal(t, live.ID, res[0].LiveID)
		_, err = aq.GetTaskInfo(q, task.ID)
		require.ErrorIs(t, err, asynq.ErrTaskNotFound, "a superseded dead letter leaves asynq's archive too")
		_, err = prod.Cancel(ctx, live.ID)
		require.NoError(t, err)

		// A second dead letter of the session, requeued once the key is fixed.
		task, err = prod.Enqueue(ctx, tasks.LogoutRequest{Session: "locked"})
		require.NoError(t, err)
		waitTask(t, insp, task.ID, inState(tasks.StateDead))
		fake.SetAPIKey("key-1")
		requeue(t, insp, task.ID)
		done := waitTask(t, insp, task.ID, inState(tasks.StateCompleted))
		require.Equal(t, tasks.OutcomeLoggedOut, outcomeOf(done))
		require.Equal(t, 201, done.Result.HTTPStatus)
		page, err = insp.DeadLetters(ctx, "", 0, 10)
		require.NoError(t, err)
		require.EqualValues(t, 0, page.Total)
	})

	t.Run("cancel", func(t *testing.T) {
		task, err := prod.Enqueue(ctx, tasks.LogoutRequest{Instance: second, Session: "later", When: tasks.When{In: time.Hour}})
		require.NoError(t, err)
		c, err := prod.Cancel(ctx, task.ID)
		require.NoError(t, err)
		require.Equal(t, tasks.StateCanceled, c.State)
		_, err = prod.Cancel(ctx, task.ID)
		require.ErrorIs(t, err, tasks.ErrAlreadyStarted)
		_, err = aq.GetTaskInfo(ns+":"+second, task.ID)
		require.ErrorIs(t, err, asynq.ErrTaskNotFound, "the asynq task is gone with the cancel")
	})

	t.Run("schedules", func(t *testing.T) {
		tick := time.Now().Truncate(time.Minute)
		claims := store.New(rdb, store.Options{Namespace: ns})
		ok1, err := claims.ClaimTick(ctx, "default", "nightly", tick)
		require.NoError(t, err)
		ok2, err := claims.ClaimTick(ctx, "default", "nightly", tick)
		require.NoError(t, err)
		require.True(t, ok1)
		require.False(t, ok2, "a tick is claimed once")

		// Two replicas' runners see the same minute: one teardown. The
		// schedule lists sessions by status, so it goes through discovery
		// (an asynq task of its own type) on the worker.
		fake2.AddSessions("night", 5, wahafake.StatusWorking)
		spec, err := cron.ParseStandard("* * * * *")
		require.NoError(t, err)
		sc := []config.Schedule{{Name: "every-minute", Instance: second, Statuses: []string{"WORKING"},
			Location: time.UTC, Spec: spec}}
		to := time.Now().Truncate(time.Minute).Add(time.Minute)
		from := to.Add(-time.Second)
		n := 0
		for range 2 {
			n += schedule.New(prod, claims, sc, zerolog.Nop(), nil).Check(ctx, from, to)
		}
		require.Equal(t, 1, n, "one replica enqueues the tick")
		// The batch id is not returned by Check: find it via the dedup'd
		// session's task.
		require.Eventually(t, func() bool { return fake2.LogoutCalls("night-0005") > 0 }, wait, 20*time.Millisecond)
		require.Equal(t, 1, fake2.LogoutCalls("night-0005"), "discovery enqueued the WORKING sessions and the worker ran them")
	})

	t.Run("asynq inspector on wahaq's queues", func(t *testing.T) {
		qs, err := aq.Queues()
		require.NoError(t, err)
		require.Contains(t, qs, q)
		require.Contains(t, qs, ns+":"+second)
		info, err := aq.GetQueueInfo(q)
		require.NoError(t, err)
		require.Equal(t, q, info.Queue)
		require.Positive(t, info.Processed)
		// A dead letter listed and run again from asynq's side.
		fake.AddSession("locked2", wahafake.StatusWorking)
		fake.SetAPIKey("rotated")
		task, err := prod.Enqueue(ctx, tasks.LogoutRequest{Session: "locked2"})
		require.NoError(t, err)
		waitTask(t, insp, task.ID, inState(tasks.StateDead))
		var archived []*asynq.TaskInfo
		require.EventuallyWithT(t, func(c *assert.CollectT) {
			got, err := aq.ListArchivedTasks(q)
			if assert.NoError(c, err) && assert.NotEmpty(c, got) {
				archived = got
			}
		}, wait, 20*time.Millisecond)
		require.Len(t, archived, 1)
		require.Equal(t, task.ID, archived[0].ID)
		fake.SetAPIKey("key-1")
		require.NoError(t, aq.RunTask(q, task.ID))
		done := waitTask(t, insp, task.ID, inState(tasks.StateCompleted))
		require.Equal(t, tasks.OutcomeLoggedOut, outcomeOf(done))
		// What the asynq CLI's dash, stats and task ls read.
		servers, err := aq.Servers()
		require.NoError(t, err)
		require.NotEmpty(t, servers)
		hist, err := aq.History(q, 2)
		require.NoError(t, err)
		require.Len(t, hist, 2)
		completed, err := aq.ListPendingTasks(q)
		require.NoError(t, err)
		require.Empty(t, completed)
		nodes, err := aq.ClusterNodes(q)
		require.NoError(t, err)
		require.Len(t, nodes, 1)
		require.Equal(t, masterOf("default"), nodes[0].Addr)
		members, err := rdb.SMembers(ctx, asynqcompat.AllQueues).Result()
		require.NoError(t, err)
		require.Contains(t, members, q)
	})
}
