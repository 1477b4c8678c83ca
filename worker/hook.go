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
	msg, done, err := h.tryTake(ctx, g, d)
	if !done {
		msg, err = d.Send()
	}
	g.found(err == nil)
	return msg, err
}

// SkipForward implements asynqcompat.Answerer.
func (h answers) SkipForward(ctx context.Context, paused string) bool {
	g := h.gates.byPaused[paused]
	return g != nil && h.gates.closed(ctx, g)
}

// tryTake answers asynq's dequeue d with a task of g's queue by the take
// script (take.go); it reports false, having done nothing, when the take
// does not apply.
func (h answers) tryTake(ctx context.Context, g *gate, d *asynqcompat.Dequeue) (string, bool, error) {
	if h.take == nil || d.LeaseEnd.IsZero() {
		return "", false, nil
	}
	return h.take(ctx, g.instance, d)
}
