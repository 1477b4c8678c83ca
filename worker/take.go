package worker

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/wahaq/wahaq/internal/asynqcompat"
	"github.com/wahaq/wahaq/internal/store"
)

// take does asynq's dequeue of instance's queue with wahaq's take script
// (store.TakeN), which also starts the tasks it dequeues: the handler's
// start step then finds the start done (asynqcompat.PutStart) and makes no round
// trip of its own. It takes a block: the first task answers this dequeue,
// the rest wait in w.ahead for asynq's next dequeues of the queue (the
// hook answers them). It returns what asynq's dequeue d would answer: the
// task's message, or asynqcompat.ErrNoTask when there is nothing to take.
// It reports false, having done nothing, for a dequeue it cannot take
// (the caller sends asynq's).
//
// It does not take for a server with a rate limit or whose breaker is not
// closed: those steps come before the start (steps.go) and may hand the
// task back unstarted. A breaker that opens between the take and the
// handler lets the taken task make its call, as one already in flight
// (breaker.go).
func (w *Worker) take(ctx context.Context, instance string, d *asynqcompat.Dequeue) (string, bool, error) {
	in := w.instances[instance]
	if in == nil || in.limit != nil || in.breaker.cb.State() != gobreaker.StateClosed {
		return "", false, nil
	}
	n := 1
	if !w.stopping.Load() {
		// one task for this ask, and one for each handler free beyond it
		// (asynq asks again at once for each), but no more than this
		// queue's share of them among the open queues: a block taken for
		// one queue makes the others wait for handlers, and asynq's random
		// order, which a block replaces, is what keeps a big teardown from
		// slowing a small one
		free := w.cfg.Concurrency - int(w.running.Load())
		n = min(w.cfg.TakeBlock, free/w.gates.open())
	}
	ts, err := w.store.TakeN(ctx, instance, d.LeaseEnd, in.capacity, w.cfg.SlotLease, n)
	switch {
	case err != nil:
		return "", true, err
	case len(ts) == 0:
		return "", true, asynqcompat.ErrNoTask
	}
	now := w.cfg.Now()
	for _, t := range ts {
		if t.Started {
			asynqcompat.PutStart(t.ID, t.Start, now)
		}
	}
	w.ahead.push(instance, ts[1:], now)
	return ts[0].Message, true, nil
}

// aheadKeep is how long a block's task may wait for asynq's ask before it
// is given back (renewLoop looks every third of the slot lease). A handler
// is free for each when it is taken, so it waits for no call to end, only
// for asynq to ask for its queue; a task still waiting after this waits
// because those handlers went to other queues' tasks (a client shared by
// workers, a count that was behind), and must not hold its slot, or
// asynq's lease, while it does.
const aheadKeep = time.Second

// takeAhead holds the tasks a block take dequeued beyond the one asynq
// asked for, in the order they were taken.
type takeAhead struct {
	mu sync.Mutex
	q  []aheadTask
}

type aheadTask struct {
	store.Taken
	instance string
	at       time.Time
}

func (a *takeAhead) push(instance string, ts []store.Taken, now time.Time) {
	if len(ts) == 0 {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, t := range ts {
		a.q = append(a.q, aheadTask{Taken: t, instance: instance, at: now})
	}
}

// pop removes and returns the first task taken from instance's queue.
func (a *takeAhead) pop(instance string) (aheadTask, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i, t := range a.q {
		if t.instance == instance {
			a.q = slices.Delete(a.q, i, i+1)
			return t, true
		}
	}
	return aheadTask{}, false
}

// olderThan removes and returns the tasks taken before cutoff; all of
// them for the zero time.
func (a *takeAhead) olderThan(cutoff time.Time) []aheadTask {
	a.mu.Lock()
	defer a.mu.Unlock()
	i := 0
	for i < len(a.q) && (cutoff.IsZero() || a.q[i].at.Before(cutoff)) {
		i++
	}
	out := append([]aheadTask(nil), a.q[:i]...)
	clear(a.q[:i])
	a.q = a.q[i:]
	return out
}

// giveBackAhead gives the block tasks waiting longer than keep (all of
// them for 0) back to their queues (store.GiveBack).
func (w *Worker) giveBackAhead(keep time.Duration) {
	var cutoff time.Time
	if keep > 0 {
		cutoff = w.cfg.Now().Add(-keep)
	}
	old := w.ahead.olderThan(cutoff)
	if len(old) == 0 {
		return
	}
	byIn := map[string][]store.Taken{}
	for _, t := range old {
		asynqcompat.TakeStart(t.ID) // its start is undone: a later delivery starts again
		byIn[t.instance] = append(byIn[t.instance], t.Taken)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for in, ts := range byIn {
		n, err := w.store.GiveBack(ctx, in, ts)
		if err != nil {
			// their asynq leases and slot leases run out, and asynq runs
			// them again, as for a worker that died
			w.log.Warn().Err(err).Str("instance", in).Int("tasks", len(ts)).Msg("cannot give back tasks taken ahead")
			continue
		}
		w.log.Debug().Str("instance", in).Int("tasks", n).Msg("tasks taken ahead given back")
	}
}
