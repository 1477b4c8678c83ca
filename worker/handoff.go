package worker

import (
	"sync"
	"time"

	"github.com/wahaq/wahaq/internal/store"
)

// handoff passes what one step in Redis already did, by task id, from the
// client hook (hook.go) to the handler or back, so that the next step
// needs no round trip of its own:
//   - settled: the tasks whose Finish also did asynq's done
//     (store.Finish.Settle); asynq's own done, right after the handler
//     returns, is answered from it.
//   - takenStarts: the starts done by the take script that replaced asynq's
//     dequeue (store.TakeN); the handler's start step uses them instead of
//     running the start script.
//
// An entry may never be taken (asynq skips its done when the task's lease
// ran out; a dequeued task may be handed back before its handler runs), so
// entries older than handoffKeep are dropped by sweep. An id not found
// costs what it always did.
type handoff[T any] struct {
	mu sync.Mutex
	m  map[string]handoffEntry[T]
}

type handoffEntry[T any] struct {
	v  T
	at time.Time
}

// handoffKeep is how long an unclaimed entry is kept: far longer than the
// moment between the two steps.
const handoffKeep = time.Minute

func (h *handoff[T]) put(id string, v T, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.m == nil {
		h.m = map[string]handoffEntry[T]{}
	}
	h.m[id] = handoffEntry[T]{v: v, at: now}
}

// take removes id's entry and returns it.
func (h *handoff[T]) take(id string) (T, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	e, ok := h.m[id]
	delete(h.m, id)
	return e.v, ok
}

// sweep drops the entries put before now - handoffKeep.
func (h *handoff[T]) sweep(now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for id, e := range h.m {
		if now.Sub(e.at) > handoffKeep {
			delete(h.m, id)
		}
	}
}

// takenStarts is process-wide: workers that share a Redis client share its
// hooks, and the first running worker's hook may take for another's asynq
// server; task ids are unique, so the handler that gets the task finds its
// start here whichever hook took it.
var takenStarts handoff[store.StartResult]
