package tasks

import (
	"errors"
	"fmt"
)

// ErrInvalidInput marks input that can never succeed: a bad session or
// instance name, a time in the past, an empty batch. The HTTP API answers it
// with 400 and the CLI with exit code 2; nothing is enqueued.
var ErrInvalidInput = errors.New("invalid input")

// ErrNotFound is returned for an unknown task or batch id.
var ErrNotFound = errors.New("not found")

// ErrAlreadyStarted is returned when canceling a task that has started.
var ErrAlreadyStarted = errors.New("task has already started")

// ErrUnknownInstance is returned for an instance name the configuration does
// not know. It wraps ErrInvalidInput.
var ErrUnknownInstance = fmt.Errorf("%w: unknown instance", ErrInvalidInput)

// MaxSessionNameLen is WAHA's limit on session names.
const MaxSessionNameLen = 54

// MaxInstanceNameLen bounds instance names; they become part of queue names.
const MaxInstanceNameLen = 64

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

// ValidateSessionName checks a session name against WAHA's own rule:
// ^[a-zA-Z0-9_-]+$, at most 54 characters.
func ValidateSessionName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: session name is empty", ErrInvalidInput)
	}
	if !nameOK(name, MaxSessionNameLen) {
		return fmt.Errorf("%w: session name %q is not valid: WAHA allows letters, digits, '_' and '-', at most %d characters",
			ErrInvalidInput, truncate(name, 80), MaxSessionNameLen)
	}
	return nil
}

// ValidateInstanceName checks an instance (WAHA server) name: letters,
// digits, '_' and '-', at most 64 characters.
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

func validateID(what, id string) error {
	if !nameOK(id, 64) {
		return fmt.Errorf("%w: %s %q is not valid", ErrInvalidInput, what, truncate(id, 80))
	}
	return nil
}

// ValidateTaskID checks the form of a task id before it is looked up.
func ValidateTaskID(id string) error { return validateID("task id", id) }

// ValidateBatchID checks the form of a batch id before it is looked up.
func ValidateBatchID(id string) error { return validateID("batch id", id) }

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
