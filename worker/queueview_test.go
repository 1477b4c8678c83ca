package worker

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/asynqcompat"
	"github.com/wahaq/wahaq/internal/redistest"
	"github.com/wahaq/wahaq/internal/store"
)

// TestQueueView drives the queue view with the store's real writes: an
// idle queue's dequeues and forwards are answered without reaching Redis;
// an enqueue, a scheduled task falling due, asynq's own write through the
// worker's client, and (at the recheck) a write behind wahaq's back each
// let them through again.
func TestQueueView(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := redistest.Client(t)
	ns := redistest.Namespace(t)
	st := store.New(rdb, store.Options{Namespace: ns})
	k := st.Keys("default")
	clock := newTestClock()
	now, advance := clock.now, clock.advance
	log := zerolog.Nop()
	gv := newGateView(rdb, now, 0, &log)
	qv := newQueueView(st, now, &log)
	q := qv.add("default", k, gv.add("default", k))
	gv.changed = qv.forgetInstance
	// asynq's calls below carry a fake digest, which reaches Redis as
	// NOSCRIPT: the fence is told to expect it
	fence := asynqcompat.NewFence(true, asynqcompat.Version, nil)
	fence.Expect(asynqcompat.OpDequeue, fakeDigest)
	fence.Expect(asynqcompat.OpForward, fakeDigest)
	rdb.AddHook(asynqcompat.NewHook(answers{gates: gv, queues: qv}, fence))
	w := &wire{n: map[asynqcompat.Op]int{}}
	rdb.AddHook(w)
	rctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { gv.run(rctx) })
	wg.Go(func() { qv.run(rctx) })
	t.Cleanup(func() { stop(); wg.Wait() })

	// asynq's own calls, as its rdb makes them (the fake sha reaches Redis
	// as NOSCRIPT)
	dequeue := func() error {
		return rdb.EvalSha(ctx, fakeDigest,
			[]string{k.Pending(), k.Paused(), asynqcompat.ActiveKey(k.Queue), asynqcompat.QueuePrefix(k.Queue) + "lease"}, 1, k.AsynqTaskPrefix()).Err()
	}
	forward := func() (any, error) {
		return rdb.EvalSha(ctx, fakeDigest, []string{k.Scheduled(), k.Pending()}, now().Unix(), "p", 1, "g").Result()
	}
	local := func(name string) {
		t.Helper()
		require.Eventually(t, func() bool { return qv.idle(q) && qv.nothingDue(q) }, 10*time.Second, time.Millisecond, "%s: %+v", name, q)
		before := w.count(asynqcompat.OpDequeue) + w.count(asynqcompat.OpForward)
		require.ErrorIs(t, dequeue(), redis.Nil, name)
		n, err := forward()
		require.NoError(t, err, name)
		require.EqualValues(t, 0, n, name)
		require.Equal(t, before, w.count(asynqcompat.OpDequeue)+w.count(asynqcompat.OpForward), "%s: nothing reached Redis", name)
	}
	remoteDequeue := func(name string) {
		t.Helper()
		require.Eventually(t, func() bool { return !qv.idle(q) }, 10*time.Second, time.Millisecond, name)
		before := w.count(asynqcompat.OpDequeue)
		require.ErrorContains(t, dequeue(), "NOSCRIPT", name)
		require.Equal(t, before+1, w.count(asynqcompat.OpDequeue), name)
	}
	g := gv.byPaused[k.Paused()]
	require.Eventually(t, func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		return gv.on.Load() && g.seq > 0
	}, 10*time.Second, time.Millisecond)
	// the gate view reads the gate once, the queue view looks
	require.ErrorContains(t, dequeue(), "NOSCRIPT")
	local("nothing enqueued")

	// an enqueue announces its work
	_, err := st.Enqueue(ctx, []store.NewTask{{Instance: "default", Session: "a", MaxRetries: 1}})
	require.NoError(t, err)
	remoteDequeue("after an enqueue")
	require.NoError(t, rdb.Del(ctx, k.Pending()).Err()) // unannounced: seen at the recheck
	advance(2 * idleRecheck)
	local("emptied, seen at the recheck")

	// a write behind wahaq's back is seen at the recheck, not before
	require.NoError(t, rdb.LPush(ctx, k.Pending(), "behind").Err())
	local("not yet rechecked")
	advance(2 * idleRecheck)
	remoteDequeue("rechecked")
	require.NoError(t, rdb.Del(ctx, k.Pending()).Err())
	advance(2 * idleRecheck)
	local("emptied again")

	// a gate's opening heard by a view that never saw it closed: a take
	// that found the cap full dequeued nothing and left its tasks pending
	require.NoError(t, rdb.SPublish(ctx, k.Gate(), "0").Err())
	remoteDequeue("after a gate opening")
	advance(2 * idleRecheck)
	local("looked again")

	// a scheduled task: nothing to forward until it is due
	_, err = st.Enqueue(ctx, []store.NewTask{{Instance: "default", Session: "b", MaxRetries: 1, ProcessAt: now().Add(time.Hour)}})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		q.mu.Lock()
		defer q.mu.Unlock()
		return q.known && q.due != 0
	}, 10*time.Second, time.Millisecond)
	local("scheduled an hour ahead")
	advance(time.Hour + time.Second)
	before := w.count(asynqcompat.OpForward)
	_, err = forward()
	require.ErrorContains(t, err, "NOSCRIPT", "due: the forward goes to Redis")
	require.Equal(t, before+1, w.count(asynqcompat.OpForward))

	// asynq's own write through the worker's client (its retry starts with
	// the task's hash) makes the view look again
	require.NoError(t, rdb.ZRem(ctx, k.Scheduled(), "x").Err())
	_ = rdb.Del(ctx, k.Scheduled())
	advance(2 * idleRecheck)
	local("nothing left")
	_ = rdb.EvalSha(ctx, fakeDigest, []string{k.AsynqTask("x"), asynqcompat.ActiveKey(k.Queue)}, 1).Err()
	remoteDequeue("after asynq's retry script")
}

// fakeDigest is a script digest Redis does not know.
const fakeDigest = "0000000000000000000000000000000000000000"
