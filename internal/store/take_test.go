package store_test

import (
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/asynqcompat"
	"github.com/wahaq/wahaq/internal/base"
	"github.com/wahaq/wahaq/internal/store"
)

// TestTakeScript: the take script dequeues as asynq's dequeue does and
// starts the common case as the start script does; it leaves the start
// script's rarer paths to it, and dequeues nothing from a paused queue or
// past a full cap.
func TestTakeScript(t *testing.T) {
	t.Parallel()
	const lease = time.Minute
	asynqLease := time.Unix(2000000000, 0)
	tests := []struct {
		name string
		cap  int
		// prepare runs after the task of session "s1" (in a batch) is
		// enqueued; it returns whether the queue holds the task to take.
		prepare func(f *fixture, id string, p base.Payload) bool
		// want: nil reply (nothing taken), else its fields.
		none        bool
		started     bool
		code        store.StartCode
		attempt     int
		gateClosed  bool
		slotTaken   bool
		recordState string
		// slots, when set, is every member the slot set holds after.
		slots []string
	}{
		{name: "pending: dequeued and started", cap: 3, started: true, code: store.StartStarted, attempt: 1, slotTaken: true, recordState: "active"},
		{name: "no cap", started: true, code: store.StartStarted, attempt: 1, slotTaken: true, recordState: "active"},
		{name: "the last slot closes the gate", cap: 1, started: true, code: store.StartStarted, attempt: 1, slotTaken: true,
			gateClosed: true, recordState: "active"},
		{name: "retried twice by asynq, restarted once before", cap: 3, started: true, code: store.StartStarted, attempt: 2,
			slotTaken: true, recordState: "active",
			prepare: func(f *fixture, id string, p base.Payload) bool {
				msg := asynqcompat.Encode(asynqcompat.Message{Type: base.TypeLogout, Payload: p.Encode(), ID: id, Queue: f.k.Queue, Retry: 1 << 30, Retried: 2})
				require.NoError(f.t, f.rdb.HSet(f.ctx, f.k.AsynqTask(id), asynqcompat.FieldMsg, msg).Err())
				require.NoError(f.t, f.rdb.HSet(f.ctx, f.k.Record(id), "aoff", 1).Err())
				return true
			}},
		{name: "empty queue", none: true, recordState: "pending",
			prepare: func(f *fixture, id string, p base.Payload) bool {
				require.NoError(f.t, f.rdb.LRem(f.ctx, f.k.Pending(), 0, id).Err())
				return false
			}},
		{name: "paused queue", cap: 3, none: true, recordState: "pending",
			prepare: func(f *fixture, id string, p base.Payload) bool {
				require.NoError(f.t, f.rdb.Set(f.ctx, f.k.Paused(), "1764600000", 0).Err())
				return true
			}},
		{name: "full cap: nothing dequeued, the gate closes", cap: 1, none: true, gateClosed: true, recordState: "pending",
			prepare: func(f *fixture, id string, p base.Payload) bool {
				require.NoError(f.t, f.rdb.ZAdd(f.ctx, f.k.Slots(), redis.Z{Score: float64(f.now.Add(lease).UnixMilli()), Member: "other"}).Err())
				return true
			}},
		{name: "a lease that ran out is not pruned while the cap has room", cap: 3, started: true, code: store.StartStarted, attempt: 1,
			slotTaken: true, recordState: "active", slots: []string{"gone", "ID"},
			prepare: func(f *fixture, id string, p base.Payload) bool {
				require.NoError(f.t, f.rdb.ZAdd(f.ctx, f.k.Slots(), redis.Z{Score: float64(f.now.Add(-time.Second).UnixMilli()), Member: "gone"}).Err())
				return true
			}},
		{name: "a lease that ran out fills the cap: pruned, the task starts", cap: 1, started: true, code: store.StartStarted, attempt: 1,
			slotTaken: true, recordState: "active", slots: []string{"ID"}, gateClosed: true,
			prepare: func(f *fixture, id string, p base.Payload) bool {
				require.NoError(f.t, f.rdb.ZAdd(f.ctx, f.k.Slots(), redis.Z{Score: float64(f.now.Add(-time.Second).UnixMilli()), Member: "gone"}).Err())
				return true
			}},
		{name: "leases that ran out would be the last slot: pruned, the gate stays open", cap: 3, started: true, code: store.StartStarted, attempt: 1,
			slotTaken: true, recordState: "active", slots: []string{"ID"},
			prepare: func(f *fixture, id string, p base.Payload) bool {
				for _, m := range []string{"gone1", "gone2"} {
					require.NoError(f.t, f.rdb.ZAdd(f.ctx, f.k.Slots(), redis.Z{Score: float64(f.now.Add(-time.Second).UnixMilli()), Member: m}).Err())
				}
				return true
			}},
		{name: "record missing: left to the start script", cap: 3, recordState: "",
			prepare: func(f *fixture, id string, p base.Payload) bool {
				require.NoError(f.t, f.rdb.Del(f.ctx, f.k.Record(id)).Err())
				return true
			}},
		{name: "revived by the reconciler: left to the start script", cap: 3, recordState: "pending",
			prepare: func(f *fixture, id string, p base.Payload) bool {
				require.NoError(f.t, f.rdb.HSet(f.ctx, f.k.Record(id), "rst", 1).Err())
				return true
			}},
		{name: "dead letter run again: left to the start script", cap: 3, recordState: "dead",
			prepare: func(f *fixture, id string, p base.Payload) bool {
				require.NoError(f.t, f.rdb.HSet(f.ctx, f.k.Record(id), "state", "dead").Err())
				return true
			}},
		{name: "ended already", cap: 3, started: true, code: store.StartEnded, recordState: "completed",
			prepare: func(f *fixture, id string, p base.Payload) bool {
				require.NoError(f.t, f.rdb.HSet(f.ctx, f.k.Record(id), "state", "completed").Err())
				return true
			}},
		{name: "active, its other delivery's lease ran out: started again", cap: 3, started: true, code: store.StartStarted, attempt: 1,
			slotTaken: true, recordState: "active", slots: []string{"ID"},
			prepare: func(f *fixture, id string, p base.Payload) bool {
				require.NoError(f.t, f.rdb.HSet(f.ctx, f.k.Record(id), "state", "active").Err())
				require.NoError(f.t, f.rdb.HIncrBy(f.ctx, f.k.Batch(p.BatchID), "pending", -1).Err())
				require.NoError(f.t, f.rdb.HIncrBy(f.ctx, f.k.Batch(p.BatchID), "active", 1).Err())
				require.NoError(f.t, f.rdb.ZAdd(f.ctx, f.k.Slots(), redis.Z{Score: float64(f.now.Add(-time.Second).UnixMilli()), Member: id}).Err())
				return true
			}},
		{name: "in flight elsewhere", cap: 3, started: true, code: store.StartInFlight, slotTaken: true, recordState: "active",
			prepare: func(f *fixture, id string, p base.Payload) bool {
				require.NoError(f.t, f.rdb.HSet(f.ctx, f.k.Record(id), "state", "active").Err())
				require.NoError(f.t, f.rdb.ZAdd(f.ctx, f.k.Slots(), redis.Z{Score: float64(f.now.Add(lease).UnixMilli()), Member: id}).Err())
				return true
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			bid := base.NewID()
			require.NoError(t, f.st.CreateBatch(f.ctx, "default", bid, time.Time{}, false))
			p, id := f.enqueue("s1", bid)
			if tc.prepare != nil {
				tc.prepare(f, id, p)
			}
			before := f.hash(f.k.AsynqTask(id))[asynqcompat.FieldMsg]
			ts, err := f.st.TakeN(f.ctx, "default", asynqLease, tc.cap, lease, 1)
			require.NoError(t, err)
			require.LessOrEqual(t, len(ts), 1, "a block of one")
			require.Equal(t, tc.recordState, f.hash(f.k.Record(id))["state"])
			require.Equal(t, tc.gateClosed, f.get(f.k.Paused()) == store.GateMarker, "gate")
			slots := f.zmembers(f.k.Slots())
			require.Equal(t, tc.slotTaken, slices.Contains(slots, id), "slot %v", slots)
			if tc.slots != nil {
				want := slices.Clone(tc.slots)
				for i := range want {
					if want[i] == "ID" {
						want[i] = id
					}
				}
				require.ElementsMatch(t, want, slots)
			}
			if tc.none {
				require.Empty(t, ts)
				require.NotContains(t, f.list(asynqcompat.ActiveKey(f.k.Queue)), id)
				return
			}
			require.Len(t, ts, 1)
			got := ts[0]
			// as asynq's dequeue leaves it
			require.Equal(t, id, got.ID)
			require.Equal(t, before, got.Message)
			require.Equal(t, []string{id}, f.list(asynqcompat.ActiveKey(f.k.Queue)))
			require.Empty(t, f.list(f.k.Pending()))
			require.Equal(t, []redis.Z{{Score: float64(asynqLease.Unix()), Member: id}}, zWithScores(f, asynqcompat.LeaseKey(f.k.Queue)))
			at := f.hash(f.k.AsynqTask(id))
			require.Equal(t, "active", at["state"])
			require.NotContains(t, at, asynqcompat.FieldPendingSince)
			require.Equal(t, tc.started, got.Started)
			if !tc.started {
				return
			}
			require.Equal(t, tc.code, got.Start.Code)
			require.Equal(t, tc.attempt, got.Start.Attempt)
			if tc.code == store.StartStarted {
				rec := f.hash(f.k.Record(id))
				require.Equal(t, "active", rec["state"])
				require.Equal(t, strconv.Itoa(tc.attempt), rec["attempts"])
				b := f.hash(f.k.Batch(bid))
				require.Equal(t, "1", b["active"])
				require.Equal(t, "0", b["pending"])
			}
		})
	}
}

