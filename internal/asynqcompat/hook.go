package asynqcompat

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrNoTask is an Answerer's "nothing to dequeue": asynq's dequeue then
// hears that the queue is empty.
var ErrNoTask = errors.New("asynqcompat: no task to dequeue")

// Answerer is the worker's side of the Hook: what it answers for asynq's
// dequeue and forward of its queues. The Hook asks it only while Running.
type Answerer interface {
	// Running reports whether the Hook answers at all; while it does not,
	// every command goes to Redis untouched.
	Running() bool
	// Dequeue answers asynq's dequeue d: the message of the task asynq
	// gets, or ErrNoTask. d.Send runs asynq's own dequeue instead.
	Dequeue(ctx context.Context, d *Dequeue) (string, error)
	// SkipForward reports whether asynq's forward of the due scheduled or
	// retrying tasks of the queue whose paused key is paused may be
	// answered "none moved" without a round trip.
	SkipForward(ctx context.Context, paused string) bool
}

// Observer is what an Answerer may also implement to hear of the calls the
// Hook sends to Redis: the worker's queue view learns from them.
type Observer interface {
	// Forwarded is told how many tasks asynq's forward of the queue whose
	// paused key is paused moved (it was sent, not skipped).
	Forwarded(ctx context.Context, paused string, moved int64)
	// Wrote is told, after Redis answered it, of every other script the
	// Hook let through (args as go-redis holds them): asynq's retry,
	// requeue and recoverer's writes among them.
	Wrote(ctx context.Context, args []any)
}

// Dequeue is asynq's dequeue of one queue, as the Hook hands it to the
// Answerer.
type Dequeue struct {
	// Paused is the queue's paused key: the worker knows its queues by it.
	Paused string
	// LeaseEnd is when asynq's lease of the task it dequeues ends; zero
	// when the Hook could not read it (then only Send applies).
	LeaseEnd time.Time
	send     func() (string, error)
}

// Send runs asynq's own dequeue and returns its answer.
func (d *Dequeue) Send() (string, error) { return d.send() }

// Hook is the go-redis hook the worker adds to its Redis client, which
// asynq's server shares: it answers three of asynq's queue scripts
// (QueueScript) without a round trip when the worker already knows the
// answer, or with wahaq's own work.
//   - A dequeue of one of the worker's queues: whatever the Answerer says
//     (the worker's gate view holds the queue closed: "queue empty"; its
//     take script dequeues and starts a block of tasks; the rest of a
//     block answer the next dequeues of that queue).
//   - A forward of such a queue's due retries and scheduled tasks: "none
//     moved" when the Answerer says so (its gate is closed; they move once
//     it opens).
//   - The done of a task whose finish did asynq's done already (Settled):
//     "OK".
//
// Everything else, everything while the Answerer is not running, and
// everything once its Fence is off goes to Redis untouched.
type Hook struct {
	a       Answerer
	fence   *Fence
	settled Handoff[struct{}]
}

// NewHook returns the Hook answering for a while fence f is on.
func NewHook(a Answerer, f *Fence) *Hook { return &Hook{a: a, fence: f} }

// Fence returns the hook's fence.
func (h *Hook) Fence() *Fence { return h.fence }

// Settled records that the worker's finish did asynq's done of task id
// (DoneLua): asynq's own done of it, right after, is answered "OK".
func (h *Hook) Settled(id string, now time.Time) { h.settled.Put(id, struct{}{}, now) }

// PendingSettled is how many settled tasks still wait for asynq's done.
func (h *Hook) PendingSettled() int { return h.settled.Len() }

// Sweep drops what asynq never asked for within HandoffKeep: the settled
// tasks whose done it skipped (their lease ran out), the taken starts no
// handler got.
func (h *Hook) Sweep(now time.Time) {
	h.settled.Sweep(now)
	SweepStarts(now)
}

// DialHook implements redis.Hook.
func (h *Hook) DialHook(next redis.DialHook) redis.DialHook { return next }

// ProcessPipelineHook implements redis.Hook; asynq runs these scripts
// outside pipelines.
func (h *Hook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// ProcessHook implements redis.Hook.
func (h *Hook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if !h.fence.On() || !h.a.Running() {
			return next(ctx, cmd)
		}
		rc, ok := cmd.(*redis.Cmd)
		if !ok {
			return next(ctx, cmd)
		}
		c := QueueScript(cmd.Args())
		if c.Op != OpNone && !h.fence.known(c) {
			return next(ctx, cmd)
		}
		switch c.Op {
		case OpDone:
			if _, done := h.settled.Take(c.TaskID); done {
				rc.SetVal("OK")
				return nil
			}
		case OpDequeue:
			d := &Dequeue{Paused: c.Paused, send: func() (string, error) {
				err := next(ctx, cmd)
				if errors.Is(err, redis.Nil) {
					return "", ErrNoTask
				}
				if err != nil {
					return "", err
				}
				return rc.Text()
			}}
			if c.LeaseEnd != 0 {
				d.LeaseEnd = time.Unix(c.LeaseEnd, 0)
			}
			msg, err := h.a.Dequeue(ctx, d)
			switch {
			case errors.Is(err, ErrNoTask):
				// asynq's dequeue answers an empty queue with redis.Nil
				cmd.SetErr(redis.Nil)
				return redis.Nil
			case err != nil:
				cmd.SetErr(err)
				return err
			}
			rc.SetErr(nil)
			rc.SetVal(msg)
			return nil
		case OpForward:
			if h.a.SkipForward(ctx, c.Paused) {
				rc.SetVal(int64(0))
				return nil
			}
			err := next(ctx, cmd)
			if o, ok := h.a.(Observer); ok && err == nil {
				if moved, ierr := rc.Int64(); ierr == nil {
					o.Forwarded(ctx, c.Paused, moved)
				}
			}
			return err
		case OpNone:
			if o, ok := h.a.(Observer); ok {
				err := next(ctx, cmd)
				o.Wrote(ctx, cmd.Args()) // after the write: a look then sees it
				return err
			}
		}
		return next(ctx, cmd)
	}
}

// QuietLog reports whether one of asynq's log lines says nothing true
// about wahaq's tasks. asynq warns "Retry exhausted" whenever a handler
// returns SkipRetry; wahaq returns it only for tasks it dead-lettered on
// purpose (its own retry limit, auth failures), which it logs itself with
// the reason. asynq offers no hook for this but its logger.
func QuietLog(msg string) bool { return strings.HasPrefix(msg, "Retry exhausted for task") }
