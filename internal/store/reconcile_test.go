package store_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/asynqcompat"
	"github.com/wahaq/wahaq/internal/base"
	"github.com/wahaq/wahaq/internal/redistest"
	"github.com/wahaq/wahaq/internal/store"
)

// seed writes a record, its claim and its batch (counting it in state st)
// and, when ast is set, asynq's task hash in state ast, listed where asynq
// lists it.
func seed(t *testing.T, st *store.Store, id, state, ast string) store.Keys {
	t.Helper()
	ctx := context.Background()
	k := st.Keys("default")
	rdb := st.Redis()
	require.NoError(t, rdb.HSet(ctx, k.Record(id), "state", state, "session", "s1", "batch", "b1", "max", 3).Err())
	require.NoError(t, rdb.Set(ctx, k.Dedup("s1"), id, 0).Err())
	require.NoError(t, rdb.HSet(ctx, k.Batch("b1"), "total", 1, state, 1).Err())
	if ast != "" {
		require.NoError(t, rdb.HSet(ctx, k.AsynqTask(id), asynqcompat.FieldState, ast, asynqcompat.FieldMsg, "x").Err())
		switch ast {
		case asynqcompat.StatePending:
			require.NoError(t, rdb.LPush(ctx, k.Pending(), id).Err())
		case asynqcompat.StateRetry:
			require.NoError(t, rdb.ZAdd(ctx, k.Retry(), redisZ(id)).Err())
		case asynqcompat.StateArchived:
			require.NoError(t, rdb.ZAdd(ctx, k.Archived(), redisZ(id)).Err())
		}
	}
	if state == "dead" {
		require.NoError(t, rdb.ZAdd(ctx, k.DeadLetters(), redisZ(id)).Err())
	}
	return k
}

func TestReconcileTasksScript(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, state, ast, kind string
		// wantState is the record's state afterwards, wantClaim whether the
		// session's claim still names the task, wantAsynq whether asynq's
		// task still exists, wantDead whether it is in the dead letters.
		wantState                      string
		wantClaim, wantAsynq, wantDead bool
		wantBatchState                 string
	}{
		{"pending, asynq task gone", "pending", "", store.RepairGone, "canceled", false, false, false, "canceled"},
		{"retrying, asynq task gone", "retrying", "", store.RepairGone, "canceled", false, false, false, "canceled"},
		{"scheduled, asynq pending (on time)", "scheduled", asynqcompat.StatePending, store.RepairNone, "scheduled", true, true, false, "scheduled"},
		{"pending, archived in asynq", "pending", asynqcompat.StateArchived, store.RepairArchived, "dead", false, true, true, "dead"},
		{"dead, run from asynq's archive", "dead", asynqcompat.StatePending, store.RepairRevived, "pending", true, true, false, "pending"},
		{"dead, still archived", "dead", asynqcompat.StateArchived, store.RepairNone, "dead", true, true, true, "dead"},
		{"canceled, asynq retry (operator cancel)", "canceled", asynqcompat.StateRetry, store.RepairStray, "canceled", true, false, false, "canceled"},
		{"active, asynq task present", "active", asynqcompat.StateActive, store.RepairNone, "active", true, true, false, "active"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			rdb := redistest.Client(t)
			st := store.New(rdb, store.Options{Namespace: redistest.Namespace(t)})
			k := seed(t, st, "t1", tc.state, tc.ast)
			reps, err := st.ReconcileTasks(ctx, "default", []string{"t1"}, time.Hour)
			require.NoError(t, err)
			if tc.kind == store.RepairNone {
				require.Empty(t, reps)
			} else {
				require.Equal(t, []store.Repair{{Kind: tc.kind, Instance: "default", ID: "t1"}}, reps)
			}
			require.Equal(t, tc.wantState, rdb.HGet(ctx, k.Record("t1"), "state").Val())
			require.Equal(t, tc.wantClaim, rdb.Get(ctx, k.Dedup("s1")).Val() == "t1", "claim")
			require.Equal(t, tc.wantAsynq, rdb.Exists(ctx, k.AsynqTask("t1")).Val() == 1, "asynq task")
			require.Equal(t, tc.wantDead, rdb.ZScore(ctx, k.DeadLetters(), "t1").Err() == nil, "dead letters")
			require.Equal(t, "1", rdb.HGet(ctx, k.Batch("b1"), tc.wantBatchState).Val(), "batch counts it %s", tc.wantBatchState)
			if tc.kind == store.RepairArchived {
				require.Equal(t, store.OutcomeArchived, rdb.HGet(ctx, k.Record("t1"), "outcome").Val())
				require.Equal(t, "1", rdb.HGet(ctx, k.Batch("b1"), "o:archived").Val())
			}
			// idempotent: a second pass (another replica) repairs nothing
			again, err := st.ReconcileTasks(ctx, "default", []string{"t1"}, time.Hour)
			require.NoError(t, err)
			require.Empty(t, again)
		})
	}
}

