package store_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/asynqcompat"
	"github.com/wahaq/wahaq/internal/base"
	"github.com/wahaq/wahaq/internal/store"
)

// TestNoClaimOutlivesItsTask ends a task by every terminal path and checks
// that the session's dedup claim no longer names it.
func TestNoClaimOutlivesItsTask(t *testing.T) {
	t.Parallel()
	p := func(session string) base.Payload {
		return base.Payload{Instance: "default", Session: session, MaxRetries: 3}
	}
	cases := []struct {
		name string
		// end ends the task id of session s; it returns the id the claim
		// should name afterwards ("" none).
		end func(f *fixture, id string) string
	}{
		{"completed", func(f *fixture, id string) string {
			f.start(id, p("s"))
			require.NoError(f.t, f.st.Finish(f.ctx, id, p("s"), store.Finish{State: store.StateCompleted, Outcome: "logged_out", ResultTTL: time.Hour}))
			return ""
		}},
		{"dead", func(f *fixture, id string) string {
			f.kill(id, p("s"), "auth_failed")
			return ""
		}},
		{"canceled", func(f *fixture, id string) string {
			_, err := f.st.Cancel(f.ctx, []string{"default"}, id, time.Hour)
			require.NoError(f.t, err)
			return ""
		}},
		{"canceled while active", func(f *fixture, id string) string {
			f.start(id, p("s"))
			ok, err := f.st.CancelActive(f.ctx, id, p("s"), "canceled by an operator", time.Hour)
			require.NoError(f.t, err)
			require.True(f.t, ok)
			return ""
		}},
		{"archived by the reconciler", func(f *fixture, id string) string {
			f.asynqState(id, asynqcompat.StateArchived)
			require.NoError(f.t, f.rdb.LRem(f.ctx, f.k.Pending(), 0, id).Err())
			reps, err := f.st.ReconcileTasks(f.ctx, "default", []string{id}, time.Hour)
			require.NoError(f.t, err)
			require.Len(f.t, reps, 1)
			return ""
		}},
		{"deleted in asynq, canceled by the reconciler", func(f *fixture, id string) string {
			require.NoError(f.t, f.rdb.Del(f.ctx, f.k.AsynqTask(id)).Err())
			require.NoError(f.t, f.rdb.LRem(f.ctx, f.k.Pending(), 0, id).Err())
			reps, err := f.st.ReconcileTasks(f.ctx, "default", []string{id}, time.Hour)
			require.NoError(f.t, err)
			require.Len(f.t, reps, 1)
			return ""
		}},
		{"purged (a claim left behind by a lost release)", func(f *fixture, id string) string {
			f.kill(id, p("s"), "auth_failed")
			require.NoError(f.t, f.rdb.Set(f.ctx, f.k.Dedup("s"), id, 0).Err())
			n, err := f.st.Purge(f.ctx, "default", []string{id})
			require.NoError(f.t, err)
			require.Equal(f.t, 1, n)
			return ""
		}},
		{"requeue superseded by a live task", func(f *fixture, id string) string {
			f.kill(id, p("s"), "auth_failed")
			_, live := f.enqueue("s", "")
			res, err := f.st.Requeue(f.ctx, "default", []string{id}, time.Minute, time.Hour)
			require.NoError(f.t, err)
			require.Equal(f.t, store.RequeueSuperseded, res[0].Code)
			return live
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			_, id := f.enqueue("s", "")
			require.Equal(t, id, f.get(f.k.Dedup("s")))
			want := tc.end(f, id)
			require.Equal(t, want, f.get(f.k.Dedup("s")))
		})
	}

	t.Run("batch cancel", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		bid, ids := f.batch("b1", "b2")
		c, err := f.st.CancelBatch(f.ctx, "default", bid, time.Hour)
		require.NoError(t, err)
		require.Equal(t, int64(2), c.Canceled)
		for i, s := range []string{"b1", "b2"} {
			require.False(t, f.exists(f.k.Dedup(s)), "claim of %s (%s)", s, ids[i])
		}
	})
}

