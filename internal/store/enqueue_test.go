package store_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/asynqcompat"
	"github.com/wahaq/wahaq/internal/base"
	"github.com/wahaq/wahaq/internal/store"
)

func TestEnqueueScript(t *testing.T) {
	t.Parallel()
	t.Run("pending task in a batch", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		bid := base.NewID()
		require.NoError(t, f.st.CreateBatch(f.ctx, "default", bid, time.Time{}, false))
		res, err := f.st.Enqueue(f.ctx, []store.NewTask{{Instance: "default", Session: "s1", BatchID: bid, MaxRetries: 3, Timeout: 90 * time.Second}})
		require.NoError(t, err)
		id := res[0].ID
		require.Equal(t, map[string]string{"state": "pending", "max": "3", "enq": ms(f.now), "batch": bid, "session": "s1"}, f.hash(f.k.Record(id)))
		at := f.hash(f.k.AsynqTask(id))
		require.Equal(t, "pending", at["state"])
		require.Equal(t, strconv.FormatInt(f.now.UnixNano(), 10), at[asynqcompat.FieldPendingSince])
		msg := f.asynqInfo(id)
		require.Equal(t, base.TypeLogout, msg.Type)
		require.Equal(t, f.k.Queue, msg.Queue)
		require.Equal(t, 90*time.Second, msg.Timeout)
		p, err := base.DecodePayload(msg.Payload)
		require.NoError(t, err)
		require.Equal(t, base.Payload{Instance: "default", Session: "s1", BatchID: bid, MaxRetries: 3}, p)
		require.Equal(t, []string{id}, f.list(f.k.Pending()))
		require.Equal(t, id, f.get(f.k.Dedup("s1")))
		b := f.hash(f.k.Batch(bid))
		require.Equal(t, "1", b["total"])
		require.Equal(t, "1", b["pending"])
		queues, err := f.rdb.SMembers(f.ctx, asynqcompat.AllQueues).Result()
		require.NoError(t, err)
		require.Contains(t, queues, f.k.Queue)
	})

	t.Run("scheduled task", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		at := f.now.Add(1500 * time.Millisecond)
		res, err := f.st.Enqueue(f.ctx, []store.NewTask{{Instance: "default", Session: "s1", MaxRetries: 3, ProcessAt: at}})
		require.NoError(t, err)
		id := res[0].ID
		rec := f.hash(f.k.Record(id))
		require.Equal(t, "scheduled", rec["state"])
		require.Equal(t, ms(at), rec["sched"])
		require.Equal(t, asynqcompat.StateScheduled, f.hash(f.k.AsynqTask(id))[asynqcompat.FieldState])
		score, err := f.rdb.ZScore(f.ctx, f.k.Scheduled(), id).Result()
		require.NoError(t, err)
		require.Equal(t, float64(f.now.Unix()+2), score, "rounded up to asynq's whole second")
		require.Empty(t, f.list(f.k.Pending()))
	})

	t.Run("deduplicated onto a live task", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		_, live := f.enqueue("s1", "")
		res, err := f.st.Enqueue(f.ctx, []store.NewTask{{Instance: "default", Session: "s1", MaxRetries: 3}, {Instance: "default", Session: "s1", MaxRetries: 3}})
		require.NoError(t, err)
		require.Equal(t, []store.Enqueued{{ID: live, Deduplicated: true}, {ID: live, Deduplicated: true}}, res)
		require.Equal(t, []string{live}, f.list(f.k.Pending()))
		require.Equal(t, live, f.get(f.k.Dedup("s1")))
	})

	t.Run("twice in one call", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		res, err := f.st.Enqueue(f.ctx, []store.NewTask{{Instance: "default", Session: "s1", MaxRetries: 3}, {Instance: "default", Session: "s1", MaxRetries: 3}})
		require.NoError(t, err)
		require.False(t, res[0].Deduplicated)
		require.Equal(t, store.Enqueued{ID: res[0].ID, Deduplicated: true}, res[1])
		require.Len(t, f.list(f.k.Pending()), 1)
	})

	// A dedup entry left behind by a task asynq no longer runs is taken
	// over: the session gets a new task.
	for _, stale := range []string{"gone", asynqcompat.StateCompleted, asynqcompat.StateArchived} {
		t.Run("stale claim: asynq task "+stale, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			old := base.NewID()
			require.NoError(t, f.rdb.Set(f.ctx, f.k.Dedup("s1"), old, 0).Err())
			if stale != "gone" {
				f.asynqState(old, stale)
			}
			res, err := f.st.Enqueue(f.ctx, []store.NewTask{{Instance: "default", Session: "s1", MaxRetries: 3}})
			require.NoError(t, err)
			require.False(t, res[0].Deduplicated)
			require.NotEqual(t, old, res[0].ID)
			require.Equal(t, res[0].ID, f.get(f.k.Dedup("s1")))
			require.Equal(t, []string{res[0].ID}, f.list(f.k.Pending()))
			require.Equal(t, "pending", f.hash(f.k.Record(res[0].ID))["state"])
		})
	}

	t.Run("a hundred and one tasks, two script calls", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		ts := make([]store.NewTask, 101)
		for i := range ts {
			ts[i] = store.NewTask{Instance: "default", Session: "s" + strconv.Itoa(i), MaxRetries: 3}
		}
		res, err := f.st.Enqueue(f.ctx, ts)
		require.NoError(t, err)
		require.Len(t, res, 101)
		require.Len(t, f.list(f.k.Pending()), 101)
		for i, r := range res {
			require.False(t, r.Deduplicated)
			require.Equal(t, r.ID, f.get(f.k.Dedup("s"+strconv.Itoa(i))))
		}
	})

	t.Run("sessions named twice across pipelines in flight together", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		bid := base.NewID()
		require.NoError(t, f.st.CreateBatch(f.ctx, "default", bid, time.Time{}, false))
		// 3,000 names, the last 500 repeating the first 500: three
		// pipelines of a thousand, two in flight at once, so a repeat may
		// run before the task it repeats
		const unique, repeats = 2500, 500
		ts := make([]store.NewTask, 0, unique+repeats)
		for i := range unique + repeats {
			ts = append(ts, store.NewTask{Instance: "default", Session: "s" + strconv.Itoa(i%unique), BatchID: bid, MaxRetries: 3})
		}
		res, err := f.st.Enqueue(f.ctx, ts)
		require.NoError(t, err)
		require.Len(t, res, len(ts))
		for i := range unique {
			if i >= repeats {
				require.False(t, res[i].Deduplicated, i)
				require.Equal(t, res[i].ID, f.get(f.k.Dedup("s"+strconv.Itoa(i))))
				continue
			}
			a, b := res[i], res[unique+i]
			require.NotEqual(t, a.Deduplicated, b.Deduplicated, "one of the two is created: %+v %+v", a, b)
			created, dup := a, b
			if a.Deduplicated {
				created, dup = b, a
			}
			require.True(t, dup.InBatch)
			require.Equal(t, created.ID, dup.ID, "the repeat names the created task")
			require.Equal(t, created.ID, f.get(f.k.Dedup("s"+strconv.Itoa(i))))
		}
		require.Len(t, f.list(f.k.Pending()), unique)
		require.Equal(t, strconv.Itoa(unique), f.hash(f.k.Batch(bid))["total"])
		require.Len(t, f.list(f.k.BatchTasks(bid)), unique)
	})
}

