package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"

	"github.com/wahaq/wahaq/internal/base"
	"github.com/wahaq/wahaq/internal/callback"
	"github.com/wahaq/wahaq/internal/metrics"
	"github.com/wahaq/wahaq/internal/store"
	"github.com/wahaq/wahaq/tasks"
)

// callbacks is what deliveries need: the signing secret, the HTTP client
// that keeps to the allow list, and an Inspector to read what they post.
type callbacks struct {
	secret callback.Secret
	client *http.Client
	insp   *tasks.Inspector
}

func newCallbacks(cfg Config) (*callbacks, error) {
	c := &callbacks{}
	if cfg.CallbackSecret != "" {
		s, err := callback.ParseSecret(cfg.CallbackSecret)
		if err != nil {
			return nil, fmt.Errorf("worker: WAHAQ_CALLBACK_SECRET: %w", err)
		}
		c.secret = s
	}
	allow, err := callback.ParseAllow(joinList(cfg.CallbackAllow))
	if err != nil {
		return nil, fmt.Errorf("worker: WAHAQ_CALLBACK_ALLOW: %w", err)
	}
	c.client = callback.NewHTTPClient(allow)
	names := make([]string, len(cfg.Instances))
	for i, in := range cfg.Instances {
		names[i] = in.Name
	}
	c.insp, err = tasks.NewInspector(tasks.Config{Redis: cfg.Redis, Namespace: cfg.Namespace, Instances: names, Now: cfg.Now})
	if err != nil {
		return nil, fmt.Errorf("worker: %w", err)
	}
	return c, nil
}

func joinList(s []string) string { return strings.Join(s, ",") }

// Callback deliveries run in a pool of their own, apart from asynq's
// handlers (store/delivery.go): a delivery loop per worker process takes
// due deliveries from every queue's delivery set, at most
// CallbackConcurrency at once, and at most ReceiverInFlight to one
// receiver, whose breaker (receiver.go) keeps a failing receiver's
// deliveries waiting in Redis instead of in a slot. No delivery ever holds
// a handler slot, a concurrency slot of a WAHA server or a Redis
// connection while it waits for a receiver, so no receiver, however slow
// or many, changes how fast logouts run.
const (
	// DefaultCallbackConcurrency is how many deliveries one worker process
	// posts at once (WAHAQ_CALLBACK_CONCURRENCY).
	DefaultCallbackConcurrency = 16
	// deliveryLease is how long a taken delivery is kept from other loops:
	// longer than one attempt (callback.RequestTimeout) and its recording.
	// A worker killed mid-POST leaves its deliveries due again after it.
	deliveryLease = time.Minute
	// deliverySweep is how often the delivery loop looks at a queue it
	// has no news of: deliveries a process other than this worker created
	// (serve's cancels, another worker's reconciler) and retries whose
	// backoff ended are found within it. The deliveries this worker's own
	// finishes create wake the loop at once (wakeDeliveries). Looking at
	// every queue every 200 ms made an idle worker's Redis calls grow with
	// its servers (5 a second each; issue 20).
	deliverySweep = 5 * time.Second
	// deliverySweepRate bounds the sweep's looks per second, so that a
	// worker with a thousand servers looks at each every 20 s rather than
	// make 200 calls a second (the queue view's bound, queueview.go).
	deliverySweepRate = 50
	// deliveryBusy is how soon the loop looks again while its slots are
	// full, and the least time between two looks at a queue that finishes
	// keep waking: every final task wakes the loop, whether it has a
	// callback or not, and looking once per wake would add a script call
	// per logout under load; this bounds it to 20 a second per queue.
	deliveryBusy = 50 * time.Millisecond
)

// deliveries is the delivery loop of one Worker.
type deliveries struct {
	slots     chan struct{}
	receivers receivers
	running   sync.WaitGroup
	stop      context.CancelFunc
	done      chan struct{}
	// due holds, by instance, when this worker knows a delivery of that
	// queue is due: now for a task its finish just made final, the next
	// attempt's time for a delivery it retried or deferred. wake signals
	// the loop.
	mu   sync.Mutex
	due  map[string]time.Time
	wake chan struct{}
}

