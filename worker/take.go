package worker

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sony/gobreaker/v2"
)

// take does asynq's dequeue of instance's queue with wahaq's take script
// (store.Take), which also starts the task it dequeues: the handler's start
// step then finds the start done (takenStarts) and makes no round trip of
// its own. args are asynq's dequeue arguments (its lease end first of
// ARGV); cmd gets what asynq's dequeue would answer: the task's message,
// or redis.Nil when there is nothing to take. It reports false, having
// done nothing, for a dequeue it cannot take (the caller sends asynq's).
//
// It does not take for a server with a rate limit or whose breaker is not
// closed: those steps come before the start (steps.go) and may hand the
// task back unstarted. A breaker that opens between the take and the
// handler lets the taken task make its call, as one already in flight
// (breaker.go).
func (w *Worker) take(ctx context.Context, instance string, args []any, cmd *redis.Cmd) (bool, error) {
	in := w.instances[instance]
	lease, ok := args[7].(int64)
	if in == nil || !ok || in.limit != nil || in.breaker.cb.State() != gobreaker.StateClosed {
		return false, nil
	}
	t, err := w.store.Take(ctx, instance, time.Unix(lease, 0), in.capacity, w.cfg.SlotLease)
	switch {
	case err != nil:
		cmd.SetErr(err)
		return true, err
	case t == nil:
		cmd.SetErr(redis.Nil)
		return true, redis.Nil
	}
	if t.Started {
		takenStarts.put(t.ID, t.Start, w.cfg.Now())
	}
	cmd.SetVal(t.Message)
	return true, nil
}