func TestReleaseStaleClaimsScript(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, state, ast string
		released         bool
	}{
		{"record missing", "", "", true},
		{"completed", "completed", "", true},
		{"dead and archived", "dead", asynqcompat.StateArchived, true},
		{"pending", "pending", asynqcompat.StatePending, false},
		{"dead but queued again by asynq", "dead", asynqcompat.StatePending, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			rdb := redistest.Client(t)
			st := store.New(rdb, store.Options{Namespace: redistest.Namespace(t)})
			k := st.Keys("default")
			if tc.state != "" {
				seed(t, st, "t1", tc.state, tc.ast)
			} else {
				require.NoError(t, rdb.Set(ctx, k.Dedup("s1"), "t1", 0).Err())
			}
			reps, err := st.ReleaseStaleClaims(ctx, "default", []string{"s1"})
			require.NoError(t, err)
			require.Equal(t, tc.released, len(reps) == 1)
			require.Equal(t, !tc.released, rdb.Exists(ctx, k.Dedup("s1")).Val() == 1)
		})
	}
}

// TestCloseAbandonedBatches: the reconciler's one mechanism for batches
// left open is the producer's lease (batch_lease.go).
func TestCloseAbandonedBatches(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		// setup makes batch bid at the fixture's clock; the reconciler
		// then runs an hour later unless live.
		setup  func(f *fixture, bid string)
		live   bool
		closed bool
	}{
		{"lease ended (producer killed)", func(f *fixture, bid string) {
			require.NoError(f.t, f.st.CreateBatch(f.ctx, "default", bid, time.Time{}, false))
			f.enqueueIn(bid, "s1", "s2", "s3")
		}, false, true},
		{"lease held (producer enqueueing)", func(f *fixture, bid string) {
			require.NoError(f.t, f.st.CreateBatch(f.ctx, "default", bid, time.Time{}, false))
			f.enqueueIn(bid, "s1")
		}, true, false},
		{"discovery batch waiting for its task (no lease)", func(f *fixture, bid string) {
			require.NoError(f.t, f.st.CreateBatch(f.ctx, "default", bid, time.Time{}, true))
		}, false, false},
		{"closed by its producer", func(f *fixture, bid string) {
			require.NoError(f.t, f.st.CreateBatch(f.ctx, "default", bid, time.Time{}, false))
			f.enqueueIn(bid, "s1")
			require.NoError(f.t, f.st.CloseBatch(f.ctx, "default", bid, 0, "", time.Hour))
		}, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			bid := base.NewID()
			tc.setup(f, bid)
			before := f.hash(f.k.Batch(bid))
			if !tc.live {
				f.now = f.now.Add(time.Hour)
			}
			reps, err := f.st.CloseAbandonedBatches(f.ctx, "default", 100, time.Hour)
			require.NoError(t, err)
			b, err := f.st.GetBatch(f.ctx, []string{"default"}, bid)
			require.NoError(t, err)
			if !tc.closed {
				require.Empty(t, reps)
				require.Equal(t, before, f.hash(f.k.Batch(bid)), "untouched")
				return
			}
			require.Equal(t, []store.Repair{{Kind: store.RepairBatch, Instance: "default", ID: bid}}, reps)
			require.False(t, b.Open)
			require.True(t, b.Interrupted)
			require.Equal(t, int64(3), b.Total, "the total it really holds")
			require.Equal(t, store.BatchInterruptedError, b.Error)
			require.NotContains(t, f.zmembers(f.k.OpenBatches()), bid)
			again, err := f.st.CloseAbandonedBatches(f.ctx, "default", 100, time.Hour)
			require.NoError(t, err)
			require.Empty(t, again, "idempotent")
			_, err = f.st.Enqueue(f.ctx, []store.NewTask{{Instance: "default", Session: "late", BatchID: bid, MaxRetries: 3}})
			require.ErrorIs(t, err, store.ErrBatchClosed, "a stalled producer cannot grow it")
		})
	}
}

