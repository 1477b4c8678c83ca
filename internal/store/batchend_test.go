package store_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/asynqcompat"
	"github.com/wahaq/wahaq/internal/base"
	"github.com/wahaq/wahaq/internal/redistest"
	"github.com/wahaq/wahaq/internal/store"
)

// clock is a settable clock for the store.
type clock struct{ ms atomic.Int64 }

func (c *clock) now() time.Time          { return time.UnixMilli(c.ms.Load()) }
func (c *clock) advance(d time.Duration) { c.ms.Add(d.Milliseconds()) }

func newLeaseStore(t *testing.T) (*store.Store, *clock, store.Keys) {
	t.Helper()
	c := &clock{}
	c.ms.Store(time.Now().UnixMilli())
	st := store.New(redistest.Client(t), store.Options{Namespace: redistest.Namespace(t), Now: c.now, BatchLease: 5 * time.Second})
	return st, c, st.Keys("default")
}

func sessions(n int) []store.NewTask {
	ts := make([]store.NewTask, n)
	for i := range ts {
		ts[i] = store.NewTask{Instance: "default", Session: "s" + strconv.Itoa(i), MaxRetries: 3}
	}
	return ts
}

func TestBatchLease(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, c, k := newLeaseStore(t)
	rdb := st.Redis()
	bid := base.NewID()
	require.NoError(t, st.CreateBatch(ctx, "default", bid, time.Time{}, false))
	score, err := rdb.ZScore(ctx, k.OpenBatches(), bid).Result()
	require.NoError(t, err)
	require.Equal(t, float64(c.now().Add(5*time.Second).UnixMilli()), score)

	// Each enqueue call renews the lease and lists the ids it created.
	c.advance(3 * time.Second)
	ts := sessions(150)
	for i := range ts {
		ts[i].BatchID = bid
	}
	res, err := st.Enqueue(ctx, ts)
	require.NoError(t, err)
	score, err = rdb.ZScore(ctx, k.OpenBatches(), bid).Result()
	require.NoError(t, err)
	require.Equal(t, float64(c.now().Add(5*time.Second).UnixMilli()), score)
	ids, err := rdb.LRange(ctx, k.BatchTasks(bid), 0, -1).Result()
	require.NoError(t, err)
	require.Len(t, ids, 150)
	for i, r := range res {
		require.Equal(t, r.ID, ids[i])
	}

	// Within the lease: not abandoned.
	c.advance(4 * time.Second)
	expired, err := st.ExpiredOpenBatches(ctx, "default", 10)
	require.NoError(t, err)
	require.Empty(t, expired)
	closed, err := st.CloseAbandoned(ctx, "default", bid, time.Hour)
	require.NoError(t, err)
	require.False(t, closed)

	// After it: listed, closed with its true total, interrupted.
	c.advance(2 * time.Second)
	expired, err = st.ExpiredOpenBatches(ctx, "default", 10)
	require.NoError(t, err)
	require.Equal(t, []string{bid}, expired)
	closed, err = st.CloseAbandoned(ctx, "default", bid, time.Hour)
	require.NoError(t, err)
	require.True(t, closed)
	closed, err = st.CloseAbandoned(ctx, "default", bid, time.Hour)
	require.NoError(t, err)
	require.False(t, closed, "closing twice is harmless")
	b, err := st.GetBatch(ctx, []string{"default"}, bid)
	require.NoError(t, err)
	require.False(t, b.Open)
	require.True(t, b.Interrupted)
	require.NotEmpty(t, b.Error)
	require.EqualValues(t, 150, b.Total)
	require.False(t, b.Done, "its tasks are not final")
	n, err := rdb.ZCard(ctx, k.OpenBatches()).Result()
	require.NoError(t, err)
	require.Zero(t, n)

	// A closed batch takes no more tasks; nothing of the call is written.
	more := []store.NewTask{{Instance: "default", Session: "late", BatchID: bid, MaxRetries: 3}}
	_, err = st.Enqueue(ctx, more)
	require.ErrorIs(t, err, store.ErrBatchClosed)
	require.Zero(t, rdb.Exists(ctx, k.Dedup("late")).Val())
	require.EqualValues(t, 150, rdb.LLen(ctx, k.Pending()).Val())

	// Canceling the rest ends it: done, and it expires with its id list.
	cb, err := st.CancelBatch(ctx, "default", bid, time.Hour)
	require.NoError(t, err)
	require.Equal(t, store.BatchCanceled{Canceled: 150}, cb)
	b, err = st.GetBatch(ctx, []string{"default"}, bid)
	require.NoError(t, err)
	require.True(t, b.Done)
	require.Positive(t, rdb.TTL(ctx, k.Batch(bid)).Val())
	require.Positive(t, rdb.TTL(ctx, k.BatchTasks(bid)).Val())
	require.Zero(t, rdb.LLen(ctx, k.Pending()).Val())
}

