package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/wahaq/wahaq/internal/store"
	"github.com/wahaq/wahaq/tasks"
	"github.com/wahaq/wahaq/wahaclient"
)

// class is what one attempt's answer means for the task.
type class int

const (
	classDone      class = iota // completed: logged out, or nothing to log out
	classAuth                   // dead at once: 401/403
	classRejected               // dead at once: refused for good
	classTransient              // retry, unless retries are exhausted
)

// classify maps an attempt's error to its class and outcome. It is the one
// place where errors are classified; wahaclient has already reduced WAHA's
// answers to its sentinels.
func classify(err error) (class, tasks.Outcome) {
	switch {
	case err == nil:
		return classDone, tasks.OutcomeLoggedOut
	case errors.Is(err, wahaclient.ErrSessionNotFound):
		return classDone, tasks.OutcomeNotFound
	case errors.Is(err, wahaclient.ErrUnauthorized), errors.Is(err, wahaclient.ErrForbidden):
		// A 403 is a scoped key (WAHA 2026.4.3+) without the control action
		// or for other sessions; the error's message says so.
		return classAuth, tasks.OutcomeAuthFailed
	case errors.Is(err, wahaclient.ErrSessionBusy):
		// WAHA's 500 "async-lock timed out in queue <session>": the session's
		// operations queued past its lock's timeout under load; it frees.
		return classTransient, tasks.OutcomeRetriesExhausted
	case errors.Is(err, wahaclient.ErrRejected), errors.Is(err, wahaclient.ErrInvalidSessionName),
		errors.Is(err, tasks.ErrInvalidInput):
		// ErrRejected includes WAHA's 501: the session's engine does not
		// implement the call, whatever the number of attempts.
		return classRejected, tasks.OutcomeRejected
	default:
		// ErrTransient, ErrRouteMissing on both routes, context deadlines,
		// anything unknown: another attempt may succeed.
		return classTransient, tasks.OutcomeRetriesExhausted
	}
}

// verdict is what the policy decided about one attempt: the record to write.
type verdict struct {
	// State is StateRetrying, StateCompleted or StateDead.
	State tasks.State
	// Outcome is set for completed and dead tasks.
	Outcome tasks.Outcome
	// LastError is the error of this attempt, if any. Never a secret.
	LastError string
	// Result is WAHA's answer, if any.
	Result *tasks.Result
	// NextAttempt is when a retrying task runs again.
	NextAttempt time.Time
	// ResultTTL is how long a completed record is kept.
	ResultTTL time.Duration
}

// finish is the verdict in the engine's terms.
func (v verdict) finish() (store.Finish, error) {
	f := store.Finish{State: string(v.State), Outcome: string(v.Outcome), LastError: v.LastError,
		NextAttempt: v.NextAttempt, ResultTTL: v.ResultTTL}
	if v.Result != nil {
		b, err := json.Marshal(v.Result)
		if err != nil {
			return f, fmt.Errorf("encode result: %w", err)
		}
		f.Result = b
	}
	return f, nil
}

// decide turns an attempt's answer into the record to write and the delay
// before the next attempt (for retrying tasks).
func (w *Worker) decide(a *attempt, res *wahaclient.LogoutResult, err error) (verdict, time.Duration) {
	cls, outcome := classify(err)
	f := verdict{ResultTTL: w.cfg.ResultTTL, Result: resultOf(a, res, err, outcome)}
	if err != nil {
		f.LastError = errorText(err)
	}
	switch cls {
	case classDone:
		f.State, f.Outcome = tasks.StateCompleted, outcome
	case classAuth, classRejected:
		f.State, f.Outcome = tasks.StateDead, outcome
	case classTransient:
		if a.Number > a.Payload.MaxRetries {
			f.State, f.Outcome = tasks.StateDead, tasks.OutcomeRetriesExhausted
			break
		}
		// dueTime rounds up to asynq's whole seconds, so it never runs early.
		delay := w.transientDelay(a.Number, err)
		now := w.cfg.Now()
		f.State, f.NextAttempt, f.Result = tasks.StateRetrying, dueTime(now.Add(delay)), nil
		return f, f.NextAttempt.Sub(now)
	}
	return f, 0
}

// transientDelay is the wait before attempt n+1 after a transient failure
// err of attempt n: the backoff, or the Retry-After the server (or its
// proxy) sent if that is later, up to the configured maximum.
func (w *Worker) transientDelay(n int, err error) time.Duration {
	delay := backoff(n, w.cfg.RetryBase, w.cfg.RetryMax)
	if ra, ok := wahaclient.RetryAfter(err); ok && ra > 0 {
		delay = min(max(ra, delay), w.cfg.RetryMax)
	}
	return delay
}

// errorText is the error as stored and shown. wahaclient never puts the key
// in an error; the context errors are spelled for people.
func errorText(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timed out: " + err.Error()
	case errors.Is(err, context.Canceled):
		return "canceled (worker shutting down): " + err.Error()
	}
	return err.Error()
}

// resultOf builds the n8n-shaped result of a final attempt.
func resultOf(a *attempt, res *wahaclient.LogoutResult, err error, o tasks.Outcome) *tasks.Result {
	r := &tasks.Result{Status: "error"}
	if err != nil {
		// Declared here: &apiErr escapes, and a success should not pay for it.
		var apiErr *wahaclient.APIError
		if errors.As(err, &apiErr) {
			r.HTTPStatus = apiErr.StatusCode
		}
	}
	switch {
	case err == nil:
		r.Status, r.Message = "success", "Session logged out successfully"
		if res != nil {
			r.HTTPStatus = res.HTTPStatus
			if res.Session != nil {
				r.SessionAfter = sessionJSON(res.Session)
			}
		}
	case o == tasks.OutcomeNotFound:
		// The goal, a session that is not logged in, holds: report success
		// so end-of-automation workflows do not alarm on it.
		r.Status, r.Message = "success", fmt.Sprintf("Session %s not found on WAHA: nothing to log out", a.Payload.Session)
	default:
		r.Message = errorText(err)
	}
	return r
}