func TestEnqueueRawScript(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	now, later := base.NewID(), base.NewID()
	require.NoError(t, f.st.EnqueueRaw(f.ctx, "default", now, base.TypeDiscover, []byte(`{}`), time.Time{}, 5, time.Minute))
	require.NoError(t, f.st.EnqueueRaw(f.ctx, "default", later, base.TypeDiscover, []byte(`{}`), f.now.Add(time.Second), 5, time.Minute))
	require.Equal(t, []string{now}, f.list(f.k.Pending()))
	require.Equal(t, asynqcompat.StatePending, f.hash(f.k.AsynqTask(now))[asynqcompat.FieldState])
	require.Equal(t, []redis.Z{{Score: float64(f.now.Unix() + 1), Member: later}}, zWithScores(f, f.k.Scheduled()))
	require.Equal(t, asynqcompat.StateScheduled, f.hash(f.k.AsynqTask(later))[asynqcompat.FieldState])
	msg := f.asynqInfo(now)
	require.Equal(t, base.TypeDiscover, msg.Type)
	require.Equal(t, 5, msg.MaxRetry)
	require.False(t, f.exists(f.k.Record(now)), "no wahaq record")

	err := f.st.EnqueueRaw(f.ctx, "default", now, base.TypeDiscover, []byte(`{}`), time.Time{}, 5, time.Minute)
	require.ErrorIs(t, err, store.ErrTaskExists)
	require.Equal(t, []string{now}, f.list(f.k.Pending()), "nothing added")
}

func zWithScores(f *fixture, key string) []redis.Z {
	f.t.Helper()
	v, err := f.rdb.ZRangeWithScores(f.ctx, key, 0, -1).Result()
	require.NoError(f.t, err)
	return v
}

// asynqInfo reads a task the way asynq does: the message must decode.
func (f *fixture) asynqInfo(id string) *asynq.TaskInfo {
	f.t.Helper()
	ti, err := asynq.NewInspectorFromRedisClient(f.rdb).GetTaskInfo(f.k.Queue, id)
	require.NoError(f.t, err)
	return ti
}