// wakeDeliveries tells the delivery loop that a task of instance became
// final in this worker: its callbacks and subscriptions may now be due.
func (w *Worker) wakeDeliveries(instance string) { w.deliveryDue(instance, w.cfg.Now()) }

// deliveryDue tells the delivery loop that a delivery of instance's queue
// is due at at.
func (w *Worker) deliveryDue(instance string, at time.Time) {
	d := &w.deliveries
	d.mu.Lock()
	if d.due == nil {
		d.due = map[string]time.Time{}
	}
	if old, ok := d.due[instance]; !ok || at.Before(old) {
		d.due[instance] = at
	}
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// startDeliveries starts the delivery loop.
func (w *Worker) startDeliveries() {
	ctx, cancel := context.WithCancel(context.Background())
	d := &w.deliveries
	d.stop, d.done = cancel, make(chan struct{})
	go func() {
		defer close(d.done)
		w.deliveryLoop(ctx)
	}()
}

// stopDeliveries stops taking deliveries and ends those in flight: each
// is made due again at once for another worker (an attempt cut short may
// reach its receiver twice, under the same webhook-id).
func (w *Worker) stopDeliveries() {
	d := &w.deliveries
	if d.stop == nil {
		return
	}
	d.stop()
	<-d.done
	d.running.Wait()
	d.stop = nil
}

// sweepEvery is how long the loop leaves a queue it has no news of: the
// sweep, stretched so that n queues make at most deliverySweepRate looks a
// second.
func sweepEvery(n int) time.Duration {
	return max(deliverySweep, time.Duration(n)*time.Second/deliverySweepRate)
}

// deliveryLoop takes due deliveries while slots are free, round the
// worker's queues. A queue is looked at when this worker's finish woke it,
// while its last look took something (more may be due), and otherwise once
// a sweep (sweepEvery, spread over the queues), so an idle worker's looks
// do not grow with its servers past deliverySweepRate a second.
func (w *Worker) deliveryLoop(ctx context.Context) {
	d := &w.deliveries
	names := make([]string, 0, len(w.instances))
	for name := range w.instances {
		names = append(names, name)
	}
	slices.Sort(names)
	sweep := sweepEvery(len(names))
	now := w.cfg.Now()
	next := make(map[string]time.Time, len(names))
	last := make(map[string]time.Time, len(names)) // the last look at each queue
	for i, name := range names {
		// the first looks at start, spread over the first sweep
		next[name] = now.Add(sweep * time.Duration(i) / time.Duration(len(names)))
	}
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-d.wake:
		}
		d.mu.Lock()
		due := d.due
		d.due = nil
		d.mu.Unlock()
		now := w.cfg.Now()
		for name, at := range due {
			if _, ok := next[name]; ok && at.Before(next[name]) {
				if soonest := last[name].Add(deliveryBusy); at.Before(soonest) {
					at = soonest
				}
				next[name] = at
			}
		}
		full := false
		for _, name := range names {
			if next[name].After(now) {
				continue
			}
			free := cap(d.slots) - len(d.slots)
			if free == 0 {
				full = true
				break
			}
			ds, err := w.store.TakeDeliveries(ctx, name, free, deliveryLease)
			last[name] = now
			// Jittered by a tenth so that queues looked at together at
			// start drift apart.
			next[name] = now.Add(sweep + time.Duration(rand.Int64N(int64(sweep/10)+1)))
			if err != nil {
				if ctx.Err() == nil {
					w.log.Warn().Err(err).Str("instance", name).Msg("cannot take callback deliveries")
				}
				continue
			}
			if len(ds) > 0 {
				next[name] = now // more may be due
			}
			for _, dl := range ds {
				d.slots <- struct{}{} // never blocks: only this loop fills slots
				d.running.Add(1)
				go func() {
					defer func() {
						<-d.slots
						d.running.Done()
						// a freed slot may take what a full loop left
						select {
						case d.wake <- struct{}{}:
						default:
						}
					}()
					w.deliver(ctx, name, dl)
				}()
			}
		}
		wait := sweep
		for _, at := range next {
			wait = min(wait, at.Sub(now))
		}
		if full {
			wait = deliveryBusy
		}
		t.Reset(max(wait, 0))
	}
}