func TestCloseBatchKeepsALeasedDiscoveryOpen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, c, _ := newLeaseStore(t)
	bid := base.NewID()
	// A discovery batch waits for its task without a lease: never abandoned.
	require.NoError(t, st.CreateBatch(ctx, "default", bid, time.Time{}, true))
	c.advance(time.Hour)
	closed, err := st.CloseAbandoned(ctx, "default", bid, time.Hour)
	require.NoError(t, err)
	require.False(t, closed)
	require.NoError(t, st.CloseBatch(ctx, "default", bid, 2, "", time.Hour))
	b, err := st.GetBatch(ctx, []string{"default"}, bid)
	require.NoError(t, err)
	require.False(t, b.Open)
	require.False(t, b.Interrupted)
	require.True(t, b.Done, "closed with no task: done")
	require.EqualValues(t, 2, b.Deduplicated)
}

func TestCancelBatchScript(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, c, k := newLeaseStore(t)
	rdb := st.Redis()
	bid := base.NewID()
	require.NoError(t, st.CreateBatch(ctx, "default", bid, time.Time{}, false))
	// 1,203 tasks: three chunks. Half pending, half scheduled.
	ts := sessions(1203)
	for i := range ts {
		ts[i].BatchID = bid
		if i%2 == 1 {
			ts[i].ProcessAt = c.now().Add(time.Hour)
		}
	}
	res, err := st.Enqueue(ctx, ts)
	require.NoError(t, err)
	require.NoError(t, st.CloseBatch(ctx, "default", bid, 0, "", time.Hour))
	// One task started (a worker holds it), one finished.
	started, done := res[0].ID, res[2].ID
	require.NoError(t, rdb.LRem(ctx, k.Pending(), 0, started).Err())
	require.NoError(t, rdb.HSet(ctx, k.AsynqTask(started), asynqcompat.FieldState, asynqcompat.StateActive).Err())
	require.NoError(t, rdb.HSet(ctx, k.Record(started), "state", "active").Err())
	require.NoError(t, rdb.HIncrBy(ctx, k.Batch(bid), "pending", -1).Err())
	require.NoError(t, rdb.HIncrBy(ctx, k.Batch(bid), "active", 1).Err())
	require.NoError(t, rdb.LRem(ctx, k.Pending(), 0, done).Err()) // asynq's part of finishing
	require.NoError(t, rdb.Del(ctx, k.AsynqTask(done)).Err())
	require.NoError(t, st.Finish(ctx, done, base.Payload{Instance: "default", Session: "s2", BatchID: bid}, store.Finish{
		State: store.StateCompleted, Outcome: "logged_out", ResultTTL: time.Hour}))

	cb, err := st.CancelBatch(ctx, "default", bid, time.Hour)
	require.NoError(t, err)
	require.Equal(t, store.BatchCanceled{Canceled: 1201, Started: 1, Final: 1}, cb)
	require.Zero(t, rdb.LLen(ctx, k.Pending()).Val())
	require.Zero(t, rdb.ZCard(ctx, k.Scheduled()).Val())
	r, err := st.Get(ctx, []string{"default"}, res[1].ID)
	require.NoError(t, err)
	require.Equal(t, store.StateCanceled, r.State)
	require.Zero(t, rdb.Exists(ctx, k.AsynqTask(res[1].ID), k.Dedup("s1")).Val())
	require.Equal(t, started, rdb.Get(ctx, k.Dedup("s0")).Val(), "the started task keeps its claim")
	b, err := st.GetBatch(ctx, []string{"default"}, bid)
	require.NoError(t, err)
	require.EqualValues(t, 1201, b.Counts[store.StateCanceled])
	require.EqualValues(t, 1, b.Counts[store.StateActive])
	require.Zero(t, b.Counts[store.StatePending]+b.Counts[store.StateScheduled])
	require.False(t, b.Done)

	// Again: nothing more to cancel.
	cb, err = st.CancelBatch(ctx, "default", bid, time.Hour)
	require.NoError(t, err)
	require.Equal(t, store.BatchCanceled{Started: 1, Final: 1202}, cb)

	// The started task finishes: the batch reads done.
	require.NoError(t, st.Finish(ctx, started, base.Payload{Instance: "default", Session: "s0", BatchID: bid}, store.Finish{
		State: store.StateCompleted, Outcome: "logged_out", ResultTTL: time.Hour}))
	b, err = st.GetBatch(ctx, []string{"default"}, bid)
	require.NoError(t, err)
	require.True(t, b.Done)
}

