package store_test

import (
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/asynqcompat"
	"github.com/wahaq/wahaq/internal/base"
	"github.com/wahaq/wahaq/internal/redistest"
	"github.com/wahaq/wahaq/internal/store"
)

func TestFinishScript(t *testing.T) {
	t.Parallel()
	t.Run("retrying", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		bid, ids := f.batch("s1", "s2")
		p := base.Payload{Instance: "default", Session: "s1", BatchID: bid, MaxRetries: 3}
		f.start(ids[0], p)
		next := f.now.Add(4 * time.Second)
		require.NoError(t, f.st.Finish(f.ctx, ids[0], p, store.Finish{State: store.StateRetrying, LastError: "503", NextAttempt: next, ResultTTL: time.Hour}))
		rec := f.hash(f.k.Record(ids[0]))
		require.Equal(t, "retrying", rec["state"])
		require.Equal(t, ms(next), rec["next"])
		require.Equal(t, "503", rec["err"])
		require.NotContains(t, rec, "outcome")
		require.Empty(t, f.zmembers(f.k.Slots()), "the slot is free")
		require.Equal(t, ids[0], f.get(f.k.Dedup("s1")), "still live")
		b := f.hash(f.k.Batch(bid))
		require.Equal(t, "0", b["active"])
		require.Equal(t, "1", b["retrying"])
		require.Equal(t, time.Duration(-1), f.ttl(f.k.Batch(bid)))
	})

	t.Run("completed, last of its batch", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		bid, ids := f.batch("s1")
		p := base.Payload{Instance: "default", Session: "s1", BatchID: bid, MaxRetries: 3}
		f.start(ids[0], p)
		require.NoError(t, f.rdb.HSet(f.ctx, f.k.Record(ids[0]), "err", "an earlier 503", "next", "1").Err())
		require.NoError(t, f.st.Finish(f.ctx, ids[0], p, store.Finish{State: store.StateCompleted, Outcome: "logged_out",
			Result: []byte(`{"status":"success"}`), ResultTTL: time.Hour}))
		rec := f.hash(f.k.Record(ids[0]))
		require.Equal(t, "completed", rec["state"])
		require.Equal(t, "logged_out", rec["outcome"])
		require.Equal(t, ms(f.now), rec["fin"])
		require.Equal(t, `{"status":"success"}`, rec["result"])
		require.NotContains(t, rec, "err")
		require.NotContains(t, rec, "next")
		require.InDelta(t, time.Hour.Seconds(), f.ttl(f.k.Record(ids[0])).Seconds(), 5)
		require.False(t, f.exists(f.k.Dedup("s1")))
		require.Empty(t, f.zmembers(f.k.Slots()))
		b := f.hash(f.k.Batch(bid))
		require.Equal(t, "1", b["completed"])
		require.Equal(t, "1", b["o:logged_out"])
		require.InDelta(t, time.Hour.Seconds(), f.ttl(f.k.Batch(bid)).Seconds(), 5, "a done batch expires")
	})

	// The finish reads the batch before it moves the task's count, and
	// works out from that one read whether the batch is done.
	t.Run("batch end", func(t *testing.T) {
		t.Parallel()
		type step struct {
			task  int // index of the batch's task
			state string
		}
		tests := []struct {
			name  string
			steps []step
			done  bool
			want  map[string]string // batch fields after the steps
		}{
			{name: "one of two completed", steps: []step{{0, store.StateCompleted}},
				want: map[string]string{"completed": "1", "active": "0", "pending": "1"}},
			{name: "both completed", steps: []step{{0, store.StateCompleted}, {1, store.StateCompleted}}, done: true,
				want: map[string]string{"completed": "2", "active": "0", "pending": "0"}},
			{name: "the last one dead", steps: []step{{0, store.StateCompleted}, {1, store.StateDead}}, done: true,
				want: map[string]string{"completed": "1", "dead": "1", "active": "0"}},
			{name: "a retry is not an end", steps: []step{{0, store.StateCompleted}, {1, store.StateRetrying}},
				want: map[string]string{"completed": "1", "retrying": "1", "active": "0"}},
			{name: "a finish applied twice counts once", steps: []step{{0, store.StateCompleted}, {0, store.StateCompleted}},
				want: map[string]string{"completed": "1", "pending": "1", "o:logged_out": "1"}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				f := newFixture(t)
				bid, ids := f.batch("s1", "s2")
				started := map[int]bool{}
				for _, st := range tc.steps {
					p := base.Payload{Instance: "default", Session: "s" + string(rune('1'+st.task)), BatchID: bid, MaxRetries: 3}
					if !started[st.task] {
						f.start(ids[st.task], p)
						started[st.task] = true
					}
					fin := store.Finish{State: st.state, Outcome: "logged_out", ResultTTL: time.Hour}
					if st.state == store.StateRetrying {
						fin = store.Finish{State: st.state, NextAttempt: f.now.Add(time.Minute), ResultTTL: time.Hour}
					} else if st.state == store.StateDead {
						fin.Outcome = "auth_failed"
					}
					require.NoError(t, f.st.Finish(f.ctx, ids[st.task], p, fin))
				}
				b := f.hash(f.k.Batch(bid))
				for k, v := range tc.want {
					require.Equal(t, v, b[k], "batch field %s in %v", k, b)
				}
				if tc.done {
					require.InDelta(t, time.Hour.Seconds(), f.ttl(f.k.Batch(bid)).Seconds(), 5, "a done batch expires")
				} else {
					require.Equal(t, time.Duration(-1), f.ttl(f.k.Batch(bid)), "a batch not done stays")
				}
			})
		}
	})

	t.Run("a batch gone meanwhile is not written again", func(t *testing.T) {
		t.Parallel()
		for _, state := range []string{store.StateCompleted, store.StateRetrying} {
			f := newFixture(t)
			bid, ids := f.batch("s1")
			p := base.Payload{Instance: "default", Session: "s1", BatchID: bid, MaxRetries: 3}
			f.start(ids[0], p)
			require.NoError(t, f.rdb.Del(f.ctx, f.k.Batch(bid)).Err())
			require.NoError(t, f.st.Finish(f.ctx, ids[0], p, store.Finish{State: state, Outcome: "logged_out",
				NextAttempt: f.now.Add(time.Minute), ResultTTL: time.Hour}))
			require.False(t, f.exists(f.k.Batch(bid)), "%s: batch hash", state)
			require.Equal(t, state, f.hash(f.k.Record(ids[0]))["state"])
		}
	})

	t.Run("dead", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		p, id := f.enqueue("s1", "")
		f.start(id, p)
		require.NoError(t, f.st.Finish(f.ctx, id, p, store.Finish{State: store.StateDead, Outcome: "auth_failed", LastError: "401", ResultTTL: time.Hour}))
		rec := f.hash(f.k.Record(id))
		require.Equal(t, "dead", rec["state"])
		require.Equal(t, "auth_failed", rec["outcome"])
		require.Equal(t, "401", rec["err"])
		require.Equal(t, time.Duration(-1), f.ttl(f.k.Record(id)), "dead letters stay")
		require.Equal(t, []redis.Z{{Score: float64(f.now.UnixMilli()), Member: id}}, zWithScores(f, f.k.DeadLetters()))
		require.False(t, f.exists(f.k.Dedup("s1")))
	})

	t.Run("another task's dedup entry stays", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		p, id := f.enqueue("s1", "")
		f.start(id, p)
		other := base.NewID()
		require.NoError(t, f.rdb.Set(f.ctx, f.k.Dedup("s1"), other, 0).Err())
		require.NoError(t, f.st.Finish(f.ctx, id, p, store.Finish{State: store.StateCompleted, Outcome: "not_found", ResultTTL: time.Hour}))
		require.Equal(t, other, f.get(f.k.Dedup("s1")))
	})

	t.Run("completed after a restart from dead leaves the dead letters", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		p, id := f.enqueue("s1", "")
		f.start(id, p)
		require.NoError(t, f.rdb.ZAdd(f.ctx, f.k.DeadLetters(), redis.Z{Score: 1, Member: id}).Err())
		require.NoError(t, f.st.Finish(f.ctx, id, p, store.Finish{State: store.StateCompleted, Outcome: "logged_out", ResultTTL: time.Hour}))
		require.Empty(t, f.zmembers(f.k.DeadLetters()))
	})

	t.Run("settle", func(t *testing.T) {
		t.Parallel()
		tests := []struct {
			name   string
			state  string
			active bool // asynq holds the task as active
			settle bool
			want   bool
		}{
			{name: "completed, asked, active: settled", state: store.StateCompleted, active: true, settle: true, want: true},
			{name: "not asked", state: store.StateCompleted, active: true},
			{name: "asynq no longer holds it", state: store.StateCompleted, settle: true},
			{name: "retrying: asynq's retry does it", state: store.StateRetrying, active: true, settle: true},
			{name: "dead: asynq's archive does it", state: store.StateDead, active: true, settle: true},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				f := newFixture(t)
				p, id := f.enqueue("s1", "")
				// what asynq's dequeue did
				active, lease := asynqcompat.ActiveKey(f.k.Queue), asynqcompat.LeaseKey(f.k.Queue)
				require.NoError(t, f.rdb.LRem(f.ctx, f.k.Pending(), 0, id).Err())
				if tc.active {
					require.NoError(t, f.rdb.LPush(f.ctx, active, id).Err())
					require.NoError(t, f.rdb.ZAdd(f.ctx, lease, redis.Z{Score: 1, Member: id}).Err())
				}
				f.start(id, p)
				fin := store.Finish{State: tc.state, ResultTTL: time.Hour, Settle: tc.settle, NextAttempt: f.now.Add(time.Second)}
				if tc.state != store.StateRetrying {
					fin.Outcome = "logged_out"
				}
				got, err := f.st.FinishSettled(f.ctx, id, p, fin)
				require.NoError(t, err)
				require.Equal(t, tc.want, got)
				require.Equal(t, tc.state, f.hash(f.k.Record(id))["state"])
				day, total := asynqcompat.ProcessedKey(f.k.Queue, f.now), asynqcompat.ProcessedTotalKey(f.k.Queue)
				if !tc.want {
					require.True(t, f.exists(f.k.AsynqTask(id)), "asynq's task is left to asynq")
					require.Equal(t, tc.active, len(f.list(active)) == 1)
					require.False(t, f.exists(day))
					require.False(t, f.exists(total))
					return
				}
				// as asynq's done leaves it
				require.Empty(t, f.list(active))
				require.Empty(t, f.zmembers(lease))
				require.False(t, f.exists(f.k.AsynqTask(id)))
				require.Equal(t, "1", f.get(day))
				require.Equal(t, "1", f.get(total))
				require.Greater(t, f.ttl(day), 89*24*time.Hour, "the day's counter expires as asynq's do")
			})
		}
	})
}

