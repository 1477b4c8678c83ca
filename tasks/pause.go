package tasks

import (
	"context"
	"time"

	"github.com/wahaq/wahaq/internal/base"
)

// ErrBatchDone is returned when pausing a batch whose tasks are all final:
// there is nothing left to pause.
var ErrBatchDone = base.ErrBatchDone

// actorKey is the context key of WithActor.
type actorKey struct{}

// WithActor returns ctx naming who acts: a token's name over HTTP, "cli"
// for the command line. PauseBatch and ResumeBatch record it on the batch.
func WithActor(ctx context.Context, actor string) context.Context {
	return context.WithValue(ctx, actorKey{}, actor)
}

// ActorFrom returns the actor WithActor put into ctx, or "" when none.
func ActorFrom(ctx context.Context) string {
	a, _ := ctx.Value(actorKey{}).(string)
	return a
}

// defaultActor names the actor of a call whose context names none.
const defaultActor = "go"

// BatchPause is the answer to a pause or a resume (POST
// /v1/batches/{id}/pause and /resume, `wahaq batch pause|resume`).
type BatchPause struct {
	// BatchID is the batch.
	BatchID string `json:"batch_id"`
	// Paused is whether the batch is paused now.
	Paused bool `json:"paused"`
	// Changed is false when the batch already was in that state (a second
	// pause, a resume of a batch that runs): nothing was done.
	Changed bool `json:"changed"`
	// Moved is how many tasks were taken out of asynq's scheduled and
	// retry sets (a pause; its pending tasks are held as they reach the
	// head of the queue) or put back into asynq's queues (a resume).
	Moved int64 `json:"moved"`
	// Batch is the batch as it reads after the call.
	Batch *Batch `json:"batch"`
}

// PauseBatch pauses a batch: none of its tasks starts until ResumeBatch;
// those in flight finish. Its tasks are neither canceled nor failed and
// spend no retry; they stay paused across worker restarts. The batch then
// reads "paused" with the time and the actor (ActorFrom(ctx)). It returns
// ErrNotFound for an unknown batch and ErrBatchDone for one that is done.
// Pausing a paused batch changes nothing.
func (p *Producer) PauseBatch(ctx context.Context, id string) (*BatchPause, error) {
	return p.pause(ctx, id, true)
}

// ResumeBatch resumes a paused batch: its held tasks go back into the
// queue in their order (pending ones behind what is queued now, scheduled
// and retrying ones at their time) and start again. It returns ErrNotFound
// for an unknown batch. Resuming a batch that runs changes nothing.
func (p *Producer) ResumeBatch(ctx context.Context, id string) (*BatchPause, error) {
	return p.pause(ctx, id, false)
}

func (p *Producer) pause(ctx context.Context, id string, pause bool) (*BatchPause, error) {
	if err := ValidateBatchID(id); err != nil {
		return nil, err
	}
	b, err := getBatchClosingAbandoned(ctx, p.store, p.cfg, id)
	if err != nil {
		return nil, err
	}
	actor := ActorFrom(ctx)
	if actor == "" {
		actor = defaultActor
	}
	call := p.store.ResumeBatch
	if pause {
		call = p.store.PauseBatch
	}
	r, err := call(ctx, b.Instance, id, actor)
	if err != nil {
		return nil, err
	}
	b, err = p.store.GetBatch(ctx, []string{b.Instance}, id)
	if err != nil {
		return nil, err
	}
	nb := newBatch(b)
	return &BatchPause{BatchID: id, Paused: nb.Paused, Changed: r.Changed, Moved: r.Moved, Batch: nb}, nil
}

// pausedAt copies the engine's pause time.
func pausedAt(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	c := t.UTC()
	return &c
}
