// Package tasks holds wahaq's task model and the API that other Go services
// use to enqueue logouts and read their results.
//
// A task is one logout of one session on one WAHA server. Producers enqueue
// tasks with a Producer; workers (package worker) perform them; anyone reads
// them back with an Inspector. Every piece of state lives in Redis, next to
// asynq's own keys and in the same Redis Cluster slot, so each state change is
// one atomic Lua script.
package tasks

import (
	"encoding/json"
	"time"

	"github.com/wahaq/wahaq/internal/store"
)

// TypeLogout is the asynq task type of a logout ("wahaq:logout"), as asynq's
// tools show it.
const TypeLogout = "wahaq:logout"

// TypeDiscover is the asynq task type that lists a server's sessions and
// fills an "all" batch with their logouts ("wahaq:discover"). It runs in the
// worker because only the worker holds WAHA keys.
const TypeDiscover = "wahaq:discover"

// DefaultNamespace prefixes wahaq's queue names: the queue of instance I is
// "wahaq:I".
const DefaultNamespace = "wahaq"

// State is where a task is in its life.
type State string

// The states of wahaq's task model, in life order.
const (
	StateScheduled State = "scheduled"
	StatePending   State = "pending"
	StateActive    State = "active"
	StateRetrying  State = "retrying"
	StateCompleted State = "completed"
	StateDead      State = "dead"
	StateCanceled  State = "canceled"
)

// AllStates lists every state in life order.
var AllStates = []State{StateScheduled, StatePending, StateActive, StateRetrying, StateCompleted, StateDead, StateCanceled}

// Final reports whether no further work will happen on a task in state s
// unless a person requeues it.
func (s State) Final() bool { return s == StateCompleted || s == StateDead || s == StateCanceled }

// Outcome says how a finished task ended.
type Outcome string

// Outcomes of completed tasks.
const (
	// OutcomeLoggedOut: WAHA answered 2xx to the logout.
	OutcomeLoggedOut Outcome = "logged_out"
	// OutcomeNotFound: WAHA said the session does not exist; nothing to do.
	OutcomeNotFound Outcome = "not_found"
)

// Outcomes of dead tasks (in the dead-letter queue).
const (
	// OutcomeAuthFailed: 401/403 from WAHA or the validation service.
	OutcomeAuthFailed Outcome = "auth_failed"
	// OutcomeRejected: WAHA refused the request for good (422 and other 4xx).
	OutcomeRejected Outcome = "rejected"
	// OutcomeRetriesExhausted: transient failures past the retry limit.
	OutcomeRetriesExhausted Outcome = "retries_exhausted"
	// OutcomeArchived: archived in asynq's tools (asynqmon, the asynq CLI)
	// outside wahaq; the reconciler moved it to the dead-letter queue.
	OutcomeArchived Outcome = "archived"
)

// AllOutcomes lists every outcome.
var AllOutcomes = []Outcome{OutcomeLoggedOut, OutcomeNotFound, OutcomeAuthFailed, OutcomeRejected, OutcomeRetriesExhausted, OutcomeArchived}

// State returns the final state a task with this outcome is in.
func (o Outcome) State() State {
	switch o {
	case OutcomeLoggedOut, OutcomeNotFound:
		return StateCompleted
	default:
		return StateDead
	}
}

// Result is what WAHA answered, in the shape the n8n WAHA node returns
// ("success"/"error" and a sentence), so workflows moving over read the same
// fields.
type Result struct {
	// Status is "success" or "error".
	Status string `json:"status"`
	// Message is a sentence for people.
	Message string `json:"message"`
	// HTTPStatus is WAHA's HTTP status code; 0 when no answer came.
	HTTPStatus int `json:"http_status"`
	// SessionAfter is the session as WAHA returned it after the logout, when
	// it returned one.
	SessionAfter json.RawMessage `json:"session_after"`
}

// Task is wahaq's task model, as GET /v1/tasks/{id} and
// `wahaq status --json` return it.
type Task struct {
	ID            string     `json:"id"`
	Instance      string     `json:"instance"`
	Session       string     `json:"session"`
	State         State      `json:"state"`
	Outcome       *Outcome   `json:"outcome"`
	Attempts      int        `json:"attempts"`
	MaxRetries    int        `json:"max_retries"`
	BatchID       *string    `json:"batch_id"`
	EnqueuedAt    time.Time  `json:"enqueued_at"`
	ScheduledFor  *time.Time `json:"scheduled_for"`
	NextAttemptAt *time.Time `json:"next_attempt_at"`
	FinishedAt    *time.Time `json:"finished_at"`
	LastError     *string    `json:"last_error"`
	Result        *Result    `json:"result"`
	// Callback is the completion callback's delivery; absent when the task
	// has no callback URL.
	Callback *Callback `json:"callback,omitempty"`
	// Deduplicated is set on the answer to an enqueue that found a live task
	// for the same session and returned it instead of creating a second one.
	Deduplicated bool `json:"deduplicated,omitempty"`
	// Rescheduled is set with Deduplicated when the live task was scheduled
	// later than the enqueue asked and was pulled forward to its time.
	Rescheduled bool `json:"rescheduled,omitempty"`
	// AttemptsLog is the task's attempt history, oldest first: the last 20,
	// kept across a dead-letter requeue. Never nil.
	AttemptsLog []Attempt `json:"attempts_log"`
	// TraceID is the OpenTelemetry trace the task was enqueued in (32 hex
	// digits), or nil when it was enqueued without tracing.
	TraceID *string `json:"trace_id"`
	// Confirmed is the session.status event from WAHA that confirmed the
	// logout (the session reached SCAN_QR_CODE or STOPPED after it), or nil:
	// not (yet) confirmed, or the instance's events are not received
	// (webhook_hmac_key_env). Callbacks do not wait for it.
	Confirmed *Confirmation `json:"confirmed"`
}

