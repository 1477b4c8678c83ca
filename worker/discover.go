package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hibiken/asynq"
	"go.opentelemetry.io/otel/attribute"

	"github.com/wahaq/wahaq/internal/base"
	"github.com/wahaq/wahaq/tasks"
)

// discover lists a server's sessions and fills an "all" batch with their
// logouts. Running it twice is harmless: a batch that is no longer
// discovering is left alone.
func (w *Worker) discover(ctx context.Context, t *asynq.Task) error {
	var p base.DiscoverPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return fmt.Errorf("discover: bad payload: %v: %w", err, asynq.SkipRetry)
	}
	log := w.log.With().Str("batch_id", p.BatchID).Str("instance", p.Instance).Logger()
	ctx, span, tp := startDiscover(ctx, p)
	defer span.End()
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	b, err := w.store.GetBatch(wctx, []string{p.Instance}, p.BatchID)
	if err != nil {
		return err
	}
	if !b.Discovering {
		return nil
	}
	fail := func(err error) error {
		log.Error().Err(err).Msg("discovery failed")
		if cerr := w.store.CloseBatch(wctx, p.Instance, p.BatchID, 0, "discovery failed: "+errorText(err), w.cfg.ResultTTL); cerr != nil {
			return cerr
		}
		return fmt.Errorf("%v: %w", err, asynq.SkipRetry)
	}
	inst, ok := w.instances[p.Instance]
	if !ok {
		return fail(fmt.Errorf("instance %q is not configured on this worker", p.Instance))
	}
	if w.validator != nil {
		if err := w.validator.Check(ctx); err != nil {
			return w.discoverErr(ctx, err, fail)
		}
	}
	sessions, err := inst.client.ListSessions(ctx, true)
	if err != nil {
		return w.discoverErr(ctx, err, fail)
	}
	names := make([]string, 0, len(sessions))
	skipped := 0
	for _, s := range sessions {
		if len(p.Statuses) > 0 && !slices.Contains(p.Statuses, s.Status) {
			continue
		}
		if base.ValidateSessionName(s.Name) != nil {
			skipped++
			continue
		}
		names = append(names, s.Name)
	}
	info, err := w.store.FillBatchTraced(wctx, p.Instance, p.BatchID, names, time.Time{}, p.MaxRetries, tasks.DefaultTaskTimeout, w.cfg.ResultTTL, tp)
	w.OnEnqueued(p.Instance, int(info.Total))
	if span.IsRecording() {
		span.SetAttributes(attribute.Int("sessions", len(sessions)), attribute.Int64("enqueued", info.Total))
	}
	if err != nil {
		return err
	}
	log.Info().Int("sessions", len(sessions)).Int64("enqueued", info.Total).Int("deduplicated", info.Deduplicated).
		Int("skipped_bad_names", skipped).Msg("discovery done")
	return nil
}

func (w *Worker) discoverErr(ctx context.Context, err error, fail func(error) error) error {
	retried, _ := asynq.GetRetryCount(ctx)
	maxRetry, _ := asynq.GetMaxRetry(ctx)
	if cls, _ := classify(err); cls != classTransient || retried >= maxRetry {
		return fail(err)
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	return &retryError{err: err, delay: backoff(retried+1, w.cfg.RetryBase, w.cfg.RetryMax)}
}
