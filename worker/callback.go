package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/wahaq/wahaq/internal/base"
	"github.com/wahaq/wahaq/internal/callback"
	"github.com/wahaq/wahaq/internal/store"
	"github.com/wahaq/wahaq/tasks"
)

// callbacks delivers completion callbacks: the wahaq:callback tasks that the
// finishing scripts enqueue in an instance's queue.
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

// errCallbackRetry marks a delivery attempt to try again later.
var errCallbackRetry = errors.New("callback delivery failed")

// deliverCallback is the asynq handler of wahaq:callback: one signed POST of
// the task (batch) JSON, as GET /v1/tasks/{id} (/v1/batches/{id}) answers
// it, read now. 2xx delivers; 408, 429, 5xx and network errors are retried
// with backoff for CallbackRetryFor; a redirect, a refused address or another
// 4xx fails for good. The logout itself finished long before: nothing here
// can hold up a logout.
func (w *Worker) deliverCallback(ctx context.Context, t *asynq.Task) error {
	id, _ := asynq.GetTaskID(ctx)
	retried, _ := asynq.GetRetryCount(ctx)
	p, err := base.DecodeCallbackPayload(t.Payload())
	if err != nil {
		w.log.Error().Str("task_id", id).Err(err).Msg("undecodable callback payload")
		return fmt.Errorf("%v: %w", err, asynq.SkipRetry)
	}
	log := w.log.With().Str("task_id", p.ID).Str("kind", p.Kind).Str("instance", p.Instance).Str("delivery", id).
		Int("attempt", retried+1).Logger()
	target, err := w.store.CallbackTarget(ctx, p)
	if errors.Is(err, base.ErrNotFound) {
		log.Warn().Str("outcome", "gone").Msg("callback dropped: the record expired or names no callback")
		return nil
	}
	if err != nil {
		return &retryError{err: err, delay: backoff(retried+1, w.cfg.CallbackRetryBase, w.cfg.CallbackRetryMax)}
	}
	if target.ID != id {
		log.Info().Str("outcome", "superseded").Msg("callback dropped: a newer delivery replaced it")
		return nil
	}
	body, err := w.callbackBody(ctx, p)
	if err != nil {
		return &retryError{err: err, delay: backoff(retried+1, w.cfg.CallbackRetryBase, w.cfg.CallbackRetryMax)}
	}
	rec := store.Callback{State: store.CallbackPending, Attempts: target.Attempts + 1}
	var sendErr error
	start := w.cfg.Now()
	if !w.callbacks.secret.Set() {
		sendErr = errors.New("WAHAQ_CALLBACK_SECRET is not set on the worker: callbacks cannot be signed")
	} else {
		rec.Status, sendErr = callback.Send(ctx, w.callbacks.client, w.callbacks.secret,
			callback.Delivery{ID: id, URL: target.URL, Body: body, Now: w.cfg.Now()})
	}
	retry := false
	switch {
	case sendErr == nil && rec.Status >= 200 && rec.Status < 300:
		rec.State = store.CallbackDelivered
	case errors.Is(sendErr, callback.ErrRedirect), errors.Is(sendErr, callback.ErrNotAllowed):
		rec.State, rec.LastError = store.CallbackFailed, truncate(sendErr.Error())
	case sendErr != nil:
		rec.LastError, retry = truncate(sendErr.Error()), true
	case rec.Status == http.StatusRequestTimeout || rec.Status == http.StatusTooManyRequests || rec.Status >= 500:
		rec.LastError, retry = fmt.Sprintf("receiver answered HTTP %d", rec.Status), true
	default:
		rec.State, rec.LastError = store.CallbackFailed, fmt.Sprintf("receiver answered HTTP %d", rec.Status)
	}
	if retry && !target.Since.IsZero() && w.cfg.Now().Sub(target.Since) > w.cfg.CallbackRetryFor {
		rec.State, retry = store.CallbackFailed, false
		rec.LastError += fmt.Sprintf("; given up after %s", w.cfg.CallbackRetryFor)
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), outageWait)
	defer cancel()
	if _, err := w.store.RecordCallback(wctx, p, id, rec); err != nil {
		log.Error().Err(err).Msg("cannot record callback attempt")
	}
	ev := log.Info()
	if rec.State != store.CallbackDelivered {
		ev = log.Warn()
	}
	ev.Str("outcome", rec.State).Int("status", rec.Status).Dur("duration", w.cfg.Now().Sub(start)).
		Str("error", rec.LastError).Msg("callback attempt")
	if retry {
		return &retryError{err: fmt.Errorf("%w: %s", errCallbackRetry, rec.LastError),
			delay: backoff(retried+1, w.cfg.CallbackRetryBase, w.cfg.CallbackRetryMax)}
	}
	return nil
}

// callbackBody is the JSON posted: the same as the API's GET of the task or
// batch.
func (w *Worker) callbackBody(ctx context.Context, p base.CallbackPayload) ([]byte, error) {
	var v any
	var err error
	if p.Kind == base.CallbackBatch {
		v, err = w.callbacks.insp.Batch(ctx, p.ID)
	} else {
		v, err = w.callbacks.insp.Task(ctx, p.ID)
	}
	if err != nil {
		return nil, err
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
}
