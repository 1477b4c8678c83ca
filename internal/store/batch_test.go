package store_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/asynqcompat"
	"github.com/wahaq/wahaq/internal/base"
	"github.com/wahaq/wahaq/internal/store"
)

func TestBatch(t *testing.T) {
	t.Parallel()
	t.Run("open, filled, closed", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		bid := base.NewID()
		at := f.now.Add(time.Hour)
		require.NoError(t, f.st.CreateBatch(f.ctx, "default", bid, at, true))
		require.Equal(t, map[string]string{"instance": "default", "created": ms(f.now), "open": "1", "total": "0",
			"sched": ms(at), "discovering": "1"}, f.hash(f.k.Batch(bid)))
		b, err := f.st.GetBatch(f.ctx, []string{"other", "default"}, bid)
		require.NoError(t, err)
		require.False(t, b.Done, "an open batch is never done")
		require.True(t, b.Discovering)
		require.Equal(t, "default", b.Instance)

		filled, err := f.st.FillBatch(f.ctx, "default", bid, []string{"a", "b", "a"}, at, 3, time.Minute, time.Hour)
		require.NoError(t, err)
		require.Equal(t, store.Filled{Total: 2, Requested: 3, Deduplicated: 1}, filled)
		m := f.hash(f.k.Batch(bid))
		require.NotContains(t, m, "open")
		require.NotContains(t, m, "discovering")
		require.Equal(t, "1", m["dedup"])
		require.Equal(t, "2", m["scheduled"])
		b, err = f.st.GetBatch(f.ctx, []string{"default"}, bid)
		require.NoError(t, err)
		require.Equal(t, int64(2), b.Total)
		require.Equal(t, int64(2), b.Counts[store.StateScheduled])
		require.False(t, b.Done)
		require.Equal(t, time.Duration(-1), f.ttl(f.k.Batch(bid)))

		// Once its time has come, asynq has moved the tasks to pending on
		// its own: the batch reads so.
		f.now = at
		b, err = f.st.GetBatch(f.ctx, []string{"default"}, bid)
		require.NoError(t, err)
		require.Equal(t, int64(0), b.Counts[store.StateScheduled])
		require.Equal(t, int64(2), b.Counts[store.StatePending])
	})

	t.Run("closed with nothing left to do expires", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		bid := base.NewID()
		require.NoError(t, f.st.CreateBatch(f.ctx, "default", bid, time.Time{}, true))
		require.NoError(t, f.st.CloseBatch(f.ctx, "default", bid, 0, "discovery failed: 401", time.Hour))
		b, err := f.st.GetBatch(f.ctx, []string{"default"}, bid)
		require.NoError(t, err)
		require.True(t, b.Done)
		require.Equal(t, "discovery failed: 401", b.Error)
		require.InDelta(t, time.Hour.Seconds(), f.ttl(f.k.Batch(bid)).Seconds(), 5)
	})

	t.Run("unknown", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		_, err := f.st.GetBatch(f.ctx, []string{"default"}, base.NewID())
		require.ErrorIs(t, err, base.ErrNotFound)
	})
}

func TestGetRecord(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	at := f.now.Add(time.Minute)
	res, err := f.st.Enqueue(f.ctx, []store.NewTask{{Instance: "default", Session: "s1", MaxRetries: 3, ProcessAt: at}})
	require.NoError(t, err)
	id := res[0].ID
	r, err := f.st.Get(f.ctx, []string{"other", "default"}, id)
	require.NoError(t, err)
	require.Equal(t, &store.Record{ID: id, Instance: "default", Session: "s1", State: store.StateScheduled, MaxRetries: 3,
		EnqueuedAt: time.UnixMilli(f.now.UnixMilli()).UTC(), ScheduledFor: &at}, r)
	f.now = at
	r, err = f.st.Get(f.ctx, []string{"default"}, id)
	require.NoError(t, err)
	require.Equal(t, store.StatePending, r.State, "asynq has moved it to pending")
	_, err = f.st.Get(f.ctx, []string{"default"}, base.NewID())
	require.ErrorIs(t, err, base.ErrNotFound)
}

