package worker

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/asynqcompat"
	"github.com/wahaq/wahaq/internal/base"
	"github.com/wahaq/wahaq/internal/redistest"
	"github.com/wahaq/wahaq/internal/store"
	"github.com/wahaq/wahaq/tasks"
	"github.com/wahaq/wahaq/wahaclient/wahafake"
)

// wire counts the queue scripts that reach Redis past the gate view: a
// hook added after the view's is inside it.
type wire struct {
	mu sync.Mutex
	n  map[asynqcompat.Op]int
}

func (c *wire) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *wire) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
func (c *wire) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		op := asynqcompat.QueueScript(cmd.Args()).Op
		if op == asynqcompat.OpNone && isTake(cmd.Args()) {
			op = opTake
		}
		if op != asynqcompat.OpNone {
			c.mu.Lock()
			c.n[op]++
			c.mu.Unlock()
		}
		return next(ctx, cmd)
	}
}

// opTake counts the store's take script, which replaces asynq's dequeue.
const opTake asynqcompat.Op = 100

// isTake recognizes the take script by its keys (store.TakeN): asynq's
// pending and paused keys, then five more.
func isTake(args []any) bool {
	if len(args) < 9 {
		return false
	}
	n, _ := args[2].(int)
	first, _ := args[3].(string)
	second, _ := args[4].(string)
	return n == 7 && strings.HasSuffix(first, "}:pending") && strings.HasSuffix(second, "}:paused")
}

func (c *wire) count(op asynqcompat.Op) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[op]
}

// testClock is a clock the test moves by hand (the views' now), safe for
// the views' goroutines to read.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newTestClock() *testClock { return &testClock{t: time.Now()} }

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// TestGateView drives the view with the store's real scripts: a closed
// gate's dequeues and forwards are answered without reaching Redis, its
// opening lets them through again, a closed gate is read again (one GET)
// once the view's knowledge is gateRecheck old, and an operator's pause is
// never held closed by the view.
func TestGateView(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := redistest.Client(t)
	ns := redistest.Namespace(t)
	st := store.New(rdb, store.Options{Namespace: ns})
	k := st.Keys("default")
	clock := newTestClock()
	now, advance := clock.now, clock.advance
	log := zerolog.Nop()
	v := newGateView(rdb, now, 0, &log)
	v.add("default", k)
	rdb.AddHook(asynqcompat.NewHook(answers{gates: v}, asynqcompat.NewFence(true, asynqcompat.Version, nil)))
	w := &wire{n: map[asynqcompat.Op]int{}}
	rdb.AddHook(w)
	rctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); v.run(rctx) }()
	t.Cleanup(func() { stop(); <-done })
	g := v.byPaused[k.Paused()]
	// wait until the view follows the channel (its first state is "read
	// the key")
	require.Eventually(t, func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		return v.on.Load() && g.seq > 0
	}, 10*time.Second, time.Millisecond)

	// asynq's own scripts, as its rdb runs them after a NOSCRIPT
	dequeue := func() error {
		return rdb.Eval(ctx, asynqcompat.DequeueScript,
			[]string{k.Pending(), k.Paused(), asynqcompat.ActiveKey(k.Queue), asynqcompat.LeaseKey(k.Queue)}, 1, k.AsynqTaskPrefix()).Err()
	}
	forward := func() (any, error) {
		return rdb.Eval(ctx, asynqcompat.ForwardScript, []string{k.Retry(), k.Pending()}, 1, k.AsynqTaskPrefix(), 1, "g").Result()
	}
	local := func(name string) {
		t.Helper()
		before := w.count(asynqcompat.OpDequeue) + w.count(asynqcompat.OpForward)
		require.ErrorIs(t, dequeue(), redis.Nil, name)
		n, err := forward()
		require.NoError(t, err, name)
		require.EqualValues(t, 0, n, name)
		require.Equal(t, before, w.count(asynqcompat.OpDequeue)+w.count(asynqcompat.OpForward), "%s: nothing reached Redis", name)
	}
	remote := func(name string) {
		t.Helper()
		before := w.count(asynqcompat.OpDequeue)
		// asynq's dequeue reaches Redis and finds the queue empty
		require.ErrorIs(t, dequeue(), redis.Nil, name)
		require.Equal(t, before+1, w.count(asynqcompat.OpDequeue), name)
	}
	heard := func(seq uint64) {
		t.Helper()
		require.Eventually(t, func() bool {
			g.mu.Lock()
			defer g.mu.Unlock()
			return g.seq > seq
		}, 10*time.Second, time.Millisecond)
	}
	seq := func() uint64 { g.mu.Lock(); defer g.mu.Unlock(); return g.seq }

	remote("open gate at the start")
	// a cap of one: the first start closes the gate and says so
	s0 := seq()
	p := base.Payload{Instance: "default", Session: "a", MaxRetries: 1}
	ok, err := st.Start(ctx, "a", p, 1, 1, time.Minute)
	require.NoError(t, err)
	require.True(t, ok)
	heard(s0)
	local("closed gate")
	// old knowledge is read again: still closed, still answered here
	advance(gateRecheck + time.Millisecond)
	local("closed gate read again")
	// the finish opens it and says so
	s1 := seq()
	require.NoError(t, st.Finish(ctx, "a", p, store.Finish{State: store.StateCompleted, Outcome: "logged_out", ResultTTL: time.Hour}))
	heard(s1)
	remote("opened gate")

	// a gate whose opening was not heard is found open when read again
	s2 := seq()
	ok, err = st.Start(ctx, "b", base.Payload{Instance: "default", Session: "b", MaxRetries: 1}, 1, 1, time.Minute)
	require.NoError(t, err)
	require.True(t, ok)
	heard(s2)
	require.NoError(t, rdb.Del(ctx, k.Paused()).Err()) // opened, unannounced
	local("not yet read again")
	advance(gateRecheck + time.Millisecond)
	remote("read again: open")

	// an operator's pause is asynq's business: the view lets it through
	require.NoError(t, rdb.Set(ctx, k.Paused(), fmt.Sprint(time.Now().Unix()), 0).Err())
	remote("operator's pause")
	advance(gateRecheck + time.Millisecond)
	remote("operator's pause, later")
}