// TestCloseAbandonedBatchesReplicas: reconcilers of several replicas close
// each abandoned batch once.
func TestCloseAbandonedBatchesReplicas(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var bids []string
	for i := 0; i < 20; i++ {
		bid := base.NewID()
		require.NoError(t, f.st.CreateBatch(f.ctx, "default", bid, time.Time{}, false))
		f.enqueueIn(bid, "s"+strconv.Itoa(i))
		bids = append(bids, bid)
	}
	later := f.now.Add(time.Hour)
	const replicas = 4
	got := make(chan []store.Repair, replicas)
	for i := 0; i < replicas; i++ {
		st := store.New(f.rdb, store.Options{Namespace: f.ns, Now: func() time.Time { return later }})
		go func() {
			reps, err := st.CloseAbandonedBatches(context.Background(), "default", 100, time.Hour)
			assert.NoError(t, err)
			got <- reps
		}()
	}
	var closed []string
	for i := 0; i < replicas; i++ {
		for _, r := range <-got {
			closed = append(closed, r.ID)
		}
	}
	require.ElementsMatch(t, bids, closed, "every batch closed exactly once")
}

// TestBatchLeaseNeverShortened: a producer whose clock lags another's (or a
// late renewal) does not pull the lease end back.
func TestBatchLeaseNeverShortened(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	bid := base.NewID()
	require.NoError(t, f.st.CreateBatch(f.ctx, "default", bid, time.Time{}, false))
	f.enqueueIn(bid, "s1")
	end := f.rdb.ZScore(f.ctx, f.k.OpenBatches(), bid).Val()
	require.Equal(t, float64(f.now.Add(store.DefaultBatchLease).UnixMilli()), end)
	behind := store.New(f.rdb, store.Options{Namespace: f.ns, Now: func() time.Time { return f.now.Add(-time.Minute) }})
	_, err := behind.Enqueue(f.ctx, []store.NewTask{{Instance: "default", Session: "s2", BatchID: bid, MaxRetries: 3}})
	require.NoError(t, err)
	require.Equal(t, end, f.rdb.ZScore(f.ctx, f.k.OpenBatches(), bid).Val())
}

func TestRegisterQueue(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := redistest.Client(t)
	st := store.New(rdb, store.Options{Namespace: redistest.Namespace(t)})
	k := st.Keys("default")
	t.Cleanup(func() { rdb.SRem(context.Background(), asynqcompat.AllQueues, k.Queue) })
	ok, err := st.RegisterQueue(ctx, "default")
	require.NoError(t, err)
	require.False(t, ok, "an empty queue is not registered")
	require.NoError(t, rdb.LPush(ctx, k.Pending(), "t1").Err())
	ok, err = st.RegisterQueue(ctx, "default")
	require.NoError(t, err)
	require.True(t, ok)
	require.True(t, rdb.SIsMember(ctx, asynqcompat.AllQueues, k.Queue).Val())
	ok, err = st.RegisterQueue(ctx, "default")
	require.NoError(t, err)
	require.False(t, ok, "already registered")
}

