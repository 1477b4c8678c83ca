package store_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/base"
	"github.com/wahaq/wahaq/internal/store"
)

// TestCreateOrResumeBatch: a batch id named again by a retry is created when
// new, reopened when it was interrupted or left open, and left alone when it
// was closed with all its tasks; the refill that follows counts the tasks
// the batch already holds as its own and creates none twice.
func TestCreateOrResumeBatch(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		// prepare leaves the batch bid as the first try did.
		prepare func(f *fixture, bid string)
		want    int
		// check runs after CreateOrResumeBatch and ResumeFill of a, b, c.
		check func(t *testing.T, f *fixture, bid string, filled store.Filled)
	}{
		{"new", func(*fixture, string) {}, store.BatchNew, func(t *testing.T, f *fixture, bid string, filled store.Filled) {
			require.Equal(t, store.Filled{Total: 3, Requested: 4, Deduplicated: 1}, filled)
		}},
		{"interrupted with live tasks: reopened, then holds every session once", func(f *fixture, bid string) {
			require.NoError(f.t, f.st.CreateBatch(f.ctx, "default", bid, time.Time{}, false))
			f.enqueueIn(bid, "a", "b")
			require.NoError(f.t, f.st.CloseInterrupted(f.ctx, "default", bid, "interrupted: redis timeout", time.Hour))
		}, store.BatchResumed, func(t *testing.T, f *fixture, bid string, filled store.Filled) {
			require.Equal(t, store.Filled{Total: 1, Requested: 4, Deduplicated: 1, InBatch: 2}, filled)
		}},
		{"interrupted, its one task dead, read done: reopened, expiry removed, the dead session not enqueued again", func(f *fixture, bid string) {
			require.NoError(f.t, f.st.CreateBatch(f.ctx, "default", bid, time.Time{}, false))
			res, err := f.st.Enqueue(f.ctx, []store.NewTask{{Instance: "default", Session: "a", BatchID: bid, MaxRetries: 3}})
			require.NoError(f.t, err)
			require.NoError(f.t, f.st.CloseInterrupted(f.ctx, "default", bid, "interrupted: OOM", time.Hour))
			f.kill(res[0].ID, base.Payload{Instance: "default", Session: "a", BatchID: bid, MaxRetries: 3}, "unauthorized")
			b, err := f.st.GetBatch(f.ctx, []string{"default"}, bid)
			require.NoError(f.t, err)
			require.True(f.t, b.Done, "the interrupted batch read done")
			require.Positive(f.t, f.ttl(f.k.Batch(bid)), "and started to expire")
		}, store.BatchResumed, func(t *testing.T, f *fixture, bid string, filled store.Filled) {
			require.Equal(t, store.Filled{Total: 2, Requested: 4, Deduplicated: 1, InBatch: 1}, filled)
		}},
		{"open with a live lease (a late enqueue renewed it): joined", func(f *fixture, bid string) {
			require.NoError(f.t, f.st.CreateBatch(f.ctx, "default", bid, time.Time{}, false))
			f.enqueueIn(bid, "c")
		}, store.BatchResumed, func(t *testing.T, f *fixture, bid string, filled store.Filled) {
			require.Equal(t, store.Filled{Total: 2, Requested: 4, Deduplicated: 1, InBatch: 1}, filled)
		}},
		{"open with an expired lease: reopened", func(f *fixture, bid string) {
			require.NoError(f.t, f.st.CreateBatch(f.ctx, "default", bid, time.Time{}, false))
			f.enqueueIn(bid, "b")
			f.now = f.now.Add(time.Minute)
			ids, err := f.st.ExpiredOpenBatches(f.ctx, "default", 10)
			require.NoError(f.t, err)
			require.Equal(f.t, []string{bid}, ids)
		}, store.BatchResumed, func(t *testing.T, f *fixture, bid string, filled store.Filled) {
			require.Equal(t, store.Filled{Total: 2, Requested: 4, Deduplicated: 1, InBatch: 1}, filled)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			bid := base.NewID()
			tc.prepare(f, bid)
			got, err := f.st.CreateOrResumeBatch(f.ctx, "default", bid, time.Time{})
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
			m := f.hash(f.k.Batch(bid))
			require.Equal(t, "1", m[store.BatchOpen], "open under this producer")
			require.NotContains(t, m, store.BatchInterrupted)
			require.NotContains(t, m, store.BatchError)
			require.Equal(t, time.Duration(-1), f.ttl(f.k.Batch(bid)), "no expiry while open")
			lease, err := f.rdb.ZScore(f.ctx, f.k.OpenBatches(), bid).Result()
			require.NoError(t, err)
			require.GreaterOrEqual(t, int64(lease), f.now.Add(store.DefaultBatchLease).UnixMilli(), "the lease is this producer's")
			ids, err := f.st.ExpiredOpenBatches(f.ctx, "default", 10)
			require.NoError(t, err)
			require.Empty(t, ids, "the reconciler leaves it alone")

			filled, err := f.st.ResumeFill(f.ctx, "default", bid, []string{"a", "b", "c", "a"}, got == store.BatchResumed,
				time.Time{}, 3, time.Minute, time.Hour, "")
			require.NoError(t, err)
			tc.check(t, f, bid, filled)

			b, err := f.st.GetBatch(f.ctx, []string{"default"}, bid)
			require.NoError(t, err)
			require.EqualValues(t, 3, b.Total, "one task per session")
			require.False(t, b.Open)
			require.False(t, b.Interrupted)
			require.Empty(t, b.Error)
			require.EqualValues(t, filled.Deduplicated, b.Deduplicated)
			list := f.list(f.k.BatchTasks(bid))
			require.Len(t, list, 3, "the task list names each task once")
			sessions := map[string]int{}
			for _, id := range list {
				sessions[f.hash(f.k.Record(id))[store.FieldSession]]++
			}
			require.Equal(t, map[string]int{"a": 1, "b": 1, "c": 1}, sessions)
			require.Equal(t, []string{bid}, f.zmembers(f.k.RecentBatches()), "listed once among the recent batches")
		})
	}

	t.Run("closed with all its tasks: not reopened", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		bid, _ := f.batch("a", "b")
		before := f.hash(f.k.Batch(bid))
		got, err := f.st.CreateOrResumeBatch(f.ctx, "default", bid, time.Time{})
		require.NoError(t, err)
		require.Equal(t, store.BatchFinished, got)
		require.Equal(t, before, f.hash(f.k.Batch(bid)), "unchanged")
		require.Empty(t, f.zmembers(f.k.OpenBatches()))
	})

	t.Run("a discovery batch is not resumed", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		bid := base.NewID()
		require.NoError(t, f.st.CreateBatch(f.ctx, "default", bid, time.Time{}, true))
		_, err := f.st.CreateOrResumeBatch(f.ctx, "default", bid, time.Time{})
		require.Error(t, err)
	})
}

