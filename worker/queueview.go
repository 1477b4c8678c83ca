package worker

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/wahaq/wahaq/internal/asynqcompat"
	"github.com/wahaq/wahaq/internal/store"
)

// Bounds of the queue view's knowledge.
const (
	// idleRecheck is how long the view trusts what it knows of a queue
	// before it looks again (±20 %, so the looks spread): the bound on how
	// late a worker hears of tasks written behind wahaq's back (asynq's
	// CLI, asynqmon) whose announcement it never gets.
	idleRecheck = 5 * time.Second
	// idleLooksPerSecond bounds the rechecks a second of a large fleet: past
	// idleLooksPerSecond·idleRecheck queues the recheck interval grows with
	// the fleet instead of the Redis load.
	idleLooksPerSecond = 50
	// idleWait is the longest asynq's poll of an idle worker is held in
	// the hook waiting for work to be announced.
	idleWait = 100 * time.Millisecond
	// viewTick is how often the view looks for knowledge grown old.
	viewTick = 250 * time.Millisecond
	// lookBudget is the most queues one look reads (3 reads each): with
	// viewTick, at most 200 queues a second.
	lookBudget = 50
)

// queueView is this worker's knowledge of what its queues hold, so that
// the client hook (hook.go) answers asynq's polls of a queue known to be
// empty, and its forwards of a queue with nothing due, without a round
// trip.
//
// Why: asynq finds new work by polling. Its processor runs the dequeue
// script of every queue every PollInterval (10 ms here, for a quick
// pickup) and its forwarder two scripts per queue every DelayedInterval
// (250 ms), so an idle worker with 100 servers made ~26,000 Redis
// commands a second, 70 times bare asynq's (which polls every second):
// `wahaq bench --only idle`.
//
// What it knows of a queue comes from a look (store.LookQueues: the
// pending list's length, the earliest scheduled or retrying task's due
// time) and from asynq's own dequeues (one that finds nothing proves the
// list empty). It forgets, and looks again, when:
//   - wahaq announces work on the queue's gate channel (store.WorkMarker:
//     enqueue, requeue, give-back, a stopping worker's hand-back, a
//     forward that moved tasks);
//   - a script through this worker's client writes to the queue (asynq's
//     retry of a failed task, its recoverer, wahaq's finish);
//   - the queue's gate opens (a take that found the cap full dequeued
//     nothing and left its tasks pending);
//   - the view's subscription to the queue's channel is made anew;
//   - idleRecheck has passed (writes made behind wahaq's back).
//
// A write that another process makes and announces is seen in one
// notification; pickup stays as quick as polling (the hook holds an idle
// poll until an announcement and then takes at once). Only the rechecks
// grow with the fleet, and their rate is capped at idleLooksPerSecond.
type queueView struct {
	st  *store.Store
	now func() time.Time
	log *zerolog.Logger
	// queues are the worker's queues by instance, fixed by New.
	queues map[string]*queueState
	// byPrefix finds a queue by the prefix of its asynq keys.
	byPrefix map[string]*queueState
	// busy counts the queues not known to be empty.
	busy atomic.Int64
	// wake, when not nil, is closed at the next forget.
	wakeMu sync.Mutex
	wake   chan struct{}
	woken  *queueState
}

// queueState is one queue as the view knows it.
type queueState struct {
	instance string
	gate     *gate
	// active and taskPrefix are asynq's active list and task key prefix
	// of the queue (touched).
	active, taskPrefix string

	mu sync.Mutex
	// epoch is bumped by every forget: an answer read before one is older
	// than what it forgot.
	epoch uint64
	// known: a look's answer holds; run looks again after until.
	known bool
	until time.Time
	// emptyKnown: empty holds, learned by the look or a dequeue since
	// the last forget; empty: the pending list was found empty.
	emptyKnown, empty bool
	// due is the earliest scheduled or retrying task's due second (Unix), 0
	// for none.
	due int64
}

func newQueueView(st *store.Store, now func() time.Time, log *zerolog.Logger) *queueView {
	return &queueView{st: st, now: now, log: log, queues: map[string]*queueState{}, byPrefix: map[string]*queueState{}}
}