func TestStartScriptDeliveries(t *testing.T) {
	t.Parallel()
	p := base.Payload{Instance: "default", Session: "s1", BatchID: "b1", MaxRetries: 3}
	cases := []struct {
		name, state string
		other       bool // the session's claim names another live task
		slot        bool // a live slot lease of this id
		want        store.StartCode
		wantAttempt int
	}{
		{"pending", "pending", false, false, store.StartStarted, 5},
		{"active with a live slot (second delivery)", "active", false, true, store.StartInFlight, 0},
		{"active, slot expired (crashed worker)", "active", false, false, store.StartStarted, 5},
		{"completed", "completed", false, false, store.StartEnded, 0},
		{"canceled", "canceled", false, false, store.StartEnded, 0},
		{"dead, run from asynq: fresh retries", "dead", false, false, store.StartStarted, 1},
		{"dead, session has another live task", "dead", true, false, store.StartSuperseded, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			rdb := redistest.Client(t)
			st := store.New(rdb, store.Options{Namespace: redistest.Namespace(t)})
			k := seed(t, st, "t1", tc.state, "")
			if tc.slot {
				require.NoError(t, rdb.ZAdd(ctx, k.Slots(), redisZAt("t1", time.Now().Add(time.Hour))).Err())
			}
			if tc.other {
				require.NoError(t, rdb.Set(ctx, k.Dedup("s1"), "t2", 0).Err())
				require.NoError(t, rdb.HSet(ctx, k.AsynqTask("t2"), asynqcompat.FieldState, asynqcompat.StatePending).Err())
			}
			r, err := st.Begin(ctx, "t1", p, 5, 4, time.Minute)
			require.NoError(t, err)
			require.Equal(t, tc.want, r.Code)
			require.Equal(t, tc.wantAttempt, r.Attempt)
			switch tc.want {
			case store.StartStarted:
				require.Equal(t, "active", rdb.HGet(ctx, k.Record("t1"), "state").Val())
				if tc.state == "dead" {
					require.Equal(t, "t1", rdb.Get(ctx, k.Dedup("s1")).Val(), "the claim is taken back")
					require.Error(t, rdb.ZScore(ctx, k.DeadLetters(), "t1").Err(), "left the dead letters")
				}
			case store.StartSuperseded:
				require.Equal(t, "t2", r.LiveID)
				require.Equal(t, "canceled", rdb.HGet(ctx, k.Record("t1"), "state").Val())
				require.Equal(t, "1", rdb.HGet(ctx, k.Batch("b1"), "canceled").Val())
			default:
				require.Equal(t, tc.state, rdb.HGet(ctx, k.Record("t1"), "state").Val(), "unchanged")
			}
		})
	}
}

func redisZ(member string) redis.Z { return redisZAt(member, time.Now()) }

func redisZAt(member string, at time.Time) redis.Z {
	return redis.Z{Score: float64(at.UnixMilli()), Member: member}
}

