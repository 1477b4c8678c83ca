package store_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/asynqcompat"
	"github.com/wahaq/wahaq/internal/base"
	"github.com/wahaq/wahaq/internal/store"
)

func TestRequeueScript(t *testing.T) {
	t.Parallel()
	t.Run("requeued", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		bid, ids := f.batch("s1", "s2")
		id := ids[0]
		p := base.Payload{Instance: "default", Session: "s1", BatchID: bid, MaxRetries: 3}
		f.kill(id, p, "auth_failed")
		require.Equal(t, "1", f.hash(f.k.Batch(bid))["o:auth_failed"])
		res, err := f.st.Requeue(f.ctx, "default", []string{id}, time.Minute, time.Hour)
		require.NoError(t, err)
		require.Equal(t, []store.RequeueResult{{ID: id, Code: store.RequeueRequeued}}, res)
		rec := f.hash(f.k.Record(id))
		require.Equal(t, map[string]string{"state": "pending", "attempts": "0", "max": "3", "enq": ms(f.now), "batch": bid, "session": "s1"}, rec)
		require.Equal(t, time.Duration(-1), f.ttl(f.k.Record(id)))
		require.ElementsMatch(t, []string{ids[1], id}, f.list(f.k.Pending()))
		require.Equal(t, asynqcompat.StatePending, f.hash(f.k.AsynqTask(id))[asynqcompat.FieldState])
		ti := f.asynqInfo(id)
		require.Equal(t, base.TypeLogout, ti.Type)
		require.Equal(t, time.Minute, ti.Timeout)
		got, err := base.DecodePayload(ti.Payload)
		require.NoError(t, err)
		require.Equal(t, p, got)
		require.Empty(t, f.zmembers(f.k.Archived()))
		require.Empty(t, f.zmembers(f.k.DeadLetters()))
		require.Equal(t, id, f.get(f.k.Dedup("s1")))
		b := f.hash(f.k.Batch(bid))
		require.Equal(t, "0", b["dead"])
		require.Equal(t, "2", b["pending"])
		require.Equal(t, "0", b["o:auth_failed"])
	})

	// The session has another live task: the dead letter is closed in its
	// favour. Its outcome goes, from the record and from the batch's
	// outcome counts: a canceled task has no outcome, and the batch's
	// outcomes count its completed and dead tasks (as after a requeue).
	t.Run("superseded", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		bid, ids := f.batch("s1", "s2")
		id := ids[0]
		p := base.Payload{Instance: "default", Session: "s1", BatchID: bid, MaxRetries: 3}
		f.kill(id, p, "auth_failed")
		_, live := f.enqueue("s1", "")
		res, err := f.st.Requeue(f.ctx, "default", []string{id}, time.Minute, time.Hour)
		require.NoError(t, err)
		require.Equal(t, []store.RequeueResult{{ID: id, Code: store.RequeueSuperseded, LiveID: live}}, res)
		rec := f.hash(f.k.Record(id))
		require.Equal(t, "canceled", rec["state"])
		require.Equal(t, "superseded by live task "+live, rec["err"])
		require.NotContains(t, rec, "outcome")
		require.InDelta(t, time.Hour.Seconds(), f.ttl(f.k.Record(id)).Seconds(), 5)
		require.False(t, f.exists(f.k.AsynqTask(id)), "gone from asynq's archive, or asynq's tools could run it")
		require.Empty(t, f.zmembers(f.k.Archived()))
		require.Empty(t, f.zmembers(f.k.DeadLetters()))
		require.Equal(t, live, f.get(f.k.Dedup("s1")))
		require.ElementsMatch(t, []string{live, ids[1]}, f.list(f.k.Pending()))
		b := f.hash(f.k.Batch(bid))
		require.Equal(t, "0", b["dead"])
		require.Equal(t, "1", b["canceled"])
		require.Equal(t, "0", b["o:auth_failed"])
	})

	t.Run("busy: asynq still has it active", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		p, id := f.enqueue("s1", "")
		f.kill(id, p, "rejected")
		f.asynqState(id, asynqcompat.StateActive)
		res, err := f.st.Requeue(f.ctx, "default", []string{id}, time.Minute, time.Hour)
		require.NoError(t, err)
		require.Equal(t, []store.RequeueResult{{ID: id, Code: store.RequeueBusy}}, res)
		require.Equal(t, "dead", f.hash(f.k.Record(id))["state"])
		require.Equal(t, []string{id}, f.zmembers(f.k.DeadLetters()))
		require.Equal(t, []string{id}, f.zmembers(f.k.Archived()))
		require.Equal(t, asynqcompat.StateActive, f.hash(f.k.AsynqTask(id))[asynqcompat.FieldState])
	})

	t.Run("not dead", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		_, id := f.enqueue("s1", "")
		unknown := base.NewID()
		res, err := f.st.Requeue(f.ctx, "default", []string{id, unknown}, time.Minute, time.Hour)
		require.NoError(t, err)
		require.Equal(t, []store.RequeueResult{{ID: id, Code: store.RequeueNotDead}, {ID: unknown, Code: store.RequeueNotDead}}, res)
		require.Equal(t, "pending", f.hash(f.k.Record(id))["state"])
		require.Equal(t, []string{id}, f.list(f.k.Pending()))
		require.False(t, f.exists(f.k.Record(unknown)))
	})
}

func TestPurgeScript(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	p, dead := f.enqueue("s1", "")
	f.kill(dead, p, "auth_failed")
	_, pending := f.enqueue("s2", "")
	n, err := f.st.Purge(f.ctx, "default", []string{dead, pending, base.NewID()})
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.False(t, f.exists(f.k.Record(dead)))
	require.False(t, f.exists(f.k.AsynqTask(dead)))
	require.Empty(t, f.zmembers(f.k.Archived()))
	require.Empty(t, f.zmembers(f.k.DeadLetters()))
	require.Equal(t, "pending", f.hash(f.k.Record(pending))["state"], "not a dead letter: left alone")
	require.True(t, f.exists(f.k.AsynqTask(pending)))
}