func TestDeadLetterReads(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var ids []string
	for _, s := range []string{"s1", "s2", "s3"} {
		p, id := f.enqueue(s, "")
		f.kill(id, p, "auth_failed")
		f.now = f.now.Add(time.Second)
		ids = append(ids, id)
	}
	require.NoError(t, f.rdb.Del(f.ctx, f.k.Record(ids[2])).Err())
	n, err := f.st.CountDeadLetters(f.ctx, "default")
	require.NoError(t, err)
	require.Equal(t, int64(3), n)
	all, err := f.st.DeadLetterIDs(f.ctx, "default")
	require.NoError(t, err)
	require.Equal(t, ids, all, "oldest first")
	page, total, err := f.st.DeadLetters(f.ctx, "default", 1, 5)
	require.NoError(t, err)
	require.Equal(t, int64(3), total)
	require.Len(t, page, 2)
	require.Equal(t, "s2", page[0].Session)
	require.Equal(t, store.StateDead, page[1].State)
	require.Equal(t, "record missing", page[1].LastError, "a dead letter without its record is shown, not hidden")
	outcomes, err := f.st.Outcomes(f.ctx, "default", ids)
	require.NoError(t, err)
	require.Equal(t, []string{"auth_failed", "auth_failed", ""}, outcomes)
}

func TestClaimTick(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tick := f.now.Truncate(time.Minute)
	ok, err := f.st.ClaimTick(f.ctx, "default", "nightly", tick)
	require.NoError(t, err)
	require.True(t, ok)
	ok, err = f.st.ClaimTick(f.ctx, "default", "nightly", tick)
	require.NoError(t, err)
	require.False(t, ok, "a tick is claimed once")
	ok, err = f.st.ClaimTick(f.ctx, "default", "nightly", tick.Add(time.Minute))
	require.NoError(t, err)
	require.True(t, ok, "the next tick is its own")
	require.InDelta(t, (7 * 24 * time.Hour).Seconds(), f.ttl(f.k.CronClaim("nightly", tick)).Seconds(), 5)
}

func TestKeys(t *testing.T) {
	t.Parallel()
	k := store.KeysFor("wahaq", "eu-1")
	tick := time.Unix(1700000000, 0)
	for got, want := range map[string]string{
		k.Queue:                      "wahaq:eu-1",
		k.Record("id1"):              "wahaq:{wahaq:eu-1}:t:id1",
		k.Dedup("sales"):             "wahaq:{wahaq:eu-1}:d:sales",
		k.Batch("b1"):                "wahaq:{wahaq:eu-1}:b:b1",
		k.DeadLetters():              "wahaq:{wahaq:eu-1}:dlq",
		k.Slots():                    "wahaq:{wahaq:eu-1}:slots",
		k.Rate():                     "wahaq:{wahaq:eu-1}:rate",
		k.CronClaim("nightly", tick): "wahaq:{wahaq:eu-1}:cron:nightly:1700000000",
		// asynq's keys of the queue, as asynqcompat names them
		k.AsynqTask("id1"):        asynqcompat.TaskKey("wahaq:eu-1", "id1"),
		k.AsynqTaskPrefix() + "x": asynqcompat.TaskKey("wahaq:eu-1", "x"),
		k.Pending():               asynqcompat.PendingKey("wahaq:eu-1"),
		k.Scheduled():             asynqcompat.ScheduledKey("wahaq:eu-1"),
		k.Retry():                 asynqcompat.RetryKey("wahaq:eu-1"),
		k.Archived():              asynqcompat.ArchivedKey("wahaq:eu-1"),
		k.Paused():                asynqcompat.PausedKey("wahaq:eu-1"),
	} {
		require.Equal(t, want, got)
	}
	require.Equal(t, k, store.New(nil, store.Options{}).Keys("eu-1"), "the default namespace is wahaq")
}
