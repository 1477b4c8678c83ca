package worker

import (
	"context"

	"github.com/wahaq/wahaq/internal/asynqcompat"
)

// answers is the worker's side of its client hook (asynqcompat.Hook): what
// it answers for asynq's dequeue and forward of its queues.
//   - A dequeue of a queue the gate view holds closed: "queue empty"
//     (gate.go); when every other queue is closed or was found empty,
//     after waiting up to the poll interval for a gate to open (then it
//     takes from the queue that opened).
//   - A dequeue of an open queue: the take script (take.go), which
//     dequeues and starts the task in one step, up to a block of them; the
//     rest of a block answer the next dequeues of that queue with no round
//     trip.
//   - A forward of a closed queue's due retries and scheduled tasks: none
//     moved; they move once the gate opens.
type answers struct {
	gates *gateView
	// take, when set, replaces asynq's dequeue of an open queue (take.go).
	take func(ctx context.Context, instance string, d *asynqcompat.Dequeue) (string, bool, error)
	// ahead holds the rest of the take's blocks (take.go).
	ahead *takeAhead
	// queues answers the polls of queues known to hold nothing
	// (queueview.go).
	queues *queueView
}

// Running implements asynqcompat.Answerer: the hook answers while the gate
// view runs.
func (h answers) Running() bool { return h.gates.on.Load() }

// Dequeue implements asynqcompat.Answerer.
func (h answers) Dequeue(ctx context.Context, d *asynqcompat.Dequeue) (string, error) {
	g := h.gates.byPaused[d.Paused]
	if g == nil {
		return d.Send()
	}
	if h.ahead != nil {
		// the rest of a block taken from this queue
		if t, ok := h.ahead.pop(g.instance); ok {
			return t.Message, nil
		}
	}
	if h.gates.closed(ctx, g) {
		o := h.gates.awaitOpen(ctx, g)
		if o == nil {
			return "", asynqcompat.ErrNoTask
		}
		if o != g {
			// another queue opened while this one waited: asynq takes a
			// task of any queue from any of its dequeue calls (it goes
			// by the message's queue), but only the take script can
			// dequeue from o here
			msg, done, err := h.tryTake(ctx, o, d)
			if !done {
				return "", asynqcompat.ErrNoTask
			}
			o.found(err == nil)
			return msg, err
		}
	}
	q := h.queues.queueOfGate(g)
	if h.queues.idle(q) {
		// known empty: wait for work to be announced, and take it at once
		// (asynq would poll again only after its sleep)
		o := h.queues.await(ctx, q)
		if o == nil || h.gates.closed(ctx, o.gate) {
			g.found(false)
			return "", asynqcompat.ErrNoTask
		}
		if o != q {
			epoch := o.epochOf()
			msg, done, err := h.tryTake(ctx, o.gate, d)
			if !done {
				g.found(false)
				return "", asynqcompat.ErrNoTask
			}
			o.gate.found(err == nil)
			h.queues.dequeued(o, epoch, err)
			return msg, err
		}
	}
	epoch := q.epochOf()
	msg, done, err := h.tryTake(ctx, g, d)
	if !done {
		msg, err = d.Send()
	}
	g.found(err == nil)
	h.queues.dequeued(q, epoch, err)
	return msg, err
}

// SkipForward implements asynqcompat.Answerer: a closed queue's, or one
// the queue view knows has nothing due.
func (h answers) SkipForward(ctx context.Context, paused string) bool {
	g := h.gates.byPaused[paused]
	return g != nil && (h.gates.closed(ctx, g) || h.queues.nothingDue(h.queues.queueOfGate(g)))
}

// Forwarded implements asynqcompat.Observer: tasks a forward moved are
// announced to the other workers (queueview.go).
func (h answers) Forwarded(ctx context.Context, paused string, moved int64) {
	if g := h.gates.byPaused[paused]; g != nil {
		h.queues.forwarded(ctx, h.queues.queueOfGate(g), moved)
	}
}

// Wrote implements asynqcompat.Observer: asynq's own writes to a queue
// make the queue view look at it again; the hook's own calls (the take)
// do not.
func (h answers) Wrote(ctx context.Context, args []any) {
	if !isOwnCall(ctx) {
		h.queues.touched(args)
	}
}

// tryTake answers asynq's dequeue d with a task of g's queue by the take
// script (take.go); it reports false, having done nothing, when the take
// does not apply.
func (h answers) tryTake(ctx context.Context, g *gate, d *asynqcompat.Dequeue) (string, bool, error) {
	if h.take == nil || d.LeaseEnd.IsZero() {
		return "", false, nil
	}
	return h.take(withOwnCall(ctx), g.instance, d)
}