// deliver makes one attempt of d: one signed POST of the task (batch) JSON,
// as GET /v1/tasks/{id} (/v1/batches/{id}) answers it, read now; a
// subscription's delivery wraps it as {"type", "timestamp", "data"}. 2xx
// delivers; 408, 429, 5xx and network errors are retried with backoff for
// CallbackRetryFor; a redirect, a refused address or another 4xx fails for
// good. An open or busy receiver defers the delivery without an attempt.
func (w *Worker) deliver(ctx context.Context, instance string, d store.Delivery) {
	log := w.log.With().Str("task_id", d.Ref).Str("kind", d.Kind).Str("instance", instance).Str("delivery", d.ID).
		Int("attempt", d.Attempts+1).Logger()
	if d.Subscription != "" {
		live, err := w.store.SubscriptionLive(ctx, instance, d.Subscription)
		if err == nil && !live {
			w.recordDelivery(ctx, log, instance, d, store.Callback{State: store.CallbackFailed, Attempts: d.Attempts,
				LastError: "the subscription was deleted"}, time.Time{})
			return
		}
	}
	rc := w.deliveries.receivers.get(receiverKey(d.URL), time.Now())
	done, wait, ok := rc.acquire()
	if !ok {
		w.deferDelivery(ctx, log, instance, d, wait)
		return
	}
	failed := false
	defer func() { done(failed) }()
	body, err := w.callbackBody(ctx, d)
	if errors.Is(err, base.ErrNotFound) {
		w.recordDelivery(ctx, log, instance, d, store.Callback{State: store.CallbackFailed, Attempts: d.Attempts,
			LastError: "the " + d.Kind + " expired before its callback was delivered"}, time.Time{})
		return
	}
	if err != nil {
		if ctx.Err() != nil {
			w.deferDelivery(ctx, log, instance, d, 0)
			return
		}
		log.Warn().Err(err).Msg("cannot read what the callback posts; trying again")
		w.deferDelivery(ctx, log, instance, d, w.cfg.CallbackRetryBase)
		return
	}
	rec := store.Callback{State: store.CallbackPending, Attempts: d.Attempts + 1}
	var sendErr error
	start := w.cfg.Now()
	if !w.callbacks.secret.Set() {
		sendErr = errors.New("WAHAQ_CALLBACK_SECRET is not set on the worker: callbacks cannot be signed")
	} else {
		rec.Status, sendErr = callback.Send(ctx, w.callbacks.client, w.callbacks.secret,
			callback.Delivery{ID: d.ID, URL: d.URL, Body: body, Now: w.cfg.Now()})
	}
	if sendErr != nil && ctx.Err() != nil {
		// the worker is stopping: not the receiver's fault
		w.deferDelivery(ctx, log, instance, d, 0)
		return
	}
	retry := false
	switch {
	case sendErr == nil && rec.Status >= 200 && rec.Status < 300:
		rec.State = store.CallbackDelivered
	case errors.Is(sendErr, callback.ErrRedirect), errors.Is(sendErr, callback.ErrNotAllowed):
		rec.State, rec.LastError = store.CallbackFailed, truncate(sendErr.Error())
	case sendErr != nil:
		rec.LastError, retry, failed = truncate(sendErr.Error()), true, true
	case rec.Status == http.StatusRequestTimeout || rec.Status == http.StatusTooManyRequests || rec.Status >= 500:
		rec.LastError, retry, failed = fmt.Sprintf("receiver answered HTTP %d", rec.Status), true, true
	default:
		rec.State, rec.LastError = store.CallbackFailed, fmt.Sprintf("receiver answered HTTP %d", rec.Status)
	}
	var next time.Time
	if retry {
		if !d.Since.IsZero() && w.cfg.Now().Sub(d.Since) > w.cfg.CallbackRetryFor {
			rec.State, retry = store.CallbackFailed, false
			rec.LastError += fmt.Sprintf("; given up after %s", w.cfg.CallbackRetryFor)
		} else {
			next = w.cfg.Now().Add(backoff(rec.Attempts, w.cfg.CallbackRetryBase, w.cfg.CallbackRetryMax))
		}
	}
	w.recordDelivery(ctx, log, instance, d, rec, next)
	ev := log.Info()
	if rec.State != store.CallbackDelivered {
		ev = log.Warn()
	}
	ev.Str("outcome", rec.State).Int("status", rec.Status).Dur("duration", w.cfg.Now().Sub(start)).
		Str("error", rec.LastError).Msg("callback attempt")
}

