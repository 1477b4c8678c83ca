package tasks

import (
	"context"
	"fmt"
	"time"

	"github.com/wahaq/wahaq/internal/store"
)

// DefaultRecentBatches is how many batches RecentBatches returns when asked
// for limit 0.
const DefaultRecentBatches = 50

// MaxRecentBatches is the largest limit RecentBatches takes: each WAHA
// server's queue keeps its newest MaxRecentBatches batch ids.
const MaxRecentBatches = 1000

// Batch is a bulk teardown's status, as GET /v1/batches/{id} and `wahaq batch
// --json` return it. It is read from one Redis hash of counters that every
// state change keeps up to date, so reading it costs the same for ten tasks
// or a hundred thousand.
type Batch struct {
	BatchID  string            `json:"batch_id"`
	Instance string            `json:"instance"`
	Total    int64             `json:"total"`
	Counts   map[State]int64   `json:"counts"`
	Outcomes map[Outcome]int64 `json:"outcomes"`
	// Done is true when every task of the batch is completed, dead or
	// canceled, and the batch has all its tasks (a discovery batch is not
	// done before the server's sessions are listed).
	Done        bool `json:"done"`
	Discovering bool `json:"discovering,omitempty"`
	// Interrupted is true when the batch was closed before its producer had
	// enqueued every task (a failure, a kill): Total is what it holds.
	Interrupted  bool       `json:"interrupted,omitempty"`
	CreatedAt    time.Time  `json:"created_at"`
	ScheduledFor *time.Time `json:"scheduled_for"`
	// Deduplicated counts sessions of the request that already had a live
	// task: that task was kept and is not part of this batch.
	Deduplicated int64 `json:"deduplicated"`
	// Skipped counts, for a discovery batch, the entries of the server's
	// listing that were not sessions and were skipped, per reason:
	// "not_object" (not a JSON object), "no_name" (name missing or null),
	// "bad_name" (not a string, or breaks WAHA's name rule, e.g. "../etc"),
	// "bad_status" (status missing or not shaped like one). Absent when
	// none was skipped. Sessions left out by the request's status filter
	// are not skipped: they were filtered on purpose and are not counted.
	Skipped map[string]int64 `json:"skipped,omitempty"`
	// Error says why a discovery failed, when it did.
	Error string `json:"error,omitempty"`
	// Callback is the completion callback's delivery; absent when the batch
	// has no callback URL.
	Callback *Callback `json:"callback,omitempty"`
	// Paused is true while the batch is paused (Producer.PauseBatch): none
	// of its tasks starts; PausedAt and PausedBy say when and who.
	Paused   bool       `json:"paused"`
	PausedAt *time.Time `json:"paused_at,omitempty"`
	PausedBy string     `json:"paused_by,omitempty"`
}

// newBatch turns the engine's batch into the public one: every state and
// every outcome has a count, zero when none.
func newBatch(b *store.Batch) *Batch {
	out := &Batch{BatchID: b.ID, Instance: b.Instance, Total: b.Total, Counts: make(map[State]int64, len(AllStates)),
		Outcomes: make(map[Outcome]int64, len(AllOutcomes)), Done: b.Done, Discovering: b.Discovering, Interrupted: b.Interrupted,
		CreatedAt: b.CreatedAt, ScheduledFor: b.ScheduledFor, Deduplicated: b.Deduplicated, Error: b.Error, Callback: newCallback(b.Callback),
		Skipped: b.Skipped, Paused: b.PausedAt != nil, PausedAt: pausedAt(b.PausedAt), PausedBy: b.PausedBy}
	for _, st := range AllStates {
		out.Counts[st] = b.Counts[string(st)]
	}
	for _, o := range AllOutcomes {
		out.Outcomes[o] = b.Outcomes[string(o)]
	}
	return out
}

// RecentBatches returns the newest batches of every instance, newest first
// by creation time, up to limit (0 means DefaultRecentBatches; more than
// MaxRecentBatches is ErrInvalidInput). Every batch is listed, whoever
// created it (API, CLI, console, a schedule, a discovery), until its record
// expires, WAHAQ_RESULT_TTL after it was done. Like Batch, an open batch
// whose producer's lease has ended is closed first, marked interrupted.
func (i *Inspector) RecentBatches(ctx context.Context, limit int) ([]*Batch, error) {
	switch {
	case limit == 0:
		limit = DefaultRecentBatches
	case limit < 0 || limit > MaxRecentBatches:
		return nil, fmt.Errorf("%w: limit %d is not between 1 and %d", ErrInvalidInput, limit, MaxRecentBatches)
	}
	bs, err := i.store.RecentBatches(ctx, i.cfg.Instances, limit)
	if err != nil {
		return nil, err
	}
	out := make([]*Batch, 0, len(bs))
	for _, b := range bs {
		if b.Open {
			if fresh, err := getBatchClosingAbandoned(ctx, i.store, i.cfg, b.ID); err == nil {
				b = fresh
			}
		}
		out = append(out, newBatch(b))
	}
	return out, nil
}