// TestGateViewInACappedTeardown runs a worker on a server with a cap of one
// and slow logouts, so its queue's gate is closed most of the time, and
// counts asynq's queue scripts before the view (outer hook) and after it
// (what reached Redis). Every logout still runs once, one at a time.
func TestGateViewInACappedTeardown(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	ns := redistest.Namespace(t)
	asked := &wire{n: map[asynqcompat.Op]int{}}
	rdb.AddHook(asked)
	fake := wahafake.NewT(t, wahafake.Options{LogoutLatency: 300 * time.Millisecond})
	w, err := New(Config{Redis: rdb, Namespace: ns, Instances: []Instance{{Name: "default", BaseURL: fake.URL()}},
		Concurrency: 4, InstanceConcurrency: 1, PollInterval: 10 * time.Millisecond, DelayedInterval: 50 * time.Millisecond,
		Registerer: prometheus.NewRegistry(), FastPath: FastPathOn})
	require.NoError(t, err)
	sent := &wire{n: map[asynqcompat.Op]int{}}
	rdb.AddHook(sent)
	sessions := fake.AddSessions("g", 8, wahafake.StatusWorking)
	runToDone(t, rdb, ns, w, sessions)
	w.Shutdown()

	for _, s := range sessions {
		require.Equal(t, 1, fake.LogoutCalls(s), s)
	}
	require.Equal(t, 1, fake.MaxInFlight(), "the cap holds")
	// a dequeue reaches Redis as asynq's or as the take script that does
	// its work
	scripts := func(c *wire) int {
		return c.count(asynqcompat.OpDequeue) + c.count(opTake) + c.count(asynqcompat.OpForward)
	}
	t.Logf("asynq asked %d dequeues and %d forwards; %d dequeues (%d as takes) and %d forwards reached Redis",
		asked.count(asynqcompat.OpDequeue), asked.count(asynqcompat.OpForward), sent.count(asynqcompat.OpDequeue)+sent.count(opTake),
		sent.count(opTake), sent.count(asynqcompat.OpForward))
	// 8 logouts of 300 ms one at a time: about 2.4 s of a closed gate,
	// polled every 10 ms
	require.Greater(t, asked.count(asynqcompat.OpDequeue), 60)
	require.Less(t, 4*scripts(sent), scripts(asked), "the closed gate's polls stay in the worker")
	require.GreaterOrEqual(t, sent.count(asynqcompat.OpDequeue)+sent.count(opTake), len(sessions), "each task was dequeued from Redis")
}