// TestTakeN: a block take dequeues and starts tasks in queue order and
// stops at the cap; giving back what no handler got restores the queue,
// the records, the batch, the slots and the gate as they were.
func TestTakeN(t *testing.T) {
	t.Parallel()
	const lease = time.Minute
	asynqLease := time.Unix(2000000000, 0)
	f := newFixture(t)
	bid, ids := f.batch("s1", "s2", "s3", "s4")
	before := f.list(f.k.Pending())

	ts, err := f.st.TakeN(f.ctx, "default", asynqLease, 3, lease, 5)
	require.NoError(t, err)
	require.Len(t, ts, 3, "the cap of 3 stops the block")
	got := []string{ts[0].ID, ts[1].ID, ts[2].ID}
	require.Equal(t, ids[:3], got, "in queue order")
	for _, tk := range ts {
		require.True(t, tk.Started)
		require.Equal(t, store.StartStarted, tk.Start.Code)
		require.Equal(t, "active", f.hash(f.k.Record(tk.ID))["state"])
	}
	require.Equal(t, store.GateMarker, f.get(f.k.Paused()), "the last slot closed the gate")
	require.Equal(t, "3", f.hash(f.k.Batch(bid))["active"])

	// a handler got the first; the other two go back
	n, err := f.st.GiveBack(f.ctx, "default", ts[1:])
	require.NoError(t, err)
	require.Equal(t, 2, n)
	require.Equal(t, before[:len(before)-1], f.list(f.k.Pending()), "back at the head, in their order")
	require.Equal(t, []string{ids[0]}, f.list(asynqcompat.ActiveKey(f.k.Queue)))
	require.Equal(t, []string{ids[0]}, f.zmembers(asynqcompat.LeaseKey(f.k.Queue)))
	require.Equal(t, []string{ids[0]}, f.zmembers(f.k.Slots()))
	require.Empty(t, f.get(f.k.Paused()), "a slot freed opens the gate")
	for _, id := range ids[1:3] {
		rec := f.hash(f.k.Record(id))
		require.Equal(t, "pending", rec["state"])
		require.NotContains(t, rec, "attempts")
		at := f.hash(f.k.AsynqTask(id))
		require.Equal(t, "pending", at["state"])
		require.Contains(t, at, asynqcompat.FieldPendingSince)
	}
	b := f.hash(f.k.Batch(bid))
	require.Equal(t, "1", b["active"])
	require.Equal(t, "3", b["pending"])

	// the next take finds them first, as if they had never left
	again, err := f.st.TakeN(f.ctx, "default", asynqLease, 3, lease, 5)
	require.NoError(t, err)
	require.Len(t, again, 2)
	require.Equal(t, ids[1:3], []string{again[0].ID, again[1].ID})

	// a task asynq no longer holds as active is left alone
	require.NoError(t, f.rdb.LRem(f.ctx, asynqcompat.ActiveKey(f.k.Queue), 0, ids[2]).Err())
	n, err = f.st.GiveBack(f.ctx, "default", again[1:])
	require.NoError(t, err)
	require.Zero(t, n)
	require.Equal(t, "active", f.hash(f.k.Record(ids[2]))["state"])
}

// TestGiveBackRetried: a retry given back keeps the attempts it had.
func TestGiveBackRetried(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	p, id := f.enqueue("s1", "")
	msg := asynqcompat.Encode(asynqcompat.Message{Type: base.TypeLogout, Payload: p.Encode(), ID: id, Queue: f.k.Queue, Retry: 1 << 30, Retried: 2})
	require.NoError(t, f.rdb.HSet(f.ctx, f.k.AsynqTask(id), asynqcompat.FieldMsg, msg).Err())
	require.NoError(t, f.rdb.HSet(f.ctx, f.k.Record(id), "attempts", 2).Err())
	ts, err := f.st.TakeN(f.ctx, "default", time.Unix(2000000000, 0), 0, time.Minute, 2)
	require.NoError(t, err)
	require.Len(t, ts, 1)
	require.Equal(t, 3, ts[0].Start.Attempt)
	n, err := f.st.GiveBack(f.ctx, "default", ts)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	rec := f.hash(f.k.Record(id))
	require.Equal(t, "pending", rec["state"])
	require.Equal(t, "2", rec["attempts"])
	require.Empty(t, f.zmembers(f.k.Slots()))
}
