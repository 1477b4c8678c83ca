package faults

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/wahaq/wahaq/tasks"
)

// TestThreeWorkersShareOneCap runs three worker processes against one WAHA
// server with a concurrency cap of 4 and 300 ms logouts, and a 200-session
// batch: the server must never see more than 4 logouts at once, all 200 must
// end logged_out after one attempt each (waiting for a slot spends no
// retry), and the batch must read done with the right counts.
func TestThreeWorkersShareOneCap(t *testing.T) {
	const n, capacity = 200, 4
	r := newRig(t, "--sessions", strconv.Itoa(n), "--latency", "300ms")
	env := r.env.With("WAHAQ_INSTANCE_CONCURRENCY", strconv.Itoa(capacity), "WAHAQ_CONCURRENCY", "10")
	for i := 1; i <= 3; i++ {
		StartWorker(t, r.bins, r.dir, fmt.Sprintf("worker-%d", i), env)
	}
	insp := r.inspector(r.ns)
	sessions := sessionNames("session", n)
	start := time.Now()
	id := r.enqueue(r.ns, sessions)
	b := waitBatch(t, insp, id, 3*time.Minute, isDone)
	took := time.Since(start)
	stats := r.fake.Stats()
	recs := records(t, r.rdb, r.ns)

	retried := 0
	for _, rc := range recs {
		if rc.Attempts != 1 {
			retried++
		}
	}
	dups, _ := stats.Duplicates()
	Report(t, Figures{Scenario: "three_workers_cap", Tasks: n, Lost: lostCount(recs, sessions, stats.LogoutCalls, string(tasks.OutcomeLoggedOut)),
		Duplicates: dups, Dead: int(b.Counts[tasks.StateDead]), Recover: 0,
		Extra: fmt.Sprintf("max_in_flight=%d concurrent_same_session=%d cap=%d took=%.1fs ideal=%.1fs", stats.MaxInFlight, stats.ConcurrentSameSession, capacity, took.Seconds(),
			(time.Duration((n+capacity-1)/capacity) * 300 * time.Millisecond).Seconds())})

	if stats.MaxInFlight > capacity {
		t.Errorf("WAHA saw %d logouts in flight at once; the cap is %d", stats.MaxInFlight, capacity)
	}
	// Two logouts of one session at once crashed a real WAHA: three workers
	// must never send them, even when a task is delivered twice.
	if stats.ConcurrentSameSession != 0 {
		t.Errorf("WAHA saw %d logouts overlapping another logout of the same session", stats.ConcurrentSameSession)
	}
	if stats.MaxInFlight < 2 {
		t.Errorf("WAHA never saw more than %d logout at once: the workers did not run in parallel", stats.MaxInFlight)
	}
	if b.Total != n || b.Counts[tasks.StateCompleted] != n || b.Outcomes[tasks.OutcomeLoggedOut] != n || b.Counts[tasks.StateDead] != 0 {
		t.Errorf("batch: %s", describe(b))
	}
	if retried != 0 {
		t.Errorf("%d tasks took more than one attempt: waiting for a slot must not spend a retry", retried)
	}
	if len(recs) != n {
		t.Errorf("%d task records, want %d", len(recs), n)
	}
	if lost := lostCount(recs, sessions, stats.LogoutCalls, string(tasks.OutcomeLoggedOut)); lost != 0 {
		t.Errorf("%d sessions not logged out", lost)
	}
	if dups != 0 {
		t.Errorf("%d duplicate WAHA calls", dups)
	}
}
