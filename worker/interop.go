package worker

import (
	"context"
	"errors"

	"github.com/hibiken/asynq"

	"github.com/wahaq/wahaq/internal/store"
)

// What the worker does so that asynq's own tools (the asynq CLI, asynqmon,
// asynq.Inspector) and wahaq agree (issue 10).

// operatorCancelError is the last error of a task canceled from asynq's
// tools while it ran.
const operatorCancelError = "canceled by an operator from asynq's tools while it ran"

// deadError is what the handler returns for a task it dead-lettered: asynq
// archives it and shows Error() in its archive, so the text is the outcome
// and WAHA's reason, not asynq's "skip retry for the task".
type deadError struct{ outcome, reason string }

func (e *deadError) Error() string {
	if e.reason == "" {
		return e.outcome
	}
	return e.outcome + ": " + e.reason
}

// Unwrap makes asynq archive the task at once.
func (e *deadError) Unwrap() error { return asynq.SkipRetry }

// operatorCanceled reports whether an attempt ended because an operator
// canceled it from asynq's tools. asynq cancels the handler's context in
// two cases: a cancel request on its pubsub channel (the tools) and this
// worker shutting down (after it has handed the task back). The worker
// knows when it is shutting down; anything else is the operator. A
// deadline (the task's timeout) is not a cancel.
func (w *Worker) operatorCanceled(ctx context.Context, err error) bool {
	return err != nil && errors.Is(err, context.Canceled) && errors.Is(ctx.Err(), context.Canceled) && !w.stopping.Load()
}

// recordOperatorCancel writes the record of an attempt canceled from
// asynq's tools. asynq has already moved the task to its retry set (it does
// not wait for the handler); the canceled record keeps it from running
// again and the reconciler removes it.
func (w *Worker) recordOperatorCancel(ctx context.Context, a *attempt) error {
	ok, err := w.store.CancelActive(ctx, a.ID, a.Payload, operatorCancelError, w.cfg.ResultTTL)
	if err != nil {
		a.Log.Error().Err(err).Msg("cannot record the operator's cancel")
		return err
	}
	if ok {
		a.Log.Warn().Str("state", store.StateCanceled).Msg("task canceled by an operator from asynq's tools")
	}
	return nil
}

// dropped is the answer for a delivery that must not run: nothing was
// called, and asynq is told the task is done.
func (w *Worker) dropped(a *attempt, r store.StartResult) answer {
	switch r.Code {
	case store.StartSuperseded:
		a.Log.Warn().Str("live_task", r.LiveID).Msg("dead letter run from asynq's archive closed in favour of the session's live task")
	default:
		a.Log.Warn().Msg("delivery of a task that already ended dropped")
	}
	return answer{NotStarted: true, Dropped: true}
}