// TestGateViewAwaitsOpening: with every other queue found empty, a dequeue of a
// closed queue waits for its gate to open (then goes to Redis) instead of
// answering "empty" at once; it still answers "empty" when the gate stays
// closed for the whole poll interval, and at once when another queue may
// have work.
func TestGateViewAwaitsOpening(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := redistest.Client(t)
	ns := redistest.Namespace(t)
	st := store.New(rdb, store.Options{Namespace: ns})
	k, other := st.Keys("default"), st.Keys("other")
	log := zerolog.Nop()
	const poll = 300 * time.Millisecond
	v := newGateView(rdb, time.Now, poll, &log)
	v.add("default", k)
	v.add("other", other)
	// a take that only says which queue it was asked to take from
	var tookMu sync.Mutex
	var took []string
	take := func(_ context.Context, instance string, _ *asynqcompat.Dequeue) (string, bool, error) {
		tookMu.Lock()
		took = append(took, instance)
		tookMu.Unlock()
		return "message of " + instance, true, nil
	}
	rdb.AddHook(asynqcompat.NewHook(answers{gates: v, take: take}, asynqcompat.NewFence(true, asynqcompat.Version, nil)))
	rctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); v.run(rctx) }()
	t.Cleanup(func() { stop(); <-done })
	g := v.byPaused[k.Paused()]
	heardClosed := func(g *gate) {
		t.Helper()
		waitGate(t, g, func(g *gate) bool { return g.closed && !g.until.IsZero() })
	}
	// both subscriptions are live (each first takes its gate as "read the
	// key")
	require.Eventually(t, func() bool {
		return v.on.Load() && gateSeq(g) > 0 && gateSeq(v.byPaused[other.Paused()]) > 0
	}, 10*time.Second, time.Millisecond)
	dequeueReply := func() (string, error) {
		return rdb.EvalSha(ctx, asynqcompat.Digest(asynqcompat.DequeueScript),
			[]string{k.Pending(), k.Paused(), asynqcompat.ActiveKey(k.Queue), asynqcompat.LeaseKey(k.Queue)}, int64(1), k.AsynqTaskPrefix()).Text()
	}
	p := startOne(t, st, "default", "a")
	heardClosed(g)

	// the other queue is open and may have work: its task at once, no
	// waiting
	og := v.byPaused[other.Paused()]
	require.False(t, v.closed(ctx, og), "read: open")
	og.found(true)
	got, err := dequeueReply()
	require.NoError(t, err)
	require.Equal(t, "message of other", got)

	// the other queue is empty: the dequeue waits, and the gate opening
	// makes it take from its own queue
	og.found(false)
	finishSoon(st, "a", p)
	got, err = dequeueReply()
	require.NoError(t, err)
	require.Equal(t, "message of default", got, "woken by the opening")

	// both queues gated: the dequeue of one takes from the other when that
	// one opens first
	po := startOne(t, st, "other", "o")
	p2 := startOne(t, st, "default", "a2")
	heardClosed(og)
	heardClosed(g)
	og.found(true) // it had tasks when its cap filled
	finishSoon(st, "o", po)
	got, err = dequeueReply()
	require.NoError(t, err)
	require.Equal(t, "message of other", got, "taken from the queue that opened")
	// wait until the opening of the last finish is heard, so that the next
	// closing is the newest thing the view knows
	s0 := gateSeq(g)
	require.NoError(t, st.Finish(ctx, "a2", p2, store.Finish{State: store.StateCompleted, Outcome: "logged_out", ResultTTL: time.Hour}))
	waitGate(t, g, func(g *gate) bool { return g.seq > s0 && !g.closed })
	og.found(false)
	s1 := gateSeq(g)

	// closed for the whole interval: "empty" after waiting
	startOne(t, st, "default", "b")
	waitGate(t, g, func(g *gate) bool { return g.seq > s1 && g.closed })
	start := time.Now()
	_, err = dequeueReply()
	require.ErrorIs(t, err, redis.Nil)
	require.GreaterOrEqual(t, time.Since(start), poll, "it waited the poll interval")
}

// waitGate waits until cond holds of g's state (read under its lock).
func waitGate(t *testing.T, g *gate, cond func(g *gate) bool) {
	t.Helper()
	require.Eventually(t, func() bool { g.mu.Lock(); defer g.mu.Unlock(); return cond(g) }, 10*time.Second, time.Millisecond)
}

// startOne starts task id of session id on instance with a cap of one,
// which closes the instance's gate.
func startOne(t *testing.T, st *store.Store, instance, id string) base.Payload {
	t.Helper()
	p := base.Payload{Instance: instance, Session: id, MaxRetries: 1}
	ok, err := st.Start(context.Background(), id, p, 1, 1, time.Minute)
	require.NoError(t, err)
	require.True(t, ok)
	return p
}

// finishSoon completes task id a moment from now, opening its gate.
func finishSoon(st *store.Store, id string, p base.Payload) {
	go func() {
		time.Sleep(50 * time.Millisecond)
		_ = st.Finish(context.Background(), id, p, store.Finish{State: store.StateCompleted, Outcome: "logged_out", ResultTTL: time.Hour})
	}()
}

// runToDone enqueues sessions as one batch, starts w and waits until the
// batch is done; it returns the batch as read then. w is shut down when
// the test ends.
func runToDone(t *testing.T, rdb *redis.Client, ns string, w *Worker, sessions []string) *tasks.Batch {
	t.Helper()
	ctx := context.Background()
	cfg := tasks.Config{Redis: rdb, Namespace: ns, Instances: []string{"default"}}
	prod, err := tasks.NewProducer(cfg)
	require.NoError(t, err)
	insp, err := tasks.NewInspector(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = insp.Close() })
	b, err := prod.EnqueueBatch(ctx, tasks.BatchRequest{Sessions: sessions})
	require.NoError(t, err)
	require.NoError(t, w.Start())
	t.Cleanup(w.Shutdown)
	var got *tasks.Batch
	require.Eventually(t, func() bool {
		got, err = insp.Batch(ctx, b.BatchID)
		return err == nil && got.Done
	}, 30*time.Second, 10*time.Millisecond)
	return got
}

func gateSeq(g *gate) uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.seq
}