func TestEnqueueNowMeansNow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cases := []struct {
		name        string
		second      time.Duration // 0: now
		rescheduled bool
	}{
		{"now pulls a later task forward", 0, true},
		{"an earlier time pulls it forward", time.Hour, true},
		{"a later time joins it", 30 * 24 * time.Hour, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st, c, k := newLeaseStore(t)
			rdb := st.Redis()
			bid := base.NewID()
			require.NoError(t, st.CreateBatch(ctx, "default", bid, c.now().Add(7*24*time.Hour), false))
			week := c.now().Add(7 * 24 * time.Hour)
			first, err := st.Enqueue(ctx, []store.NewTask{{Instance: "default", Session: "s", BatchID: bid, MaxRetries: 3, ProcessAt: week}})
			require.NoError(t, err)
			id := first[0].ID
			var at time.Time
			if tc.second > 0 {
				at = c.now().Add(tc.second)
			}
			second, err := st.Enqueue(ctx, []store.NewTask{{Instance: "default", Session: "s", MaxRetries: 3, ProcessAt: at}})
			require.NoError(t, err)
			require.Equal(t, store.Enqueued{ID: id, Deduplicated: true, Rescheduled: tc.rescheduled}, second[0])
			r, err := st.Get(ctx, []string{"default"}, id)
			require.NoError(t, err)
			b, err := st.GetBatch(ctx, []string{"default"}, bid)
			require.NoError(t, err)
			switch {
			case tc.second == 0:
				require.Equal(t, store.StatePending, r.State)
				require.Nil(t, r.ScheduledFor)
				require.Equal(t, []string{id}, rdb.LRange(ctx, k.Pending(), 0, -1).Val())
				require.Zero(t, rdb.ZCard(ctx, k.Scheduled()).Val())
				require.Equal(t, asynqcompat.StatePending, rdb.HGet(ctx, k.AsynqTask(id), asynqcompat.FieldState).Val())
				require.EqualValues(t, 1, b.Counts[store.StatePending])
				require.Zero(t, b.Counts[store.StateScheduled])
			case tc.rescheduled:
				require.Equal(t, store.StateScheduled, r.State)
				require.Equal(t, at.UnixMilli(), r.ScheduledFor.UnixMilli())
				require.Equal(t, float64((at.UnixMilli()+999)/1000), rdb.ZScore(ctx, k.Scheduled(), id).Val())
			default:
				require.Equal(t, week.UnixMilli(), r.ScheduledFor.UnixMilli())
				require.Equal(t, float64((week.UnixMilli()+999)/1000), rdb.ZScore(ctx, k.Scheduled(), id).Val())
			}
			require.Equal(t, id, rdb.Get(ctx, k.Dedup("s")).Val())
		})
	}
}
