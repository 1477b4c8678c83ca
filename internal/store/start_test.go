package store_test

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/base"
	"github.com/wahaq/wahaq/internal/store"
)

func TestStartScript(t *testing.T) {
	t.Parallel()
	t.Run("starts a pending task", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		bid, ids := f.batch("s1", "s2")
		p := base.Payload{Instance: "default", Session: "s1", BatchID: bid, MaxRetries: 3}
		require.NoError(t, f.rdb.HSet(f.ctx, f.k.Record(ids[0]), "next", "123").Err())
		ok, err := f.st.Start(f.ctx, ids[0], p, 2, 4, time.Minute)
		require.NoError(t, err)
		require.True(t, ok)
		rec := f.hash(f.k.Record(ids[0]))
		require.Equal(t, "active", rec["state"])
		require.Equal(t, "2", rec["attempts"])
		require.NotContains(t, rec, "next")
		require.Equal(t, []redis.Z{{Score: float64(f.now.Add(time.Minute).UnixMilli()), Member: ids[0]}}, zWithScores(f, f.k.Slots()))
		b := f.hash(f.k.Batch(bid))
		require.Equal(t, "1", b["pending"])
		require.Equal(t, "1", b["active"])
	})

	t.Run("cap reached changes nothing", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		p, id := f.enqueue("s1", "")
		other := base.NewID()
		require.NoError(t, f.rdb.ZAdd(f.ctx, f.k.Slots(), redis.Z{Score: float64(f.now.Add(time.Second).UnixMilli()), Member: other}).Err())
		ok, err := f.st.Start(f.ctx, id, p, 1, 1, time.Minute)
		require.NoError(t, err)
		require.False(t, ok)
		require.Equal(t, "pending", f.hash(f.k.Record(id))["state"])
		require.Equal(t, []string{other}, f.zmembers(f.k.Slots()))
	})

	t.Run("an expired lease frees its slot", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		p, id := f.enqueue("s1", "")
		dead := base.NewID()
		require.NoError(t, f.rdb.ZAdd(f.ctx, f.k.Slots(), redis.Z{Score: float64(f.now.Add(-time.Millisecond).UnixMilli()), Member: dead}).Err())
		ok, err := f.st.Start(f.ctx, id, p, 1, 1, time.Minute)
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, []string{id}, f.zmembers(f.k.Slots()))
	})

	t.Run("the slot holder starts again at the cap", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		p, id := f.enqueue("s1", "")
		f.start(id, p)
		ok, err := f.st.Start(f.ctx, id, p, 2, 1, time.Minute)
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, "2", f.hash(f.k.Record(id))["attempts"])
	})

	t.Run("a task from asynq's tools gets a record", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		bid, _ := f.batch("other")
		id := base.NewID()
		p := base.Payload{Instance: "default", Session: "s1", BatchID: bid, MaxRetries: 7}
		f.start(id, p)
		require.Equal(t, map[string]string{"instance": "default", "session": "s1", "max": "7", "enq": ms(f.now), "batch": bid,
			"state": "active", "attempts": "1"}, f.hash(f.k.Record(id)))
		b := f.hash(f.k.Batch(bid))
		require.Equal(t, "1", b["pending"], "a task the batch never counted is not moved")
		require.Equal(t, "", b["active"])
	})

	// The restart branch: a final task runs again (asynq's tools, or a
	// duplicate delivery). It leaves the dead letters and its outcome, and
	// its batch counts it active again.
	for _, c := range []struct{ from, outcome string }{
		{store.StateDead, "auth_failed"},
		{store.StateCompleted, "logged_out"},
		{store.StateCanceled, ""},
	} {
		t.Run("restart from "+c.from, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			bid, ids := f.batch("s1", "s2")
			id := ids[0]
			p := base.Payload{Instance: "default", Session: "s1", BatchID: bid, MaxRetries: 3}
			if c.from == store.StateCanceled {
				_, err := f.st.Cancel(f.ctx, []string{"default"}, id, time.Hour)
				require.NoError(t, err)
			} else {
				f.start(id, p)
				require.NoError(t, f.st.Finish(f.ctx, id, p, store.Finish{State: c.from, Outcome: c.outcome,
					Result: []byte(`{"status":"x"}`), ResultTTL: time.Hour}))
			}
			b := f.hash(f.k.Batch(bid))
			require.Equal(t, "1", b[c.from])
			f.start(id, p)
			rec := f.hash(f.k.Record(id))
			require.Equal(t, "active", rec["state"])
			for _, gone := range []string{"outcome", "fin", "result"} {
				require.NotContains(t, rec, gone)
			}
			require.Equal(t, time.Duration(-1), f.ttl(f.k.Record(id)), "the record no longer expires")
			require.Empty(t, f.zmembers(f.k.DeadLetters()))
			b = f.hash(f.k.Batch(bid))
			require.Equal(t, "0", b[c.from])
			require.Equal(t, "1", b["active"])
			require.Equal(t, "1", b["pending"])
			if c.outcome != "" {
				require.Equal(t, "0", b["o:"+c.outcome])
			}
			require.Equal(t, time.Duration(-1), f.ttl(f.k.Batch(bid)), "the batch no longer expires")
		})
	}
}
