package tasks

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/wahaq/wahaq/internal/base"
	"github.com/wahaq/wahaq/internal/store"
)

// DefaultMaxSchedule is the horizon of At and In: a logout may be scheduled
// at most this far ahead (366 days). A later time is bad input: a typo such
// as year 9999 would otherwise hold the session's dedup claim for good.
const DefaultMaxSchedule = 366 * 24 * time.Hour

// BatchError is returned by EnqueueBatch when the batch was created but not
// every logout could be enqueued (Redis failed, ran out of memory, or the
// context ended). The batch is closed (or, if Redis did not answer, the
// reconciler closes it once the producer's lease ends), marked interrupted,
// and holds the Enqueued logouts: follow it with Inspector.Batch, cancel it
// with Producer.CancelBatch. It unwraps to the cause.
type BatchError struct {
	// BatchID is the batch that was created.
	BatchID string
	// Enqueued is how many logouts the batch holds: its total as Redis
	// counts it, or, when Redis could not be read, those this producer saw
	// acknowledged.
	Enqueued int64
	// Err is the cause.
	Err error
}

func (e *BatchError) Error() string {
	return fmt.Sprintf("batch %s interrupted after %d logouts were enqueued: %v", e.BatchID, e.Enqueued, e.Err)
}

// Unwrap returns the cause.
func (e *BatchError) Unwrap() error { return e.Err }

// ErrBatchClosed is the cause of a BatchError when the batch was closed
// while its producer was still filling it: the producer had stalled for
// longer than its lease and the reconciler closed the batch.
var ErrBatchClosed = base.ErrBatchClosed

// interrupted closes a batch whose fill failed and builds its BatchError.
// Redis may be failing: the steps get a few seconds of their own, but only
// half a second when the caller's deadline has passed (Redis did not
// answer in time; the HTTP API must answer within its bound, and the
// batch's lease closes it if this close cannot).
func (p *Producer) interrupted(ctx context.Context, instance, id string, acked int64, cause error) error {
	budget := 3 * time.Second
	if ctx.Err() != nil || errors.Is(cause, context.DeadlineExceeded) {
		budget = 500 * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), budget)
	defer cancel()
	_ = p.store.CloseInterrupted(ctx, instance, id, "interrupted: "+cause.Error(), p.cfg.ResultTTL)
	n := acked
	if b, err := p.store.GetBatch(ctx, []string{instance}, id); err == nil {
		n = b.Total
	}
	return &BatchError{BatchID: id, Enqueued: n, Err: cause}
}

// BatchCancel is the answer to a batch cancel (DELETE /v1/batches/{id},
// `wahaq batch cancel`).
type BatchCancel struct {
	// BatchID is the batch.
	BatchID string `json:"batch_id"`
	// Canceled is how many scheduled or pending tasks were canceled.
	Canceled int64 `json:"canceled"`
	// AlreadyStarted is how many tasks had started (active or retrying);
	// they run to their end.
	AlreadyStarted int64 `json:"already_started"`
	// AlreadyFinal is how many tasks were already completed, dead or
	// canceled.
	AlreadyFinal int64 `json:"already_final"`
}

// CancelBatch cancels every task of a batch that has not started yet. It
// returns ErrNotFound for an unknown batch. A batch still being filled by
// its producer may gain tasks afterwards; cancel again once it is done
// filling.
func (p *Producer) CancelBatch(ctx context.Context, id string) (*BatchCancel, error) {
	if err := ValidateBatchID(id); err != nil {
		return nil, err
	}
	b, err := getBatchClosingAbandoned(ctx, p.store, p.cfg, id)
	if err != nil {
		return nil, err
	}
	c, err := p.store.CancelBatch(ctx, b.Instance, id, p.cfg.ResultTTL)
	if err != nil {
		return nil, err
	}
	return &BatchCancel{BatchID: id, Canceled: c.Canceled, AlreadyStarted: c.Started, AlreadyFinal: c.Final}, nil
}

// getBatchClosingAbandoned reads a batch; one still open whose producer's
// lease has ended is closed (store.CloseAbandoned, atomic and idempotent, so
// readers and reconcilers may race) and read again.
func getBatchClosingAbandoned(ctx context.Context, st *store.Store, cfg Config, id string) (*store.Batch, error) {
	b, err := st.GetBatch(ctx, cfg.Instances, id)
	if err != nil || !b.Open {
		return b, err
	}
	if closed, err := st.CloseAbandoned(ctx, b.Instance, id, cfg.ResultTTL); err != nil || !closed {
		return b, nil // a failed repair must not fail the read; the reconciler retries it
	}
	return st.GetBatch(ctx, []string{b.Instance}, id)
}

// resumeBatch is enqueueBatch for a batch id derived from an idempotency
// key: a batch of that id that a first try left interrupted (or open) is
// reopened and filled with the sessions it does not hold yet, and the
// answer counts the tasks it already held as part of it; one that was
// closed with all its tasks is answered as it is. Either way the answer
// names the first batch with its total as Redis counts it.
func (p *Producer) resumeBatch(ctx context.Context, instance, id string, r BatchRequest, at time.Time, tp string) (*BatchInfo, error) {
	code, err := p.store.CreateOrResumeBatch(ctx, instance, id, at)
	if err != nil {
		return nil, err
	}
	if code == store.BatchFinished {
		b, err := p.store.GetBatch(ctx, []string{instance}, id)
		if err != nil {
			return nil, err
		}
		return &BatchInfo{BatchID: id, Total: b.Total, Requested: len(r.Sessions), Deduplicated: int(b.Deduplicated)}, nil
	}
	if r.CallbackURL != "" {
		if err := p.store.SetBatchCallback(ctx, instance, id, r.CallbackURL); err != nil {
			return nil, p.interrupted(ctx, instance, id, 0, err)
		}
	}
	if r.OnCreated != nil {
		r.OnCreated(id)
	}
	f, err := p.store.ResumeFill(ctx, instance, id, r.Sessions, code == store.BatchResumed, at, p.cfg.MaxRetries, p.cfg.TaskTimeout,
		p.cfg.ResultTTL, tp)
	p.enqueued(instance, int(f.Total))
	if err != nil {
		return nil, p.interrupted(ctx, instance, id, f.Total+int64(f.InBatch), err)
	}
	total := f.Total
	if code == store.BatchResumed {
		b, err := p.store.GetBatch(ctx, []string{instance}, id)
		if err != nil {
			return nil, err
		}
		total = b.Total
	}
	return &BatchInfo{BatchID: id, Total: total, Requested: f.Requested, Deduplicated: f.Deduplicated}, nil
}
