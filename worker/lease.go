package worker

import (
	"context"
	"sync"
	"time"
)

// DefaultSlotLease is how long a concurrency slot stays taken without being
// renewed. A worker renews the slots of its running calls every third of
// it, so a worker killed mid-call frees its slots within one lease.
const DefaultSlotLease = 10 * time.Second

// inflight is the set of tasks this process holds a slot for, by instance.
// One ticker renews them all (one script call per instance, not one per
// task), and a forced stop frees them.
type inflight struct {
	mu   sync.Mutex
	byIn map[string]map[string]struct{}
}

func (f *inflight) add(instance, id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.byIn == nil {
		f.byIn = map[string]map[string]struct{}{}
	}
	ids := f.byIn[instance]
	if ids == nil {
		ids = map[string]struct{}{}
		f.byIn[instance] = ids
	}
	ids[id] = struct{}{}
}

func (f *inflight) remove(instance, id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.byIn[instance], id)
}

// snapshot returns the held ids by instance.
func (f *inflight) snapshot() map[string][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string][]string, len(f.byIn))
	for in, ids := range f.byIn {
		if len(ids) == 0 {
			continue
		}
		l := make([]string, 0, len(ids))
		for id := range ids {
			l = append(l, id)
		}
		out[in] = l
	}
	return out
}

// renewLoop renews the leases of the slots this process holds until ctx is
// done.
func (w *Worker) renewLoop(ctx context.Context) {
	t := time.NewTicker(w.cfg.SlotLease / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		w.hook.Sweep(w.cfg.Now())
		w.giveBackAhead(aheadKeep)
		for in, ids := range w.held.snapshot() {
			rctx, cancel := context.WithTimeout(ctx, w.cfg.SlotLease/3)
			n, err := w.store.RenewSlots(rctx, in, ids, w.cfg.SlotLease)
			cancel()
			if err != nil {
				w.log.Warn().Err(err).Str("instance", in).Msg("cannot renew concurrency slots")
			} else if n < len(ids) {
				// A lease ran out before this renewal (Redis was away for
				// longer than a lease): the cap may be exceeded until those
				// calls end.
				w.log.Warn().Str("instance", in).Int("lost", len(ids)-n).Msg("concurrency slot leases ran out while their calls ran")
			}
		}
	}
}

// releaseHeld frees every slot this process still holds (a forced stop
// handed the tasks back to asynq).
func (w *Worker) releaseHeld() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for in, ids := range w.held.snapshot() {
		if _, err := w.store.ReleaseSlots(ctx, in, ids); err != nil {
			w.log.Warn().Err(err).Str("instance", in).Msg("cannot free concurrency slots; their leases will")
		}
		for _, id := range ids {
			w.held.remove(in, id)
		}
	}
}
