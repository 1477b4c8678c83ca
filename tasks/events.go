package tasks

import (
	"context"
	"fmt"
	"time"

	"github.com/wahaq/wahaq/internal/store"
)

// Confirmation is the session.status event from WAHA that confirmed a
// logout: the session reached SCAN_QR_CODE or STOPPED after it.
type Confirmation struct {
	// Status is SCAN_QR_CODE or STOPPED.
	Status string `json:"status"`
	// At is the event's timestamp (WAHA's clock).
	At time.Time `json:"at"`
}

// SessionEvent is one of WAHA's session.status webhook events, as a
// receiver read it from a body whose signature it verified.
type SessionEvent struct {
	// ID is the event's id ("evt_…"): an id seen before is a duplicate.
	ID string
	// Session is the session's name.
	Session string
	// Status is the session's new status.
	Status string
	// At is the event's timestamp.
	At time.Time
}

// EventResult is what RecordEvent did with an event.
type EventResult struct {
	// Duplicate: the event's id was seen before, nothing was recorded.
	Duplicate bool `json:"duplicate"`
	// TaskID is the logout the event was recorded on, "" when none
	// (no logout of the session is running or recently completed).
	TaskID string `json:"task_id,omitempty"`
	// Confirmed: the event confirmed that logout.
	Confirmed bool `json:"confirmed"`
}

// RecordEvent records a session.status event of instance on the logout of
// its session it follows: the running one, or else the latest completed one
// that awaits events. The task then shows Confirmed (its first
// SCAN_QR_CODE or STOPPED) and its result's session_after follows the
// newest status. Each event id is recorded once, however often it is
// delivered. The caller verifies the event's signature first.
func (i *Inspector) RecordEvent(ctx context.Context, instance string, ev SessionEvent) (EventResult, error) {
	if instance == "" {
		return EventResult{}, fmt.Errorf("%w %q", ErrUnknownInstance, instance)
	}
	if _, err := i.pick(instance); err != nil {
		return EventResult{}, err
	}
	if ev.ID == "" || ev.Status == "" {
		return EventResult{}, fmt.Errorf("%w: an event needs an id and a status", ErrInvalidInput)
	}
	if err := ValidateSessionName(ev.Session); err != nil {
		return EventResult{}, err
	}
	out, id, err := i.store.RecordEvent(ctx, instance, store.SessionEvent{ID: ev.ID, Session: ev.Session, Status: ev.Status, At: ev.At})
	if err != nil {
		return EventResult{}, err
	}
	return EventResult{Duplicate: out == store.EventDuplicate, TaskID: id, Confirmed: out == store.EventConfirmed}, nil
}

// ConfirmCounts are an instance's logouts confirmed by WAHA's events, and
// those whose wait for one ended without it (store.ConfirmWait, 10 min).
type ConfirmCounts struct {
	// Confirmed counts completed logouts a session.status event confirmed.
	Confirmed int64 `json:"confirmed"`
	// Unconfirmed counts those whose wait ended without one.
	Unconfirmed int64 `json:"unconfirmed"`
}

// Confirmations returns the confirmation counters of instance ("" for
// every instance).
func (i *Inspector) Confirmations(ctx context.Context, instance string) (map[string]ConfirmCounts, error) {
	insts, err := i.pick(instance)
	if err != nil {
		return nil, err
	}
	c, err := i.store.Confirmations(ctx, insts)
	if err != nil {
		return nil, err
	}
	out := make(map[string]ConfirmCounts, len(c))
	for in, v := range c {
		out[in] = ConfirmCounts{Confirmed: v.Confirmed, Unconfirmed: v.Unconfirmed}
	}
	return out, nil
}
