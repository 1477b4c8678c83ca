package tasks

import "github.com/wahaq/wahaq/internal/store"

// RequeueStatus says what a requeue did to one dead letter.
type RequeueStatus string

// Requeue statuses.
const (
	// Requeued: back in the queue with fresh retries, same id.
	Requeued RequeueStatus = "requeued"
	// RequeueSuperseded: the session already has another live task; the dead
	// letter was closed (state canceled) in its favour. See LiveID.
	RequeueSuperseded RequeueStatus = "deduplicated"
	// RequeueNotDead: the id is unknown or not in the dead-letter queue.
	RequeueNotDead RequeueStatus = "not_dead"
	// RequeueBusy: the task died a moment ago and asynq is still archiving it;
	// try again.
	RequeueBusy RequeueStatus = "busy"
)

// RequeueResult is the result of requeueing one dead letter.
type RequeueResult struct {
	ID     string        `json:"id"`
	Status RequeueStatus `json:"status"`
	LiveID string        `json:"live_id,omitempty"`
}

// requeueStatus turns the engine's requeue code into the public status.
func requeueStatus(c store.RequeueCode) RequeueStatus {
	switch c {
	case store.RequeueRequeued:
		return Requeued
	case store.RequeueSuperseded:
		return RequeueSuperseded
	case store.RequeueBusy:
		return RequeueBusy
	}
	return RequeueNotDead
}
