package worker

import (
	"context"

	"github.com/redis/go-redis/v9"

	"github.com/wahaq/wahaq/internal/asynqwire"
)

// asynqHook is the go-redis hook the worker adds to its Redis client, which
// asynq's server shares: it answers three of asynq's queue scripts
// (asynqwire.QueueScript) without a round trip when the worker already
// knows the answer, and does a fourth's work with wahaq's own.
//   - A dequeue of a queue the gate view holds closed: redis.Nil, "queue
//     empty" (gate.go); when every other queue is closed or was found
//     empty, after waiting up to the poll interval for a gate to open (then
//     it takes from the queue that opened).
//   - A dequeue of an open queue: the take script (take.go), which
//     dequeues and starts the task in one step, up to a block of them; the
//     rest of a block answer the next dequeues of that queue with no round
//     trip.
//   - A forward of such a queue's due retries and scheduled tasks: 0, none
//     moved; they move once the gate opens.
//   - The done of a task whose Finish settled asynq's side already: "OK"
//     (handoff.go).
//
// Everything else, and everything while the worker is not running, goes to
// Redis untouched.
type asynqHook struct {
	gates   *gateView
	settled *handoff[struct{}]
	// take, when set, replaces asynq's dequeue of an open queue (take.go).
	take func(ctx context.Context, instance string, args []any, cmd *redis.Cmd) (bool, error)
	// ahead holds the rest of the take's blocks (take.go).
	ahead *takeAhead
}

// DialHook implements redis.Hook.
func (h asynqHook) DialHook(next redis.DialHook) redis.DialHook { return next }

// ProcessPipelineHook implements redis.Hook; asynq runs these scripts
// outside pipelines.
func (h asynqHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// ProcessHook implements redis.Hook.
func (h asynqHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if !h.gates.on.Load() {
			return next(ctx, cmd)
		}
		c := asynqwire.QueueScript(cmd.Args())
		switch c.Op {
		case asynqwire.OpDone:
			if rc, ok := cmd.(*redis.Cmd); ok {
				if _, done := h.settled.take(c.TaskID); done {
					rc.SetVal("OK")
					return nil
				}
			}
		case asynqwire.OpDequeue:
			g := h.gates.byPaused[c.Paused]
			if g == nil {
				break
			}
			if rc, ok := cmd.(*redis.Cmd); ok && h.ahead != nil {
				// the rest of a block taken from this queue
				if t, ok := h.ahead.pop(g.instance); ok {
					rc.SetVal(t.Message)
					return nil
				}
			}
			if h.gates.closed(ctx, g) {
				o := h.gates.awaitOpen(ctx, g)
				if o == nil {
					cmd.SetErr(redis.Nil)
					return redis.Nil
				}
				if o != g {
					// another queue opened while this one waited: asynq takes a
					// task of any queue from any of its dequeue calls (it goes
					// by the message's queue), but only the take script can
					// dequeue from o here
					done, err := h.tryTake(ctx, o, cmd)
					if !done {
						cmd.SetErr(redis.Nil)
						return redis.Nil
					}
					o.found(err == nil)
					return err
				}
			}
			done, err := h.tryTake(ctx, g, cmd)
			if !done {
				err = next(ctx, cmd)
			}
			g.found(err == nil)
			return err
		case asynqwire.OpForward:
			if rc, ok := cmd.(*redis.Cmd); ok {
				if g := h.gates.byPaused[c.Paused]; g != nil && h.gates.closed(ctx, g) {
					rc.SetVal(int64(0))
					return nil
				}
			}
		}
		return next(ctx, cmd)
	}
}

// tryTake answers asynq's dequeue cmd with a task of g's queue by the take
// script (take.go); it reports false, having done nothing, when the take
// does not apply.
func (h asynqHook) tryTake(ctx context.Context, g *gate, cmd redis.Cmder) (bool, error) {
	rc, ok := cmd.(*redis.Cmd)
	if !ok || h.take == nil {
		return false, nil
	}
	return h.take(ctx, g.instance, cmd.Args(), rc)
}