// recordDelivery writes an attempt, even when the loop is stopping.
func (w *Worker) recordDelivery(ctx context.Context, log zerolog.Logger, instance string, d store.Delivery, rec store.Callback, next time.Time) {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), outageWait)
	defer cancel()
	if _, err := w.store.RecordDelivery(wctx, instance, d, rec, next); err != nil {
		log.Error().Err(err).Msg("cannot record callback attempt")
		return
	}
	result := metrics.CallbackRetry
	switch rec.State {
	case store.CallbackDelivered:
		result = metrics.CallbackDelivered
	case store.CallbackFailed:
		result = metrics.CallbackFailed
	}
	w.metrics.Callbacks.WithLabelValues(instance, result).Inc()
	if !next.IsZero() {
		w.deliveryDue(instance, next)
	}
}

// deferDelivery makes d due again after wait without an attempt.
func (w *Worker) deferDelivery(ctx context.Context, log zerolog.Logger, instance string, d store.Delivery, wait time.Duration) {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), outageWait)
	defer cancel()
	at := w.cfg.Now().Add(wait)
	if err := w.store.DeferDelivery(wctx, instance, d.ID, at); err != nil {
		log.Error().Err(err).Msg("cannot defer callback delivery; it is due again when its lease ends")
		return
	}
	w.metrics.Callbacks.WithLabelValues(instance, metrics.CallbackDeferred).Inc()
	w.deliveryDue(instance, at)
}

// adoptCallback is the asynq handler of wahaq:callback, the deliveries a
// wahaq from before the delivery set enqueued in asynq's queues: it moves
// each into the delivery set at once, so that none runs in a handler slot.
func (w *Worker) adoptCallback(ctx context.Context, t *asynq.Task) error {
	id, _ := asynq.GetTaskID(ctx)
	p, err := base.DecodeCallbackPayload(t.Payload())
	if err != nil {
		w.log.Error().Str("task_id", id).Err(err).Msg("undecodable callback payload")
		return fmt.Errorf("%v: %w", err, asynq.SkipRetry)
	}
	if _, err := w.store.AdoptCallback(ctx, p.Instance, p.Kind, p.ID, id); err != nil {
		return &retryError{err: err, delay: w.cfg.CallbackRetryBase}
	}
	return nil
}

// callbackBody is the JSON posted: the same as the API's GET of the task or
// batch; for a subscription, wrapped in the Standard Webhooks event shape
// {"type": "task.final" | "batch.done", "timestamp", "data"}.
func (w *Worker) callbackBody(ctx context.Context, d store.Delivery) ([]byte, error) {
	var v any
	var err error
	event := base.EventTaskFinal
	if d.Kind == base.CallbackBatch {
		event = base.EventBatchDone
		v, err = w.callbacks.insp.Batch(ctx, d.Ref)
	} else {
		v, err = w.callbacks.insp.Task(ctx, d.Ref)
	}
	if err != nil {
		return nil, err
	}
	if d.Subscription != "" {
		v = struct {
			Type      string    `json:"type"`
			Timestamp time.Time `json:"timestamp"`
			Data      any       `json:"data"`
		}{event, d.Since, v}
	}
	return json.Marshal(v)
}

func truncate(s string) string {
	const n = 300
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// callbackRetryDefaults fill the callback settings.
func (c *Config) callbackDefaults() {
	setDefault(&c.CallbackRetryBase, 5*time.Second)
	setDefault(&c.CallbackRetryMax, time.Hour)
	setDefault(&c.CallbackRetryFor, tasks.CallbackRetryFor)
	setDefault(&c.CallbackConcurrency, DefaultCallbackConcurrency)
}
