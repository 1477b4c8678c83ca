package worker

import (
	"context"
	"time"
)

// pauses is how a poll loop backs off: from First, doubling, up to Max.
type pauses struct{ First, Max time.Duration }

// redisPause paces the loops that wait for Redis to answer again (a
// Sentinel failover, a restart).
var redisPause = pauses{First: 50 * time.Millisecond, Max: time.Second}

// slotPause paces the wait for a free concurrency slot: short, because
// slots free up in milliseconds.
var slotPause = pauses{First: 2 * time.Millisecond, Max: 50 * time.Millisecond}

// poll calls try until it reports true, pausing between calls as p says. It
// gives up when ctx ends or, when until is not zero, once now() is past
// until, and reports whether try succeeded. It is the one wait loop of the
// worker.
func poll(ctx context.Context, now func() time.Time, until time.Time, p pauses, try func() bool) bool {
	for pause := p.First; ; pause = min(pause*2, p.Max) {
		if try() {
			return true
		}
		if ctx.Err() != nil || (!until.IsZero() && now().After(until)) {
			return false
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
	}
}