// add makes the view keep the queue of instance, whose keys are k and
// whose gate is g.
func (v *queueView) add(instance string, k store.Keys, g *gate) *queueState {
	q := &queueState{instance: instance, gate: g, active: asynqcompat.ActiveKey(k.Queue), taskPrefix: k.AsynqTaskPrefix()}
	v.queues[instance] = q
	v.byPrefix[asynqcompat.QueuePrefix(k.Queue)] = q
	v.busy.Add(1)
	return q
}

// recheck is how long a look's answer is trusted, spread.
func (v *queueView) recheck() time.Duration {
	d := max(idleRecheck, time.Duration(len(v.queues))*time.Second/idleLooksPerSecond)
	return d - d/5 + rand.N(2*d/5+1)
}

// setEmpty records whether q's pending list is empty, under q.mu.
func (v *queueView) setEmpty(q *queueState, empty bool) {
	if q.empty == empty {
		return
	}
	q.empty = empty
	if empty {
		v.busy.Add(-1)
	} else {
		v.busy.Add(1)
	}
}

// forget drops what the view knows of q: its polls go to Redis until a
// dequeue finds it empty, its forwards until run has looked at it again.
func (v *queueView) forget(q *queueState) {
	q.mu.Lock()
	q.epoch++
	q.known, q.emptyKnown = false, false
	v.setEmpty(q, false)
	q.mu.Unlock()
	v.wakeMu.Lock()
	if v.wake != nil {
		close(v.wake)
		v.wake = nil
	}
	v.woken = q
	v.wakeMu.Unlock()
}

// forgetAll forgets every queue (a restart of the view).
func (v *queueView) forgetAll() {
	for _, q := range v.queues {
		v.forget(q)
	}
}

