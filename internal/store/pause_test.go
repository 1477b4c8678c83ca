package store_test

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/asynqcompat"
	"github.com/wahaq/wahaq/internal/base"
	"github.com/wahaq/wahaq/internal/store"
)

// takeAll runs the take script until it takes nothing and returns the ids
// taken, in order.
func (f *fixture) takeAll() []string {
	f.t.Helper()
	var ids []string
	for range 100 {
		ts, err := f.st.TakeN(f.ctx, "default", time.Unix(2000000000, 0), 0, time.Minute, 4)
		require.NoError(f.t, err)
		if len(ts) == 0 {
			return ids
		}
		for _, t := range ts {
			ids = append(ids, t.ID)
		}
	}
	f.t.Fatal("the take never ran dry")
	return nil
}

// zscore is member's score in key, and whether it is there.
func (f *fixture) zscore(key, member string) (float64, bool) {
	f.t.Helper()
	v, err := f.rdb.ZScore(f.ctx, key, member).Result()
	if err == redis.Nil {
		return 0, false
	}
	require.NoError(f.t, err)
	return v, true
}

// TestPauseScripts: a paused batch starts none of its tasks: the take holds
// its pending tasks as they reach the head of the queue, pause holds its
// scheduled and retrying ones, the start script refuses what asynq delivers;
// held tasks keep their records, batch counts and asynq task hashes, the
// reconciler leaves them alone; resume puts them back in their order.
func TestPauseScripts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		run  func(f *fixture)
	}{
		{name: "pending tasks are held at the head of the queue, other tasks pass", run: func(f *fixture) {
			bid, ids := f.batch("s1", "s2", "s3")
			_, other := f.enqueue("x", "")
			r, err := f.st.PauseBatch(f.ctx, "default", bid, "ops")
			require.NoError(f.t, err)
			require.True(f.t, r.Changed)
			require.Equal(f.t, []string{other}, f.takeAll(), "only the task outside the batch is taken")
			require.Empty(f.t, f.list(f.k.Pending()))
			require.Equal(f.t, ids, f.zmembers(f.k.BatchHeld(bid)), "held in queue order")
			for _, id := range ids {
				rec := f.hash(f.k.Record(id))
				require.Equal(f.t, "pending", rec["state"], "neither canceled nor failed")
				require.Equal(f.t, "p", rec[store.FieldHeld])
				require.Equal(f.t, "pending", f.hash(f.k.AsynqTask(id))["state"], "asynq's task hash is kept")
			}
			b, err := f.st.GetBatch(f.ctx, []string{"default"}, bid)
			require.NoError(f.t, err)
			require.EqualValues(f.t, 3, b.Counts["pending"])
			require.False(f.t, b.Done)
			require.NotNil(f.t, b.PausedAt)
			require.Equal(f.t, "ops", b.PausedBy)

			r, err = f.st.ResumeBatch(f.ctx, "default", bid, "ops2")
			require.NoError(f.t, err)
			require.True(f.t, r.Changed)
			require.EqualValues(f.t, 3, r.Moved)
			require.False(f.t, f.exists(f.k.BatchHeld(bid)))
			require.Equal(f.t, ids, f.takeAll(), "back in their order")
			b, err = f.st.GetBatch(f.ctx, []string{"default"}, bid)
			require.NoError(f.t, err)
			require.Nil(f.t, b.PausedAt)
			require.NotContains(f.t, f.hash(f.k.Record(ids[0])), store.FieldHeld)
		}},
		{name: "scheduled and retrying tasks are held with their time and go back to it", run: func(f *fixture) {
			bid, ids := f.batch("s1", "s2", "s3")
			// s1 is scheduled, s2 waits for a retry, s3 is in flight
			require.NoError(f.t, f.rdb.LRem(f.ctx, f.k.Pending(), 0, ids[0]).Err())
			require.NoError(f.t, f.rdb.ZAdd(f.ctx, f.k.Scheduled(), redis.Z{Score: 2000000100, Member: ids[0]}).Err())
			f.asynqState(ids[0], "scheduled")
			require.NoError(f.t, f.rdb.HSet(f.ctx, f.k.Record(ids[0]), "state", "scheduled").Err())
			require.NoError(f.t, f.rdb.LRem(f.ctx, f.k.Pending(), 0, ids[1]).Err())
			require.NoError(f.t, f.rdb.ZAdd(f.ctx, f.k.Retry(), redis.Z{Score: 2000000050, Member: ids[1]}).Err())
			f.asynqState(ids[1], "retry")
			require.NoError(f.t, f.rdb.HSet(f.ctx, f.k.Record(ids[1]), "state", "retrying").Err())
			require.Equal(f.t, []string{ids[2]}, f.takeAll())

			r, err := f.st.PauseBatch(f.ctx, "default", bid, "ops")
			require.NoError(f.t, err)
			require.EqualValues(f.t, 2, r.Moved)
			require.Empty(f.t, f.zmembers(f.k.Scheduled()))
			require.Empty(f.t, f.zmembers(f.k.Retry()))
			require.Equal(f.t, "s", f.hash(f.k.Record(ids[0]))[store.FieldHeld])
			require.Equal(f.t, "r", f.hash(f.k.Record(ids[1]))[store.FieldHeld])
			require.NotContains(f.t, f.hash(f.k.Record(ids[2])), store.FieldHeld, "in flight: it finishes")
			require.Equal(f.t, []string{ids[2]}, f.list(asynqcompat.ActiveKey(f.k.Queue)))

			_, err = f.st.ResumeBatch(f.ctx, "default", bid, "ops")
			require.NoError(f.t, err)
			sc, ok := f.zscore(f.k.Scheduled(), ids[0])
			require.True(f.t, ok)
			require.EqualValues(f.t, 2000000100, sc)
			sc, ok = f.zscore(f.k.Retry(), ids[1])
			require.True(f.t, ok)
			require.EqualValues(f.t, 2000000050, sc)
		}},
		{name: "the start script refuses a task of a paused batch that asynq delivered", run: func(f *fixture) {
			bid := base.NewID()
			require.NoError(f.t, f.st.CreateBatch(f.ctx, "default", bid, time.Time{}, false))
			p, id := f.enqueue("s1", bid)
			_, err := f.st.PauseBatch(f.ctx, "default", bid, "ops")
			require.NoError(f.t, err)
			r, err := f.st.Begin(f.ctx, id, p, 1, 3, time.Minute)
			require.NoError(f.t, err)
			require.Equal(f.t, store.StartHeld, r.Code)
			require.Equal(f.t, "pending", f.hash(f.k.Record(id))["state"])
			require.Empty(f.t, f.zmembers(f.k.Slots()), "no slot taken")
			_, err = f.st.ResumeBatch(f.ctx, "default", bid, "ops")
			require.NoError(f.t, err)
			r, err = f.st.Begin(f.ctx, id, p, 1, 3, time.Minute)
			require.NoError(f.t, err)
			require.Equal(f.t, store.StartStarted, r.Code)
		}},
		{name: "tasks enqueued into a paused open batch are held too", run: func(f *fixture) {
			bid := base.NewID()
			require.NoError(f.t, f.st.CreateBatch(f.ctx, "default", bid, time.Time{}, false))
			f.enqueueIn(bid, "s1")
			_, err := f.st.PauseBatch(f.ctx, "default", bid, "ops")
			require.NoError(f.t, err)
			f.enqueueIn(bid, "s2", "s3")
			require.Empty(f.t, f.takeAll())
			require.Len(f.t, f.zmembers(f.k.BatchHeld(bid)), 3)
			require.NoError(f.t, f.st.CloseBatch(f.ctx, "default", bid, 0, "", time.Hour))
			_, err = f.st.ResumeBatch(f.ctx, "default", bid, "ops")
			require.NoError(f.t, err)
			require.Len(f.t, f.takeAll(), 3)
		}},
		{name: "the reconciler leaves held tasks alone and holds what reached the retry set", run: func(f *fixture) {
			bid, ids := f.batch("s1", "s2")
			_, err := f.st.PauseBatch(f.ctx, "default", bid, "ops")
			require.NoError(f.t, err)
			require.Empty(f.t, f.takeAll())
			reps, err := f.st.ReconcileTasks(f.ctx, "default", ids, time.Hour)
			require.NoError(f.t, err)
			require.Empty(f.t, reps)
			require.Equal(f.t, "pending", f.hash(f.k.Record(ids[0]))["state"])
			// a task handed back after the pause (no attempt: its record is
			// pending), and one whose attempt failed: in asynq's retry set
			for _, id := range ids {
				require.NoError(f.t, f.rdb.ZRem(f.ctx, f.k.BatchHeld(bid), id).Err())
				require.NoError(f.t, f.rdb.HDel(f.ctx, f.k.Record(id), store.FieldHeld).Err())
				require.NoError(f.t, f.rdb.ZAdd(f.ctx, f.k.Retry(), redis.Z{Score: float64(f.now.Unix() + 60), Member: id}).Err())
			}
			require.NoError(f.t, f.rdb.HSet(f.ctx, f.k.Record(ids[1]), "state", "retrying").Err())
			n, err := f.st.HoldPausedBatches(f.ctx, "default")
			require.NoError(f.t, err)
			require.EqualValues(f.t, 2, n)
			require.Empty(f.t, f.zmembers(f.k.Retry()))
			require.Equal(f.t, "r", f.hash(f.k.Record(ids[0]))[store.FieldHeld])
			require.Equal(f.t, "r", f.hash(f.k.Record(ids[1]))[store.FieldHeld])
			sc, _ := f.zscore(f.k.BatchHeld(bid), ids[0])
			require.EqualValues(f.t, f.now.Unix(), sc, "a hand-back owes no backoff: due at once")
			sc, _ = f.zscore(f.k.BatchHeld(bid), ids[1])
			require.EqualValues(f.t, f.now.Unix()+60, sc, "a retry keeps its backoff")
		}},
		{name: "a held task canceled meanwhile is not put back", run: func(f *fixture) {
			bid, ids := f.batch("s1", "s2")
			_, err := f.st.PauseBatch(f.ctx, "default", bid, "ops")
			require.NoError(f.t, err)
			require.Empty(f.t, f.takeAll())
			_, err = f.st.Cancel(f.ctx, []string{"default"}, ids[0], time.Hour)
			require.NoError(f.t, err)
			r, err := f.st.ResumeBatch(f.ctx, "default", bid, "ops")
			require.NoError(f.t, err)
			require.EqualValues(f.t, 1, r.Moved)
			require.Equal(f.t, []string{ids[1]}, f.takeAll())
		}},
		{name: "pause twice, resume twice, an unknown or done batch", run: func(f *fixture) {
			bid, ids := f.batch("s1")
			r, err := f.st.PauseBatch(f.ctx, "default", bid, "ops")
			require.NoError(f.t, err)
			require.True(f.t, r.Changed)
			r, err = f.st.PauseBatch(f.ctx, "default", bid, "other")
			require.NoError(f.t, err)
			require.False(f.t, r.Changed)
			b, err := f.st.GetBatch(f.ctx, []string{"default"}, bid)
			require.NoError(f.t, err)
			require.Equal(f.t, "ops", b.PausedBy, "the first pause stands")
			r, err = f.st.ResumeBatch(f.ctx, "default", bid, "ops")
			require.NoError(f.t, err)
			require.True(f.t, r.Changed)
			r, err = f.st.ResumeBatch(f.ctx, "default", bid, "ops")
			require.NoError(f.t, err)
			require.False(f.t, r.Changed)
			_, err = f.st.PauseBatch(f.ctx, "default", "nope", "ops")
			require.ErrorIs(f.t, err, base.ErrNotFound)
			_, err = f.st.ResumeBatch(f.ctx, "default", "nope", "ops")
			require.ErrorIs(f.t, err, base.ErrNotFound)
			_, err = f.st.Cancel(f.ctx, []string{"default"}, ids[0], time.Hour)
			require.NoError(f.t, err)
			_, err = f.st.PauseBatch(f.ctx, "default", bid, "ops")
			require.ErrorIs(f.t, err, store.ErrBatchDone)
		}},
		{name: "a paused batch that expires leaves nothing behind", run: func(f *fixture) {
			bid, ids := f.batch("s1")
			_, err := f.st.PauseBatch(f.ctx, "default", bid, "ops")
			require.NoError(f.t, err)
			require.Empty(f.t, f.takeAll())
			_, err = f.st.Cancel(f.ctx, []string{"default"}, ids[0], time.Hour)
			require.NoError(f.t, err)
			require.True(f.t, f.exists(f.k.BatchHeld(bid)))
			require.NoError(f.t, f.rdb.Del(f.ctx, f.k.Batch(bid)).Err()) // its TTL ran out
			_, err = f.st.HoldPausedBatches(f.ctx, "default")
			require.NoError(f.t, err)
			require.False(f.t, f.exists(f.k.BatchHeld(bid)))
			require.False(f.t, f.exists(f.k.HeldBatches()))
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(newFixture(t))
		})
	}
}
