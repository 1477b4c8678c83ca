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

func TestCancelScript(t *testing.T) {
	t.Parallel()
	// asynq's state of the task -> where asynq keeps it and whether cancel
	// succeeds. The record says pending (or scheduled) in every case: a task
	// handed back for a limit sits in asynq's retry set while its record is
	// still pending.
	for _, c := range []struct {
		asynq string
		ok    bool
	}{
		{asynqcompat.StatePending, true}, {asynqcompat.StateScheduled, true}, {asynqcompat.StateRetry, true}, {"", true},
		{asynqcompat.StateActive, false}, {asynqcompat.StateArchived, false}, {asynqcompat.StateCompleted, false},
	} {
		t.Run("asynq "+c.asynq, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			bid, ids := f.batch("s1")
			id := ids[0]
			require.NoError(t, f.rdb.LRem(f.ctx, f.k.Pending(), 0, id).Err())
			switch c.asynq {
			case "":
				require.NoError(t, f.rdb.Del(f.ctx, f.k.AsynqTask(id)).Err())
			case asynqcompat.StatePending:
				require.NoError(t, f.rdb.LPush(f.ctx, f.k.Pending(), id).Err())
			case asynqcompat.StateScheduled:
				require.NoError(t, f.rdb.ZAdd(f.ctx, f.k.Scheduled(), redis.Z{Score: 1, Member: id}).Err())
			case asynqcompat.StateRetry:
				require.NoError(t, f.rdb.ZAdd(f.ctx, f.k.Retry(), redis.Z{Score: 1, Member: id}).Err())
			}
			if c.asynq != "" {
				f.asynqState(id, c.asynq)
			}
			r, err := f.st.Cancel(f.ctx, []string{"default"}, id, time.Hour)
			if !c.ok {
				require.ErrorIs(t, err, base.ErrAlreadyStarted)
				require.Equal(t, "pending", f.hash(f.k.Record(id))["state"])
				require.Equal(t, id, f.get(f.k.Dedup("s1")))
				require.True(t, f.exists(f.k.AsynqTask(id)))
				return
			}
			require.NoError(t, err)
			require.Equal(t, store.StateCanceled, r.State)
			rec := f.hash(f.k.Record(id))
			require.Equal(t, "canceled", rec["state"])
			require.Equal(t, ms(f.now), rec["fin"])
			require.InDelta(t, time.Hour.Seconds(), f.ttl(f.k.Record(id)).Seconds(), 5)
			require.False(t, f.exists(f.k.AsynqTask(id)))
			require.Empty(t, f.list(f.k.Pending()))
			require.Empty(t, f.zmembers(f.k.Scheduled()))
			require.Empty(t, f.zmembers(f.k.Retry()))
			require.False(t, f.exists(f.k.Dedup("s1")))
			b := f.hash(f.k.Batch(bid))
			require.Equal(t, "0", b["pending"])
			require.Equal(t, "1", b["canceled"])
			require.InDelta(t, time.Hour.Seconds(), f.ttl(f.k.Batch(bid)).Seconds(), 5, "its last task canceled, the batch is done")
		})
	}

	t.Run("a started task", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		p, id := f.enqueue("s1", "")
		f.start(id, p)
		_, err := f.st.Cancel(f.ctx, []string{"default"}, id, time.Hour)
		require.ErrorIs(t, err, base.ErrAlreadyStarted)
		require.ErrorContains(t, err, "is active")
		require.Equal(t, "active", f.hash(f.k.Record(id))["state"])
	})

	t.Run("an unknown id", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		_, err := f.st.Cancel(f.ctx, []string{"default"}, base.NewID(), time.Hour)
		require.ErrorIs(t, err, base.ErrNotFound)
	})
}
