package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/attribute"

	"github.com/wahaq/wahaq/internal/base"
	"github.com/wahaq/wahaq/internal/store"
	"github.com/wahaq/wahaq/tasks"
	"github.com/wahaq/wahaq/wahaclient"
)

// DefaultDiscoveryChunk is how many listed sessions discovery enqueues at a
// time while it reads the listing: the worker holds one chunk, not the
// listing, so its memory does not grow with the server's sessions.
const DefaultDiscoveryChunk = 1000

// discovery is one run of a discovery task: what the listing step has read
// and enqueued so far.
type discovery struct {
	w        *Worker
	p        base.DiscoverPayload
	chunk    []string
	listed   int // entries read
	filtered int // sessions left out by the status filter (on purpose: not skipped)
	skipped  map[string]int64
	filled   store.Filled // summed over the chunks
	// storeErr is Redis failing to take a chunk; WAHA did nothing wrong.
	storeErr error
	// traceParent is the discovery span's traceparent: the logouts it
	// enqueues join the batch request's trace under it ("" untraced).
	traceParent string
}

// errStoreFailed stops the listing when a chunk cannot be enqueued.
var errStoreFailed = errors.New("enqueue failed")

// add takes one listing entry; a full chunk is enqueued before the next
// entry is read.
func (d *discovery) add(ctx context.Context, e wahaclient.ListEntry) error {
	d.listed++
	if e.Skip != "" {
		d.skipped[e.Skip]++
		return nil
	}
	if len(d.p.Statuses) > 0 && !slices.Contains(d.p.Statuses, e.Session.Status) {
		d.filtered++
		return nil
	}
	d.chunk = append(d.chunk, e.Session.Name)
	if len(d.chunk) >= DefaultDiscoveryChunk {
		return d.flush(ctx)
	}
	return nil
}

// flush enqueues the chunk into the batch (which stays open).
func (d *discovery) flush(ctx context.Context) error {
	if len(d.chunk) == 0 {
		return nil
	}
	f, err := d.w.store.FillChunk(ctx, d.p.Instance, d.p.BatchID, d.chunk, time.Time{}, d.p.MaxRetries, tasks.DefaultTaskTimeout, d.traceParent)
	d.w.OnEnqueued(d.p.Instance, int(f.Total))
	d.filled.Total += f.Total
	d.filled.Requested += f.Requested
	d.filled.Deduplicated += f.Deduplicated
	d.filled.InBatch += f.InBatch
	d.chunk = d.chunk[:0]
	if err != nil {
		d.storeErr = err
		return errStoreFailed
	}
	return nil
}

// list is the innermost step of a discovery: it streams the server's
// listing and enqueues its sessions chunk by chunk. WAHA's error is the
// answer's Err (the breaker and the policy judge it as a logout's); a
// Redis failure is the discovery's storeErr.
func (w *Worker) list(ctx context.Context, a *attempt) answer {
	d := a.discovery
	err := a.Instance.client.EachSession(ctx, true, func(e wahaclient.ListEntry) error { return d.add(ctx, e) })
	if err == nil {
		err = d.flush(ctx)
	}
	if errors.Is(err, errStoreFailed) {
		err = nil
	}
	return answer{Err: err, Called: true}
}

// discover runs a discovery task: it lists a server's sessions and fills
// an "all" batch with their logouts, through the same steps as a logout
// where they apply (the server's circuit breaker, the validation check) and
// the same classification and backoff. A permanent failure closes the batch
// with the reason; a transient one is retried with backoff up to the task's
// retry limit, then closes it. Running it again (a retry, or asynq running
// it again after a worker died mid-listing) is harmless: the sessions it
// enqueued before are found in the batch and not counted twice, and a
// batch that is no longer discovering is left alone.
func (w *Worker) discover(ctx context.Context, t *asynq.Task) error {
	var p base.DiscoverPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return fmt.Errorf("discover: bad payload: %v: %w", err, asynq.SkipRetry)
	}
	ctx, span, tp := startDiscover(ctx, p)
	defer span.End()
	retried, _ := asynq.GetRetryCount(ctx)
	maxRetry, _ := asynq.GetMaxRetry(ctx)
	if p.Retries > 0 {
		// The discovery counts its own retries: asynq's limit is never
		// reached, so a hand-back (an open breaker) is never archived.
		maxRetry = min(maxRetry, p.Retries)
	}
	a := &attempt{ID: p.BatchID, Number: retried + 1, Started: w.cfg.Now(), Payload: base.Payload{Instance: p.Instance}}
	a.Log = w.log.With().Str("task_id", p.BatchID).Str("batch_id", p.BatchID).Str("instance", p.Instance).Int("attempt", a.Number).Logger()
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), outageWait)
	defer cancel()
	b, err := w.store.GetBatch(wctx, []string{p.Instance}, p.BatchID)
	if err != nil {
		return err
	}
	if !b.Discovering {
		return nil
	}
	d := &discovery{w: w, p: p, skipped: map[string]int64{}, chunk: make([]string, 0, DefaultDiscoveryChunk), traceParent: tp}
	a.discovery = d
	inst, ok := w.instances[p.Instance]
	if !ok {
		err := fmt.Errorf("%w: instance %q is not configured on this worker", tasks.ErrInvalidInput, p.Instance)
		return w.endDiscovery(ctx, a, answer{Err: err}, retried, maxRetry)
	}
	a.Instance = inst
	ans := w.discoverPipeline(ctx, a)
	if span.IsRecording() {
		span.SetAttributes(attribute.Int("listed", d.listed), attribute.Int64("enqueued", d.filled.Total))
	}
	return w.endDiscovery(ctx, a, ans, retried, maxRetry)
}

