package worker

import (
	"sync"
	"time"
)

// settledSet holds the tasks whose Finish also did asynq's done
// (store.Finish.Settle): a completed logout then costs one round trip
// fewer, since asynq's own done, right after the handler returns, is
// answered by the client hook (hook.go) from this set.
//
// asynq skips its done when the task's lease ran out meanwhile, so an id
// may never be taken: entries older than settledKeep are dropped by sweep.
// An id not found here goes to Redis as it always did.
type settledSet struct {
	mu  sync.Mutex
	ids map[string]time.Time
}

// settledKeep is how long an unclaimed entry is kept: far longer than the
// moment between a handler's return and asynq's done.
const settledKeep = time.Minute

func (s *settledSet) add(id string, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ids == nil {
		s.ids = map[string]time.Time{}
	}
	s.ids[id] = now
}

// take removes id and reports whether it was there.
func (s *settledSet) take(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.ids[id]
	delete(s.ids, id)
	return ok
}

// sweep drops the entries added before now - settledKeep.
func (s *settledSet) sweep(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, at := range s.ids {
		if now.Sub(at) > settledKeep {
			delete(s.ids, id)
		}
	}
}