// TestClaimExpiry checks the backstop: a claim expires ClaimSlack after its
// task's next planned run, and is re-armed, never shortened, as the task
// goes on.
func TestClaimExpiry(t *testing.T) {
	t.Parallel()
	// within is true when d is in (want-slop, want]: the TTL counts down
	// from when the script ran.
	within := func(t *testing.T, d, want time.Duration) {
		t.Helper()
		require.LessOrEqual(t, d, want)
		require.Greater(t, d, want-time.Minute)
	}
	t.Run("enqueued now", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		f.enqueue("s", "")
		within(t, f.pttl(f.k.Dedup("s")), store.ClaimSlack)
	})
	t.Run("scheduled at the horizon", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		at := 366 * 24 * time.Hour
		res, err := f.st.Enqueue(f.ctx, []store.NewTask{{Instance: "default", Session: "s", MaxRetries: 3, ProcessAt: f.now.Add(at)}})
		require.NoError(t, err)
		require.False(t, res[0].Deduplicated)
		within(t, f.pttl(f.k.Dedup("s")), at+store.ClaimSlack)
	})
	t.Run("a stale claim taken over is armed", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		require.NoError(t, f.rdb.Set(f.ctx, f.k.Dedup("s"), base.NewID(), 0).Err()) // no TTL, task missing
		_, id := f.enqueue("s", "")
		require.Equal(t, id, f.get(f.k.Dedup("s")))
		within(t, f.pttl(f.k.Dedup("s")), store.ClaimSlack)
	})
	t.Run("retry planned past the slack", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		p, id := f.enqueue("s", "")
		f.start(id, p)
		next := 10 * 24 * time.Hour // a retry later than the first expiry
		require.NoError(t, f.st.Finish(f.ctx, id, p, store.Finish{State: store.StateRetrying, NextAttempt: f.now.Add(next), ResultTTL: time.Hour}))
		within(t, f.pttl(f.k.Dedup("s")), next+store.ClaimSlack)
		// a later start re-arms from now, which does not shorten it
		f.start(id, p)
		within(t, f.pttl(f.k.Dedup("s")), next+store.ClaimSlack)
	})
	t.Run("start re-arms", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		p, id := f.enqueue("s", "")
		require.NoError(t, f.rdb.PExpire(f.ctx, f.k.Dedup("s"), time.Minute).Err())
		f.start(id, p)
		within(t, f.pttl(f.k.Dedup("s")), store.ClaimSlack)
	})
	t.Run("start leaves a claim that is short by less than the re-arm slack", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		p, id := f.enqueue("s", "")
		short := store.ClaimSlack - 30*time.Minute
		require.NoError(t, f.rdb.PExpire(f.ctx, f.k.Dedup("s"), short).Err())
		f.start(id, p)
		within(t, f.pttl(f.k.Dedup("s")), short)
	})
	t.Run("start re-arms a claim short by more than the re-arm slack", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		p, id := f.enqueue("s", "")
		require.NoError(t, f.rdb.PExpire(f.ctx, f.k.Dedup("s"), store.ClaimSlack-2*time.Hour).Err())
		f.start(id, p)
		within(t, f.pttl(f.k.Dedup("s")), store.ClaimSlack)
	})
	t.Run("requeue arms", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		p, id := f.enqueue("s", "")
		f.kill(id, p, "auth_failed")
		_, err := f.st.Requeue(f.ctx, "default", []string{id}, time.Minute, time.Hour)
		require.NoError(t, err)
		require.Equal(t, id, f.get(f.k.Dedup("s")))
		within(t, f.pttl(f.k.Dedup("s")), store.ClaimSlack)
	})
	t.Run("reconcile sweep re-arms a live task's claim", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		res, err := f.st.Enqueue(f.ctx, []store.NewTask{{Instance: "default", Session: "s", MaxRetries: 3, ProcessAt: f.now.Add(48 * time.Hour)}})
		require.NoError(t, err)
		require.NoError(t, f.rdb.Persist(f.ctx, f.k.Dedup("s")).Err()) // a claim written before claims expired
		reps, err := f.st.ReleaseStaleClaims(f.ctx, "default", []string{"s"})
		require.NoError(t, err)
		require.Empty(t, reps, "re-arming is not a repair")
		require.Equal(t, res[0].ID, f.get(f.k.Dedup("s")))
		within(t, f.pttl(f.k.Dedup("s")), 48*time.Hour+store.ClaimSlack)
	})
}
