package store_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/store"
)

// TestEventScript records WAHA's session.status events on the logout they
// follow: on the running task through its dedup key, on the finished one
// through the session's LastLogout key; once per event id; never on a task
// that is not running or enqueued after the event, nor on another session.
func TestEventScript(t *testing.T) {
	t.Parallel()
	type step struct {
		// do is "start", "finish" (completed, awaiting events), "finish-plain"
		// (completed, the instance takes no events), "event", "sweep"
		do      string
		id      string        // event id
		session string        // event session ("" = "s")
		status  string        // event status
		at      time.Duration // event time after the enqueue
		advance time.Duration // clock advance before the step
		want    store.EventOutcome
	}
	ev := func(id, status string, at time.Duration, want store.EventOutcome) step {
		return step{do: "event", id: id, status: status, at: at, want: want}
	}
	tests := []struct {
		name      string
		steps     []step
		confirmed string // "STATUS@ms offset" of the record, "" none
		latest    string
		counts    store.ConfirmCounts
		awaiting  int
	}{
		{name: "before the task runs: not its effect",
			steps: []step{ev("e1", "STOPPED", time.Second, store.EventUnmatched)}},
		{name: "while it runs, then after its finish",
			steps: []step{{do: "start"}, ev("e1", "STOPPED", time.Second, store.EventConfirmed),
				ev("e2", "STARTING", 2*time.Second, store.EventRecorded), {do: "finish"},
				ev("e3", "SCAN_QR_CODE", 3*time.Second, store.EventRecorded)},
			confirmed: "STOPPED@1s", latest: "SCAN_QR_CODE@3s", counts: store.ConfirmCounts{Confirmed: 1}},
		{name: "all after the finish: SCAN_QR_CODE confirms and stops the wait",
			steps: []step{{do: "start"}, {do: "finish"}, ev("e1", "STARTING", 2*time.Second, store.EventRecorded),
				ev("e2", "SCAN_QR_CODE", 3*time.Second, store.EventConfirmed)},
			confirmed: "SCAN_QR_CODE@3s", latest: "SCAN_QR_CODE@3s", counts: store.ConfirmCounts{Confirmed: 1}},
		{name: "a duplicate is not recorded again",
			steps: []step{{do: "start"}, {do: "finish"}, ev("e1", "SCAN_QR_CODE", 3*time.Second, store.EventConfirmed),
				ev("e1", "SCAN_QR_CODE", 3*time.Second, store.EventDuplicate), ev("e1", "WORKING", 9*time.Second, store.EventDuplicate)},
			confirmed: "SCAN_QR_CODE@3s", latest: "SCAN_QR_CODE@3s", counts: store.ConfirmCounts{Confirmed: 1}},
		{name: "out of order: the latest status is the newest event's",
			steps: []step{{do: "start"}, {do: "finish"}, ev("e2", "SCAN_QR_CODE", 3*time.Second, store.EventConfirmed),
				ev("e1", "STARTING", 2*time.Second, store.EventRecorded)},
			confirmed: "SCAN_QR_CODE@3s", latest: "SCAN_QR_CODE@3s", counts: store.ConfirmCounts{Confirmed: 1}},
		{name: "an event older than the task",
			steps:    []step{{do: "start"}, {do: "finish"}, ev("e1", "STOPPED", -time.Second, store.EventUnmatched)},
			awaiting: 1},
		{name: "another session's event",
			steps:    []step{{do: "start"}, {do: "finish"}, {do: "event", id: "e1", session: "other", status: "STOPPED", at: time.Second, want: store.EventUnmatched}},
			awaiting: 1},
		{name: "no confirmation within the wait: unconfirmed once",
			steps: []step{{do: "start"}, {do: "finish"}, {do: "sweep", advance: store.ConfirmWait - time.Second},
				{do: "sweep", advance: 2 * time.Second}, {do: "sweep"},
				ev("e1", "SCAN_QR_CODE", store.ConfirmWait+2*time.Second, store.EventConfirmed)},
			confirmed: "SCAN_QR_CODE@10m2s", latest: "SCAN_QR_CODE@10m2s", counts: store.ConfirmCounts{Unconfirmed: 1}},
		{name: "an instance without events: no LastLogout, nothing awaited",
			steps: []step{{do: "start"}, {do: "finish-plain"}, ev("e1", "SCAN_QR_CODE", 3*time.Second, store.EventUnmatched)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			enq := f.now
			p, id := f.enqueue("s", "")
			for i, s := range tc.steps {
				f.now = f.now.Add(s.advance)
				switch s.do {
				case "start":
					f.start(id, p)
				case "finish", "finish-plain":
					require.NoError(t, f.st.Finish(f.ctx, id, p, store.Finish{State: store.StateCompleted, Outcome: "logged_out",
						ResultTTL: time.Hour, AwaitEvents: s.do == "finish"}))
				case "sweep":
					_, err := f.st.SweepUnconfirmed(f.ctx, "default")
					require.NoError(t, err)
				case "event":
					session := s.session
					if session == "" {
						session = "s"
					}
					got, task, err := f.st.RecordEvent(f.ctx, "default", store.SessionEvent{ID: s.id, Session: session, Status: s.status, At: enq.Add(s.at)})
					require.NoError(t, err)
					require.Equal(t, s.want, got, "step %d", i)
					if got >= store.EventRecorded {
						require.Equal(t, id, task)
					}
				}
			}
			r, err := f.st.Get(f.ctx, []string{"default"}, id)
			require.NoError(t, err)
			show := func(s *store.SessionStatus) string {
				if s == nil {
					return ""
				}
				return s.Status + "@" + s.At.Sub(enq).String()
			}
			require.Equal(t, tc.confirmed, show(r.Confirmed))
			require.Equal(t, tc.latest, show(r.SessionStatus))
			counts, err := f.st.Confirmations(f.ctx, []string{"default"})
			require.NoError(t, err)
			require.Equal(t, tc.counts, counts["default"])
			require.Len(t, f.zmembers(f.k.Awaiting()), tc.awaiting)
		})
	}
}

// TestFinishAwaitEventsKeys: the finish of a logout that awaits events
// leaves the task's id in the session's LastLogout key for the result's
// life, and the event ids expire.
func TestFinishAwaitEventsKeys(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	p, id := f.enqueue("s", "")
	f.start(id, p)
	fin := store.Finish{State: store.StateCompleted, Outcome: "logged_out", ResultTTL: time.Hour, AwaitEvents: true}
	require.NoError(t, f.st.Finish(f.ctx, id, p, fin))
	require.NoError(t, f.st.Finish(f.ctx, id, p, fin), "applied twice")
	require.Equal(t, id, f.get(f.k.LastLogout("s")))
	require.InDelta(t, time.Hour.Seconds(), f.pttl(f.k.LastLogout("s")).Seconds(), 5)
	require.Equal(t, []string{id}, f.zmembers(f.k.Awaiting()), "awaited once")
	_, _, err := f.st.RecordEvent(f.ctx, "default", store.SessionEvent{ID: "evt_1", Session: "s", Status: "STARTING", At: f.now})
	require.NoError(t, err)
	require.InDelta(t, store.EventSeenFor.Seconds(), f.pttl(f.k.Event("evt_1")).Seconds(), 5)
}
