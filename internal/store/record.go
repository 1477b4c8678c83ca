package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wahaq/wahaq/internal/base"
)

// Field names of a task record (the hash at Keys.Record). Times are Unix
// milliseconds. The scripts write the same names.
const (
	FieldState    = "state"
	FieldInstance = "instance" // only in records created by the start script
	FieldSession  = "session"
	FieldBatch    = "batch"
	FieldAttempts = "attempts"
	FieldMax      = "max" // retry limit
	FieldEnqueued = "enq"
	FieldSched    = "sched"
	FieldNext     = "next"
	FieldFinished = "fin"
	FieldOutcome  = "outcome"
	FieldError    = "err"
	FieldResult   = "result" // JSON of tasks.Result
	FieldTrace    = "trace"  // trace id, when the task was enqueued in a trace
	// FieldAttemptBase is the number of attempts made before the task's
	// latest fresh start (a dead-letter requeue, a run from asynq's
	// archive, a revival by the reconciler); absent when 0. Attempt
	// numbers in FieldAttempts and the history count on from it, while
	// the retry budget starts again (attemptlog.go).
	FieldAttemptBase = "abase"
)

// The states a record's FieldState holds; tasks exports them as tasks.State.
const (
	StateScheduled = "scheduled"
	StatePending   = "pending"
	StateActive    = "active"
	StateRetrying  = "retrying"
	StateCompleted = "completed"
	StateDead      = "dead"
	StateCanceled  = "canceled"
)

// States lists every state in life order.
var States = []string{StateScheduled, StatePending, StateActive, StateRetrying, StateCompleted, StateDead, StateCanceled}

// Record is a task record as read from Redis. tasks turns it into a
// tasks.Task.
type Record struct {
	ID, Instance, Session, BatchID string
	State                          string
	// Outcome is "" until the task is final.
	Outcome              string
	Attempts, MaxRetries int
	EnqueuedAt           time.Time
	// ScheduledFor, NextAttemptAt and FinishedAt are nil when unset.
	ScheduledFor, NextAttemptAt, FinishedAt *time.Time
	LastError                               string
	// Result is WAHA's answer as JSON (a tasks.Result), or nil.
	Result []byte
	// Attempts is the attempt history, oldest first (the last MaxAttemptLog).
	AttemptLog []Attempt
	// TraceID is the trace the task was enqueued in (32 hex digits), or "".
	TraceID string
	// Callback is the task's completion callback, or nil.
	Callback *Callback
	// Confirmed is the session.status event that confirmed the logout
	// (SCAN_QR_CODE or STOPPED), or nil (events.go).
	Confirmed *SessionStatus
	// SessionStatus is the session's latest status from WAHA's events, or
	// nil.
	SessionStatus *SessionStatus
}

// Get returns the record with the given id from any of the instances, or an
// error wrapping base.ErrNotFound.
func (s *Store) Get(ctx context.Context, instances []string, id string) (*Record, error) {
	_, r, err := s.find(ctx, instances, id)
	return r, err
}

func (s *Store) find(ctx context.Context, instances []string, id string) (string, *Record, error) {
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(instances))
	for i, inst := range instances {
		cmds[i] = pipe.HGetAll(ctx, s.Keys(inst).Record(id))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return "", nil, fmt.Errorf("get task %s: %w", id, err)
	}
	for i, c := range cmds {
		if m := c.Val(); len(m) > 0 {
			return instances[i], s.decodeRecord(id, instances[i], m), nil
		}
	}
	return "", nil, fmt.Errorf("task %s: %w", id, base.ErrNotFound)
}

func msTime(v string) *time.Time {
	if v == "" {
		return nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n == 0 {
		return nil
	}
	t := time.UnixMilli(n).UTC()
	return &t
}

func (s *Store) decodeRecord(id, instance string, m map[string]string) *Record {
	r := &Record{ID: id, Instance: instance, Session: m[FieldSession], State: m[FieldState], BatchID: m[FieldBatch],
		Outcome: m[FieldOutcome], LastError: m[FieldError], TraceID: m[FieldTrace]}
	r.Attempts = RecordAttempts(m)
	r.MaxRetries, _ = strconv.Atoi(m[FieldMax])
	if e := msTime(m[FieldEnqueued]); e != nil {
		r.EnqueuedAt = *e
	}
	enq, _ := strconv.ParseInt(m[FieldEnqueued], 10, 64)
	r.AttemptLog = decodeAttemptLog(m[FieldLog], enq)
	r.ScheduledFor = msTime(m[FieldSched])
	r.NextAttemptAt = msTime(m[FieldNext])
	r.FinishedAt = recordFinished(m)
	r.Callback = decodeCallback(m)
	r.Confirmed, r.SessionStatus = decodeEvents(m[FieldEvents])
	if v := m[FieldResult]; v != "" {
		r.Result = []byte(v)
	}
	// asynq moves a scheduled task to pending on its own; the record learns
	// of it only when the task starts.
	if r.State == StateScheduled && r.ScheduledFor != nil && !r.ScheduledFor.After(s.now()) {
		r.State = StatePending
	}
	return r
}