// TestResumedBatchPostsOneCallback: a batch that read done while
// interrupted (its one task dead) had its callback enqueued; resumed and
// done again, it enqueues no second delivery.
func TestResumedBatchPostsOneCallback(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	bid := base.NewID()
	pay := func(s string) base.Payload {
		return base.Payload{Instance: "default", Session: s, BatchID: bid, MaxRetries: 3}
	}
	require.NoError(t, f.st.CreateBatch(f.ctx, "default", bid, time.Time{}, false))
	require.NoError(t, f.st.SetBatchCallback(f.ctx, "default", bid, "http://127.0.0.1:9/hook"))
	res, err := f.st.Enqueue(f.ctx, []store.NewTask{{Instance: "default", Session: "a", BatchID: bid, MaxRetries: 3}})
	require.NoError(t, err)
	require.NoError(t, f.st.CloseInterrupted(f.ctx, "default", bid, "interrupted: OOM", time.Hour))
	f.kill(res[0].ID, pay("a"), "unauthorized")
	first := f.hash(f.k.Batch(bid))[store.FieldCallbackID]
	require.NotEmpty(t, first, "the done batch's callback was enqueued")
	require.Equal(t, []string{first}, f.rdb.ZRange(f.ctx, f.k.Deliveries(), 0, -1).Val())

	got, err := f.st.CreateOrResumeBatch(f.ctx, "default", bid, time.Time{})
	require.NoError(t, err)
	require.Equal(t, store.BatchResumed, got)
	filled, err := f.st.ResumeFill(f.ctx, "default", bid, []string{"a", "b"}, true, time.Time{}, 3, time.Minute, time.Hour, "")
	require.NoError(t, err)
	require.Equal(t, store.Filled{Total: 1, Requested: 2, InBatch: 1}, filled)
	b, err := f.st.GetBatch(f.ctx, []string{"default"}, bid)
	require.NoError(t, err)
	require.False(t, b.Done, "not done while b waits")

	var bID string
	for _, id := range f.list(f.k.BatchTasks(bid)) {
		if id != res[0].ID {
			bID = id
		}
	}
	f.kill(bID, pay("b"), "unauthorized")
	b, err = f.st.GetBatch(f.ctx, []string{"default"}, bid)
	require.NoError(t, err)
	require.True(t, b.Done, "done once b is final")
	require.EqualValues(t, 2, b.Total)
	require.Positive(t, f.ttl(f.k.Batch(bid)), "expiring again")
	require.Equal(t, first, f.hash(f.k.Batch(bid))[store.FieldCallbackID], "the same delivery")
	require.Equal(t, []string{first}, f.rdb.ZRange(f.ctx, f.k.Deliveries(), 0, -1).Val(), "no second delivery enqueued")
}