// Attempt is one attempt of a task, as its history keeps it.
type Attempt struct {
	// Attempt is the attempt's number. It counts on across a dead-letter
	// requeue (and a run from asynq's archive), although the retry budget
	// starts again there; Requeued marks the first attempt after one.
	Attempt int `json:"attempt"`
	// Requeued is set on the first attempt after the task ended and was run
	// again (a dead-letter requeue, a run from asynq's archive): the
	// attempt before it ended the task.
	Requeued bool `json:"requeued,omitempty"`
	// StartedAt and FinishedAt bound the attempt.
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
	// Outcome is the task's outcome after this attempt, or "retrying" when
	// another attempt followed.
	Outcome string `json:"outcome"`
	// HTTPStatus is WAHA's HTTP status code; 0 when no answer came.
	HTTPStatus int `json:"http_status"`
	// Error is the attempt's error on one line, shortened to 120 bytes, or
	// nil.
	Error *string `json:"error"`
}

// AttemptRetrying is an Attempt's Outcome when another attempt followed.
const AttemptRetrying = "retrying"

func newAttempts(log []store.Attempt) []Attempt {
	out := make([]Attempt, len(log))
	for i, a := range log {
		out[i] = Attempt{Attempt: a.Number, StartedAt: a.StartedAt, FinishedAt: a.FinishedAt, Outcome: a.Outcome, HTTPStatus: a.HTTPStatus,
			// an attempt after one that ended the task began a new run
			Requeued: i > 0 && log[i-1].Outcome != store.AttemptRetrying}
		if a.Error != "" {
			e := a.Error
			out[i].Error = &e
		}
	}
	return out
}

// newTask turns the engine's record into the public task.
func newTask(r *store.Record) *Task {
	t := &Task{ID: r.ID, Instance: r.Instance, Session: r.Session, State: State(r.State), Attempts: r.Attempts,
		MaxRetries: r.MaxRetries, EnqueuedAt: r.EnqueuedAt, ScheduledFor: r.ScheduledFor, NextAttemptAt: r.NextAttemptAt,
		FinishedAt: r.FinishedAt, AttemptsLog: newAttempts(r.AttemptLog)}
	if r.TraceID != "" {
		id := r.TraceID
		t.TraceID = &id
	}
	if r.BatchID != "" {
		b := r.BatchID
		t.BatchID = &b
	}
	if r.Outcome != "" {
		o := Outcome(r.Outcome)
		t.Outcome = &o
	}
	if r.LastError != "" {
		e := r.LastError
		t.LastError = &e
	}
	t.Callback = newCallback(r.Callback)
	if len(r.Result) > 0 {
		var res Result
		if json.Unmarshal(r.Result, &res) == nil {
			t.Result = &res
		}
	}
	if r.Confirmed != nil {
		t.Confirmed = &Confirmation{Status: r.Confirmed.Status, At: r.Confirmed.At}
	}
	// An event stamped in the millisecond the logout finished follows it
	// (WAHA sends it after its answer; event times are whole milliseconds,
	// finished_at may not be).
	if t.Result != nil && r.SessionStatus != nil && (t.FinishedAt == nil || !r.SessionStatus.At.Before(t.FinishedAt.Truncate(time.Millisecond))) {
		t.Result.SessionAfter = followStatus(t.Result.SessionAfter, r.Session, r.SessionStatus.Status)
	}
	return t
}

// followStatus is a result's session_after with the status a WAHA event
// reported after WAHA's answer (the name kept, or the session's when the
// answer had no session object).
func followStatus(after json.RawMessage, session, status string) json.RawMessage {
	var m map[string]json.RawMessage
	if json.Unmarshal(after, &m) != nil || m == nil {
		m = map[string]json.RawMessage{}
		name, _ := json.Marshal(session)
		m["name"] = name
	}
	st, _ := json.Marshal(status)
	m["status"] = st
	b, err := json.Marshal(m)
	if err != nil {
		return after
	}
	return b
}