// TestReconcileRepairCallbacks: a repair that makes a task final enqueues
// the callback deliveries (the task's; the batch's when the batch becomes
// done) and publishes the completions, as the finish script does; a second
// pass enqueues nothing more.
func TestReconcileRepairCallbacks(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, state, ast    string
		taskCB, batchCB     bool
		wantDeliveries      int
		wantAnnouncements   []string
		wantTaskCB, wantBCB string // cb_state afterwards ("" = none)
	}{
		{"gone, task callback", "pending", "", true, false, 1, []string{"t:t1", "b:b1"}, "pending", ""},
		{"archived, task and batch callbacks", "scheduled", asynqcompat.StateArchived, true, true, 2, []string{"b:b1", "t:t1"}, "pending", "pending"},
		{"gone, batch callback only", "retrying", "", false, true, 1, []string{"b:b1", "t:t1"}, "", "pending"},
		{"gone, no callback", "pending", "", false, false, 0, []string{"b:b1", "t:t1"}, "", ""},
		{"no repair", "active", asynqcompat.StateActive, true, true, 0, nil, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			rdb := redistest.Client(t)
			st := store.New(rdb, store.Options{Namespace: redistest.Namespace(t)})
			k := seed(t, st, "t1", tc.state, tc.ast)
			if tc.taskCB {
				require.NoError(t, rdb.HSet(ctx, k.Record("t1"), store.FieldCallbackURL, "http://127.0.0.1:9/t").Err())
			}
			if tc.batchCB {
				require.NoError(t, rdb.HSet(ctx, k.Batch("b1"), store.FieldCallbackURL, "http://127.0.0.1:9/b").Err())
			}
			ps := rdb.SSubscribe(ctx, k.Done())
			defer ps.Close()
			_, err := ps.Receive(ctx)
			require.NoError(t, err)
			pendingBefore := rdb.LRange(ctx, k.Pending(), 0, -1).Val()

			_, err = st.ReconcileTasks(ctx, "default", []string{"t1"}, time.Hour)
			require.NoError(t, err)
			_, err = st.ReconcileTasks(ctx, "default", []string{"t1"}, time.Hour)
			require.NoError(t, err)

			require.Equal(t, pendingBefore, rdb.LRange(ctx, k.Pending(), 0, -1).Val(), "no delivery in asynq's queue")
			due := rdb.ZRange(ctx, k.Deliveries(), 0, -1).Val()
			require.Len(t, due, tc.wantDeliveries, "callback deliveries enqueued")
			var refs []string
			for _, id := range due {
				refs = append(refs, rdb.HGet(ctx, k.Delivery(id), "ref").Val())
			}
			var wantRefs []string
			if tc.wantDeliveries > 0 && tc.taskCB {
				wantRefs = append(wantRefs, "t:t1")
			}
			if tc.wantDeliveries > 0 && tc.batchCB {
				wantRefs = append(wantRefs, "b:b1")
			}
			require.ElementsMatch(t, wantRefs, refs)
			require.Equal(t, tc.wantTaskCB, rdb.HGet(ctx, k.Record("t1"), store.FieldCallbackState).Val())
			require.Equal(t, tc.wantBCB, rdb.HGet(ctx, k.Batch("b1"), store.FieldCallbackState).Val())
			var got []string
			for range tc.wantAnnouncements {
				select {
				case m := <-ps.Channel():
					got = append(got, m.Payload)
				case <-time.After(5 * time.Second):
					t.Fatalf("announcements: got %v, want %v", got, tc.wantAnnouncements)
				}
			}
			require.ElementsMatch(t, tc.wantAnnouncements, got)
			select {
			case m := <-ps.Channel():
				t.Fatalf("one announcement too many: %s", m.Payload)
			case <-time.After(100 * time.Millisecond):
			}
		})
	}
}

// TestCloseStaleBatchCallback: a stale batch whose tasks all ended is done
// once closed: its callback is enqueued and it is announced.
// TestCloseAbandonedBatchCallback: a batch whose tasks all ended while its
// producer was gone is done once the reconciler closes it, and enqueues its
// callback and is announced as when its last task ends.
func TestCloseAbandonedBatchCallback(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := redistest.Client(t)
	st := store.New(rdb, store.Options{Namespace: redistest.Namespace(t)})
	k := st.Keys("default")
	require.NoError(t, rdb.HSet(ctx, k.Batch("b1"), "open", 1, "created", time.Now().Add(-time.Hour).UnixMilli(),
		"total", 2, "completed", 2, store.FieldCallbackURL, "http://127.0.0.1:9/b").Err())
	// the producer's lease ended an hour ago
	require.NoError(t, rdb.ZAdd(ctx, k.OpenBatches(), redis.Z{Score: float64(time.Now().Add(-time.Hour).UnixMilli()), Member: "b1"}).Err())
	ps := rdb.SSubscribe(ctx, k.Done())
	defer ps.Close()
	_, err := ps.Receive(ctx)
	require.NoError(t, err)

	reps, err := st.CloseAbandonedBatches(ctx, "default", 10, time.Hour)
	require.NoError(t, err)
	require.Len(t, reps, 1)
	b, err := st.GetBatch(ctx, []string{"default"}, "b1")
	require.NoError(t, err)
	require.True(t, b.Done)
	require.Equal(t, store.CallbackPending, b.Callback.State)
	require.Equal(t, []string{b.Callback.ID}, rdb.ZRange(ctx, k.Deliveries(), 0, -1).Val())
	require.Equal(t, "b:b1", rdb.HGet(ctx, k.Delivery(b.Callback.ID), "ref").Val())
	require.Equal(t, "http://127.0.0.1:9/b", rdb.HGet(ctx, k.Delivery(b.Callback.ID), "url").Val())
	select {
	case m := <-ps.Channel():
		require.Equal(t, "b:b1", m.Payload)
	case <-time.After(5 * time.Second):
		t.Fatal("the done batch was not announced")
	}
}