// endDiscovery is the policy of a discovery attempt: it closes the batch
// (done, or failed for good) or tells asynq when to run it again.
func (w *Worker) endDiscovery(ctx context.Context, a *attempt, ans answer, retried, maxRetry int) error {
	d := a.discovery
	// The batch is closed whatever happened to ctx (a timeout, a shutdown).
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), outageWait)
	defer cancel()
	if ans.NotStarted {
		// The server's breaker is open: come back later, spending no retry.
		a.Log.Debug().Dur("retry_in", ans.RetryAfter).Msg("discovery handed back: the server's circuit is open")
		return &retryError{err: errThrottled, delay: ans.RetryAfter}
	}
	if d.storeErr != nil {
		if errors.Is(d.storeErr, store.ErrBatchClosed) {
			// Canceled or closed by the reconciler meanwhile: nothing to fill.
			a.Log.Warn().Int64("enqueued", d.filled.Total).Msg("discovery stopped: its batch was closed meanwhile")
			return nil
		}
		a.Log.Error().Err(d.storeErr).Msg("discovery cannot enqueue; will retry")
		return &retryError{err: d.storeErr, delay: backoff(retried+1, w.cfg.RetryBase, w.cfg.RetryMax)}
	}
	err := ans.Err
	if err == nil {
		if cerr := w.store.CloseDiscovery(cctx, a.Payload.Instance, a.ID, store.DiscoveryEnd{
			Deduplicated: int64(d.filled.Deduplicated), Skipped: d.skipped}, w.cfg.ResultTTL); cerr != nil {
			return cerr
		}
		w.discoveryLog(a.Log.Info(), a, d).Str("outcome", "done").Msg("discovery done")
		return nil
	}
	if errors.Is(err, context.Canceled) && !w.operatorCanceled(ctx, err) {
		// The worker is stopping: asynq hands the task back and it starts
		// over, finding what it enqueued in the batch.
		return err
	}
	cls, _ := classify(err)
	if cls == classTransient && retried < maxRetry {
		delay := w.transientDelay(retried+1, err)
		w.discoveryLog(a.Log.Warn(), a, d).Err(err).Dur("retry_in", delay).Msg("discovery failed; will retry")
		return &retryError{err: err, delay: delay}
	}
	reason := "discovery failed: " + errorText(err)
	if cerr := w.store.CloseDiscovery(cctx, a.Payload.Instance, a.ID, store.DiscoveryEnd{
		Deduplicated: int64(d.filled.Deduplicated), Skipped: d.skipped, Error: reason,
		Interrupted: d.filled.Total+int64(d.filled.InBatch) > 0}, w.cfg.ResultTTL); cerr != nil {
		return cerr
	}
	w.discoveryLog(a.Log.Error(), a, d).Str("outcome", "failed").Err(err).Msg("discovery failed")
	return &deadError{outcome: "discovery failed", reason: errorText(err)}
}

func (w *Worker) discoveryLog(ev *zerolog.Event, a *attempt, d *discovery) *zerolog.Event {
	skipped := zerolog.Dict()
	for _, r := range wahaclient.SkipReasons {
		if n := d.skipped[r]; n > 0 {
			skipped = skipped.Int64(r, n)
		}
	}
	return ev.Int("listed", d.listed).Int64("enqueued", d.filled.Total).Int("deduplicated", d.filled.Deduplicated).
		Int("in_batch", d.filled.InBatch).Int("filtered", d.filtered).Dict("skipped", skipped).
		Dur("duration", w.cfg.Now().Sub(a.Started))
}