// TestFinishMany: several Finishes in one pipeline do what each would
// alone, each with its own answer, also on a Redis that lost its scripts.
func TestFinishMany(t *testing.T) {
	t.Parallel()
	for _, flushed := range []bool{false, true} {
		f := newFixture(t)
		if flushed {
			// SCRIPT FLUSH is server-wide: a private redis-server, so that
			// no other test's scripts go
			srv, err := redistest.Launch(redistest.ServerConfig{Name: "TestFinishMany redis-server"})
			require.NoError(t, err)
			t.Cleanup(func() { srv.Kill(); _ = os.RemoveAll(srv.Dir) })
			f.rdb = redis.NewClient(&redis.Options{Addr: srv.Addr})
			t.Cleanup(func() { _ = f.rdb.Close() })
			f.st = store.New(f.rdb, store.Options{Namespace: f.ns, Now: func() time.Time { return f.now }})
		}
		bid, ids := f.batch("s1", "s2", "s3")
		var calls []store.FinishCall
		for i, id := range ids {
			p := base.Payload{Instance: "default", Session: "s" + string(rune('1'+i)), BatchID: bid, MaxRetries: 3}
			f.start(id, p)
			fin := store.Finish{State: store.StateCompleted, Outcome: "logged_out", ResultTTL: time.Hour, Settle: true}
			if i == 1 {
				fin = store.Finish{State: store.StateRetrying, LastError: "503", NextAttempt: f.now.Add(time.Minute), ResultTTL: time.Hour}
			}
			calls = append(calls, store.FinishCall{ID: id, Payload: p, Finish: fin})
		}
		// asynq holds the first as active: only that one settles
		require.NoError(t, f.rdb.LPush(f.ctx, asynqcompat.ActiveKey(f.k.Queue), ids[0]).Err())
		if flushed {
			require.NoError(t, f.rdb.ScriptFlush(f.ctx).Err())
		}
		got := f.st.FinishMany(f.ctx, calls)
		require.Len(t, got, 3)
		for i, r := range got {
			require.NoError(t, r.Err, "call %d (scripts flushed: %v)", i, flushed)
		}
		require.True(t, got[0].Settled)
		require.False(t, got[1].Settled)
		require.False(t, got[2].Settled, "asynq no longer held it")
		require.Equal(t, "completed", f.hash(f.k.Record(ids[0]))["state"])
		require.Equal(t, "retrying", f.hash(f.k.Record(ids[1]))["state"])
		require.Equal(t, "completed", f.hash(f.k.Record(ids[2]))["state"])
		b := f.hash(f.k.Batch(bid))
		require.Equal(t, "2", b["completed"])
		require.Equal(t, "1", b["retrying"])
		require.Empty(t, f.zmembers(f.k.Slots()))
	}
}
