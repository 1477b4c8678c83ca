package tasks

import (
	"fmt"

	"github.com/wahaq/wahaq/internal/base"
	"github.com/wahaq/wahaq/wahaclient"
)

// ErrInvalidInput marks input that can never succeed: a bad session or
// instance name, a time in the past, an empty batch. The HTTP API answers it
// with 400 and the CLI with exit code 2; nothing is enqueued.
var ErrInvalidInput = base.ErrInvalidInput

// ErrNotFound is returned for an unknown task or batch id.
var ErrNotFound = base.ErrNotFound

// ErrAlreadyStarted is returned when canceling a task that has started.
var ErrAlreadyStarted = base.ErrAlreadyStarted

// ErrTooManyCallbacks is returned by Enqueue when the session's live task,
// which the request would join, holds MaxCallbacks callback URLs already.
// Nothing was changed: the HTTP API answers 409.
var ErrTooManyCallbacks = base.ErrTooManyCallbacks

// ErrTooManySubscriptions is returned by Subscribe when the namespace holds
// MaxSubscriptions already. The HTTP API answers 409.
var ErrTooManySubscriptions = base.ErrTooManySubscriptions

// ErrUnknownInstance is returned for an instance name the configuration does
// not know. It wraps ErrInvalidInput.
var ErrUnknownInstance = fmt.Errorf("%w: unknown instance", ErrInvalidInput)

// MaxSessionNameLen is WAHA's limit on session names (54), as
// wahaclient.MaxSessionNameLen.
const MaxSessionNameLen = wahaclient.MaxSessionNameLen

// MaxInstanceNameLen bounds instance names (64); they become part of queue
// names.
const MaxInstanceNameLen = 64

// ValidateSessionName checks a session name against WAHA's own rule
// (wahaclient.ValidateSessionName: ^[a-zA-Z0-9_-]+$, at most 54
// characters). The error wraps ErrInvalidInput.
func ValidateSessionName(name string) error { return base.ValidateSessionName(name) }

// ValidateInstanceName checks an instance (WAHA server) name: letters,
// digits, '_' and '-', at most 64 characters. The error wraps
// ErrInvalidInput.
func ValidateInstanceName(name string) error { return base.ValidateInstanceName(name) }

// ValidateTaskID checks the form of a task id before it is looked up.
func ValidateTaskID(id string) error { return base.ValidateID("task id", id) }

// ValidateBatchID checks the form of a batch id before it is looked up.
func ValidateBatchID(id string) error { return base.ValidateID("batch id", id) }