// idle reports whether a dequeue of q can be answered "empty" here. An
// answer past its recheck time still holds until run has looked again
// (within viewTick): rechecks are run's, never the polls'.
func (v *queueView) idle(q *queueState) bool {
	if q == nil {
		return false
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.emptyKnown && q.empty
}

// await holds an idle poll of q while every queue is known to be empty,
// for up to idleWait, and returns the queue that work was announced on
// meanwhile (q itself, or another), if any. asynq asks for each of its queues in turn; once one is
// not known empty, no ask waits, so the round reaches it at once.
func (v *queueView) await(ctx context.Context, q *queueState) *queueState {
	v.wakeMu.Lock()
	if v.wake == nil {
		v.wake = make(chan struct{})
	}
	wake := v.wake
	v.wakeMu.Unlock()
	if v.busy.Load() > 0 {
		return nil
	}
	t := time.NewTimer(idleWait)
	defer t.Stop()
	select {
	case <-wake:
		v.wakeMu.Lock()
		defer v.wakeMu.Unlock()
		return v.woken
	case <-t.C:
	case <-ctx.Done():
	}
	return nil
}

// epochOf is q's epoch, read before a call whose answer is recorded with
// dequeued.
func (q *queueState) epochOf() uint64 {
	if q == nil {
		return 0
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.epoch
}

// dequeued records what a dequeue of q sent to Redis at epoch answered: a
// task (err nil), nothing (asynqcompat.ErrNoTask), or an error, which tells
// nothing. Nothing is "empty" unless a write came since (the epoch moved);
// a dequeue that found the gate closed (the take, asynq's own) left the
// tasks pending, and the gate's opening makes the view forget that.
func (v *queueView) dequeued(q *queueState, epoch uint64, err error) {
	if q == nil {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	switch {
	case err == nil:
		v.setEmpty(q, false)
	case errors.Is(err, asynqcompat.ErrNoTask) && q.epoch == epoch:
		q.emptyKnown = true
		v.setEmpty(q, true)
	}
}

// nothingDue reports whether a forward of q can be answered "none moved"
// here: the view knows the earliest due task, and it is not due yet.
func (v *queueView) nothingDue(q *queueState) bool {
	if q == nil {
		return false
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.known && (q.due == 0 || v.now().Unix() < q.due)
}

// forwarded records a forward of q sent to Redis: tasks it moved are
// pending now (announced to the other workers), and a forward that moved
// none while the view thought some due makes it look again.
func (v *queueView) forwarded(ctx context.Context, q *queueState, moved int64) {
	if q == nil {
		return
	}
	if moved > 0 {
		v.forget(q)
		_ = v.st.AnnounceWork(ctx, q.instance) // a hint (store.AnnounceWork)
		return
	}
	q.mu.Lock()
	stale := q.known && q.due != 0 && v.now().Unix() >= q.due
	q.mu.Unlock()
	if stale {
		v.forget(q)
	}
}

// touched forgets the queue whose asynq keys a script of args (sent to
// Redis already) wrote to, when it is one of the worker's: asynq's retry of
// a failed task, its requeue, its recoverer's; wahaq's own scripts that add
// work announce it.
func (v *queueView) touched(args []any) {
	if v == nil || len(args) < 4 {
		return
	}
	if name, _ := args[0].(string); name != "evalsha" && name != "eval" {
		return
	}
	if n, _ := args[2].(int); n < 1 {
		return
	}
	key, _ := args[3].(string)
	i := strings.Index(key, "}:")
	if i < 0 {
		return
	}
	// asynq's scripts that may add work start with the task's hash (retry,
	// archive, its Client's enqueue) or the active list (requeue); its
	// janitor's and recoverer's reads start with other keys
	if q := v.byPrefix[key[:i+2]]; q != nil && (key == q.active || strings.HasPrefix(key, q.taskPrefix)) {
		v.forget(q)
	}
}

// run keeps the view until ctx is done: every viewTick it looks, in one
// pipeline, at the queues it does not know (forgotten) and then at those
// whose knowledge is older than their recheck, at most lookBudget of them.
//
// A forgotten queue is not looked at at once: its polls go to Redis until
// the look, and a dequeue that finds nothing marks it empty again, so only
// its forwards wait for the look (they go to Redis meanwhile, as without
// the view). The budget bounds what a busy worker, whose queues are
// forgotten at every gate change, spends on looks.
func (v *queueView) run(ctx context.Context) {
	v.forgetAll() // what a previous run knew is old
	t := time.NewTicker(viewTick)
	defer t.Stop()
	for {
		v.lookStale(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// lookStale looks at the queues the view does not know, or knows too long.
func (v *queueView) lookStale(ctx context.Context) {
	now := v.now()
	var unknown, old []*queueState
	for _, q := range v.queues {
		q.mu.Lock()
		switch {
		case !q.known:
			unknown = append(unknown, q)
		case !now.Before(q.until):
			old = append(old, q)
		}
		q.mu.Unlock()
	}
	qs := append(unknown, old...)
	qs = qs[:min(len(qs), lookBudget)]
	if len(qs) == 0 {
		return
	}
	epochs := make([]uint64, len(qs))
	names := make([]string, len(qs))
	for i, q := range qs {
		epochs[i], names[i] = q.epochOf(), q.instance
	}
	looks, ok, err := v.st.LookQueues(ctx, names)
	if err != nil && ctx.Err() == nil {
		v.log.Debug().Err(err).Int("queues", len(names)).Msg("cannot look at the queues; their polls go to Redis")
	}
	now = v.now()
	for i, q := range qs {
		if !ok[i] {
			continue
		}
		q.mu.Lock()
		if q.epoch == epochs[i] {
			q.known, q.until, q.due = true, now.Add(v.recheck()), looks[i].Due
			q.emptyKnown = true
			v.setEmpty(q, looks[i].Pending == 0)
		}
		q.mu.Unlock()
	}
}

// queueOfGate returns the view's queue of g.
func (v *queueView) queueOfGate(g *gate) *queueState {
	if v == nil {
		return nil // a hook without a queue view (tests of the gate view)
	}
	return v.queues[g.instance]
}

// forgetInstance forgets the queue of instance.
func (v *queueView) forgetInstance(instance string) {
	if q := v.queues[instance]; q != nil {
		v.forget(q)
	}
}

// ownCall marks the context of the calls the hook makes itself (the take
// script): they are not writes of others for touched to forget.
type ownCall struct{}

func withOwnCall(ctx context.Context) context.Context { return context.WithValue(ctx, ownCall{}, true) }

func isOwnCall(ctx context.Context) bool { return ctx.Value(ownCall{}) != nil }
