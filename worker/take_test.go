package worker

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/asynqcompat"
	"github.com/wahaq/wahaq/internal/redistest"
	"github.com/wahaq/wahaq/internal/store"
	"github.com/wahaq/wahaq/tasks"
	"github.com/wahaq/wahaq/wahaclient/wahafake"
)

// TestTakeAheadAnswersAsynq: with a block take, most of asynq's asks are
// answered by the block's rest, so a batch costs fewer take scripts than
// it has tasks, and every task still runs once.
func TestTakeAheadAnswersAsynq(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	ns := redistest.Namespace(t)
	fake := wahafake.NewT(t, wahafake.Options{})
	w, err := New(Config{Redis: rdb, Namespace: ns, Instances: []Instance{{Name: "default", BaseURL: fake.URL(), Concurrency: 8}},
		Concurrency: 8, TakeBlock: 4, PollInterval: 10 * time.Millisecond, Registerer: prometheus.NewRegistry(), FastPath: FastPathOn})
	require.NoError(t, err)
	sent := &wire{n: map[asynqcompat.Op]int{}}
	rdb.AddHook(sent)
	sessions := fake.AddSessions("s", 200, wahafake.StatusWorking)
	got := runToDone(t, rdb, ns, w, sessions)
	require.EqualValues(t, len(sessions), got.Outcomes[tasks.OutcomeLoggedOut])
	takes := sent.count(opTake)
	require.Positive(t, takes, "the fast path ran: asynq's dequeues were answered by takes")
	require.Less(t, takes, len(sessions), "takes per task")
	t.Logf("%d take scripts for %d tasks", takes, len(sessions))
	calls := fake.Stats().LogoutCalls
	for _, s := range sessions {
		require.Equal(t, 1, calls[s], "session %s called once", s)
	}
}

// TestTakeAheadGivenBack: the block's tasks that asynq did not ask for
// within aheadKeep go back to the head of the queue, their starts undone;
// a stop gives back the rest at once.
func TestTakeAheadGivenBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := redistest.Client(t)
	ns := redistest.Namespace(t)
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	w, err := New(Config{Redis: rdb, Namespace: ns, Instances: []Instance{{Name: "default", BaseURL: "http://127.0.0.1:1", Concurrency: 8}},
		Concurrency: 8, TakeBlock: 4, Registerer: prometheus.NewRegistry(), Now: now})
	require.NoError(t, err)
	st := store.New(rdb, store.Options{Namespace: ns, Now: now})
	var ids []string
	for i := range 6 {
		res, err := st.Enqueue(ctx, []store.NewTask{{Instance: "default", Session: "s" + string(rune('a'+i)), MaxRetries: 3}})
		require.NoError(t, err)
		ids = append(ids, res[0].ID)
	}
	k := store.KeysFor(ns, "default")
	// asynq's dequeue as the hook sees it: its lease end is ARGV[1]
	ask := func() string {
		d := &asynqcompat.Dequeue{Paused: k.Paused(), LeaseEnd: time.Unix(now().Add(30*time.Second).Unix(), 0)}
		msg, done, err := w.take(ctx, "default", d)
		require.True(t, done)
		require.NoError(t, err)
		return msg
	}
	state := func(id string) string { return rdb.HGet(ctx, k.Record(id), "state").Val() }

	msg := ask()
	require.Contains(t, msg, ids[0], "the ask gets the queue's first task")
	require.Len(t, w.ahead.q, 3, "a block of four: three ahead")
	for _, id := range ids[:4] {
		require.Equal(t, "active", state(id))
		// process-wide: other tests' workers use it too, with other ids
		require.True(t, asynqcompat.HasStart(id), "start of %s handed to its handler", id)
	}
	a, ok := w.ahead.pop("default")
	require.True(t, ok)
	require.Equal(t, ids[1], a.ID, "the block's rest in queue order")

	w.giveBackAhead(aheadKeep)
	require.Len(t, w.ahead.q, 2, "nothing waited long enough to go back")
	clock.Add(int64(2 * aheadKeep))
	w.giveBackAhead(aheadKeep)
	require.Empty(t, w.ahead.q)
	for _, id := range ids[2:4] {
		require.Equal(t, "pending", state(id), "given back: %s", id)
		_, ok := asynqcompat.TakeStart(id)
		require.False(t, ok, "a given-back task's start is gone: %s", id)
	}
	require.ElementsMatch(t, ids[:2], rdb.ZRange(ctx, k.Slots(), 0, -1).Val(), "their slots are free")
	pending := rdb.LRange(ctx, k.Pending(), 0, -1).Val()
	require.Equal(t, []string{ids[5], ids[4], ids[3], ids[2]}, pending, "back at the head, in order")

	// a stopping worker takes no block, and a stop gives back what is ahead
	ask()
	require.Len(t, w.ahead.q, 3, "the given-back tasks are taken again first")
	require.Equal(t, ids[3], w.ahead.q[0].ID)
	w.stopping.Store(true)
	w.giveBackAhead(0)
	require.Empty(t, w.ahead.q)
	for _, id := range ids[3:] {
		require.Equal(t, "pending", state(id))
	}
	ask()
	require.Empty(t, w.ahead.q, "a stopping worker takes one task per ask")
	require.Equal(t, "active", state(ids[3]))
}

// TestTakeShareOfFreeHandlers: a block is the queue's share of the free
// handlers among the queues the gate view does not hold closed.
func TestTakeShareOfFreeHandlers(t *testing.T) {
	t.Parallel()
	v := newGateView(nil, time.Now, time.Millisecond, nil)
	for _, in := range []string{"a", "b", "c"} {
		v.add(in, store.KeysFor("ns", in))
	}
	require.Equal(t, 3, v.open())
	g := v.byPaused[store.KeysFor("ns", "a").Paused()]
	g.mu.Lock()
	g.setClosed(true)
	g.setClosed(true) // told twice: counted once
	g.mu.Unlock()
	require.Equal(t, 2, v.open())
	g.mu.Lock()
	g.setClosed(false)
	g.mu.Unlock()
	require.Equal(t, 3, v.open())
}
