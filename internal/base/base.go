// Package base is what every layer of wahaq agrees on: the asynq task types,
// the payloads they carry, the rules for names and ids, and the sentinel
// errors. It is a leaf: the engine (internal/store), the public face (tasks)
// and the worker all import it, and it imports none of them, so the engine
// never needs the public package (asynq's internal/base plays the same part).
package base

import (
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/wahaq/wahaq/wahaclient"
)

// TypeLogout is the asynq task type of a logout.
const TypeLogout = "wahaq:logout"

// TypeDiscover is the asynq task type that lists a server's sessions and
// fills an "all" batch with their logouts.
const TypeDiscover = "wahaq:discover"

// ErrInvalidInput marks input that can never succeed. tasks exports it as
// tasks.ErrInvalidInput.
var ErrInvalidInput = errors.New("invalid input")

// ErrBatchClosed: a batch takes no more tasks (it was closed, by its
// producer or as abandoned). The engine returns it; tasks exports it as
// tasks.ErrBatchClosed.
var ErrBatchClosed = errors.New("batch is closed")

// ErrNotFound is returned for an unknown task or batch id. tasks exports it.
var ErrNotFound = errors.New("not found")

// ErrAlreadyStarted is returned when canceling a task that has started.
// tasks exports it.
var ErrAlreadyStarted = errors.New("task has already started")

// ErrBatchDone is returned when pausing a batch whose tasks are all final:
// there is nothing left to hold. tasks exports it.
var ErrBatchDone = errors.New("batch is done")

// ErrTooManyCallbacks is returned for a request whose callback URL would
// join a live task that holds as many callbacks as a task may. tasks
// exports it.
var ErrTooManyCallbacks = errors.New("the task holds as many callbacks as a task may")

// ErrTooManySubscriptions is returned for a subscription beyond the limit
// of a namespace. tasks exports it.
var ErrTooManySubscriptions = errors.New("too many subscriptions")

// MaxSessionNameLen is WAHA's limit on session names; wahaclient owns the
// rule.
const MaxSessionNameLen = wahaclient.MaxSessionNameLen

// MaxInstanceNameLen bounds instance names; they become part of queue names.
const MaxInstanceNameLen = 64

// MaxIDLen bounds task and batch ids (wahaq's are 36-character UUIDs).
const MaxIDLen = 64

// NewID returns a new task or batch id.
func NewID() string { return uuid.NewString() }

// nameOK is the rule shared by instance names and ids: letters, digits, '_'
// and '-', 1 to max characters. It is WAHA's session name rule too, which
// wahaclient.ValidateSessionName checks.
func nameOK(s string, max int) bool {
	if len(s) == 0 || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// ValidateSessionName checks a session name with wahaclient's rule (WAHA's
// own: ^[a-zA-Z0-9_-]+$, at most 54 characters). The error wraps
// ErrInvalidInput.
func ValidateSessionName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: session name is empty", ErrInvalidInput)
	}
	if wahaclient.ValidateSessionName(name) != nil {
		return fmt.Errorf("%w: session name %q is not valid: WAHA allows letters, digits, '_' and '-', at most %d characters",
			ErrInvalidInput, truncate(name, 80), MaxSessionNameLen)
	}
	return nil
}

// ValidateInstanceName checks an instance (WAHA server) name: letters,
// digits, '_' and '-', at most 64 characters. The error wraps
// ErrInvalidInput.
func ValidateInstanceName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: instance name is empty", ErrInvalidInput)
	}
	if !nameOK(name, MaxInstanceNameLen) {
		return fmt.Errorf("%w: instance name %q is not valid: use letters, digits, '_' and '-', at most %d characters",
			ErrInvalidInput, truncate(name, 80), MaxInstanceNameLen)
	}
	return nil
}

// ValidateID checks the form of a task or batch id ("task id", "batch id"
// in what) before it is looked up.
func ValidateID(what, id string) error {
	if !nameOK(id, MaxIDLen) {
		return fmt.Errorf("%w: %s %q is not valid", ErrInvalidInput, what, truncate(id, 80))
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
