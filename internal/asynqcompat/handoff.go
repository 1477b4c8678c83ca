package asynqcompat

import (
	"sync"
	"time"
)

// Handoff passes what one step in Redis already did, by task id, from the
// client hook to the handler or back, so that the next step needs no
// round trip of its own:
//   - the Hook's settled tasks: those whose finish also did asynq's done
//     (DoneLua); asynq's own done, right after the handler returns, is
//     answered from it.
//   - the taken starts (PutStart): the starts done by the take script that
//     replaced asynq's dequeue; the handler's start step uses them instead
//     of running the start script.
//
// An entry may never be taken (asynq skips its done when the task's lease
// ran out; a dequeued task may be handed back before its handler runs), so
// entries older than HandoffKeep are dropped by Sweep. An id not found
// costs what it always did. The zero Handoff is empty and ready to use.
type Handoff[T any] struct {
	mu sync.Mutex
	m  map[string]handoffEntry[T]
}

type handoffEntry[T any] struct {
	v  T
	at time.Time
}

// HandoffKeep is how long an unclaimed entry is kept: far longer than the
// moment between the two steps.
const HandoffKeep = time.Minute

// Put hands v over under task id.
func (h *Handoff[T]) Put(id string, v T, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.m == nil {
		h.m = map[string]handoffEntry[T]{}
	}
	h.m[id] = handoffEntry[T]{v: v, at: now}
}

// Take removes id's entry and returns it.
func (h *Handoff[T]) Take(id string) (T, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	e, ok := h.m[id]
	delete(h.m, id)
	return e.v, ok
}

// Len is the number of entries not taken yet.
func (h *Handoff[T]) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.m)
}

// Has reports whether id has an entry, without taking it.
func (h *Handoff[T]) Has(id string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, ok := h.m[id]
	return ok
}

// Sweep drops the entries put before now - HandoffKeep.
func (h *Handoff[T]) Sweep(now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for id, e := range h.m {
		if now.Sub(e.at) > HandoffKeep {
			delete(h.m, id)
		}
	}
}

// takenStarts is process-wide: workers that share a Redis client share its
// hooks, and the first running worker's hook may take for another's asynq
// server; task ids are unique, so the handler that gets the task finds its
// start here whichever hook took it. Its values are the worker's
// (store.StartResult); this package does not look at them.
var takenStarts Handoff[any]

// PutStart hands the start the take of task id did to its handler.
func PutStart(id string, start any, now time.Time) { takenStarts.Put(id, start, now) }

// TakeStart removes and returns the start the take of task id did, if
// any.
func TakeStart(id string) (any, bool) { return takenStarts.Take(id) }

// HasStart reports whether a take's start of task id waits for its
// handler.
func HasStart(id string) bool { return takenStarts.Has(id) }

// SweepStarts drops the starts no handler took within HandoffKeep.
func SweepStarts(now time.Time) { takenStarts.Sweep(now) }
