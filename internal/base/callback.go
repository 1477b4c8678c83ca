package base

import (
	"encoding/json"
	"fmt"
)

// TypeCallback is the asynq task type through which wahaq before the
// delivery set (internal/store/delivery.go) delivered completion callbacks
// ("wahaq:callback"); a worker moves such tasks into the delivery set.
const TypeCallback = "wahaq:callback"

// Events a subscription may name: a task became final (completed, dead or
// canceled), a batch became done.
const (
	EventTaskFinal = "task.final"
	EventBatchDone = "batch.done"
)

// Kinds of callback: what finished.
const (
	CallbackTask  = "task"
	CallbackBatch = "batch"
)

// CallbackPayload is the asynq payload of a legacy callback task. It names what
// finished; the URL and the body are read from the record at delivery time.
type CallbackPayload struct {
	// Kind is CallbackTask or CallbackBatch.
	Kind string `json:"kind"`
	// ID is the task or batch id.
	ID string `json:"id"`
	// Instance is the instance whose queue holds the record.
	Instance string `json:"instance"`
}

// Encode returns the payload as JSON.
func (p CallbackPayload) Encode() []byte {
	b, _ := json.Marshal(p) // three strings cannot fail
	return b
}

// DecodeCallbackPayload parses a callback payload; a bad one wraps
// ErrInvalidInput.
func DecodeCallbackPayload(b []byte) (CallbackPayload, error) {
	var p CallbackPayload
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("%w: callback payload: %v", ErrInvalidInput, err)
	}
	if p.Kind != CallbackTask && p.Kind != CallbackBatch {
		return p, fmt.Errorf("%w: callback payload kind %q", ErrInvalidInput, p.Kind)
	}
	if err := ValidateInstanceName(p.Instance); err != nil {
		return p, err
	}
	return p, nil
}
