package worker

import (
	"context"
	"errors"
	"time"

	"github.com/go-redis/redis_rate/v10"

	"github.com/wahaq/wahaq/internal/base"
	"github.com/wahaq/wahaq/internal/store"
	"github.com/wahaq/wahaq/wahaclient"
)

// The steps' collaborators, as small interfaces so handler_test.go can drive
// each step with fakes.
type (
	// limiter is redis_rate's Limiter.
	limiter interface {
		Allow(ctx context.Context, key string, limit redis_rate.Limit) (*redis_rate.Result, error)
	}
	// starter is the engine's start script (store.Store.Start).
	starter interface {
		Start(ctx context.Context, id string, p base.Payload, attempt, capacity int, lease time.Duration) (bool, error)
	}
	// beginner is a starter that also says why a task did not start
	// (store.Store.Begin): a second delivery of a task in flight, or of one
	// that already ended.
	beginner interface {
		Begin(ctx context.Context, id string, p base.Payload, attempt, capacity int, lease time.Duration) (store.StartResult, error)
	}
	// checker is the validation service (wahaclient.Validator).
	checker interface {
		Check(ctx context.Context) error
	}
)

// limitRate applies the instance's rate cap across every worker process. It
// only limits: a task over the rate is handed back without a retry spent.
func (w *Worker) limitRate(next step) step {
	return func(ctx context.Context, a *attempt) answer {
		in := a.Instance
		if in.limit == nil {
			return next(ctx, a)
		}
		res, err := w.rate.Allow(ctx, in.rateKey, *in.limit)
		if err != nil {
			return answer{NotStarted: true, RetryAfter: w.cfg.RetryBase, RedisDown: true}
		}
		if res.Allowed == 0 {
			w.metrics.LimiterWaits.WithLabelValues(in.name, "rate").Inc()
			return answer{NotStarted: true, RetryAfter: max(res.RetryAfter, 5*time.Millisecond)}
		}
		return next(ctx, a)
	}
}

// start takes a concurrency slot of the instance (across every worker
// process) and marks the task active: one script, so no slot is ever held
// by a task its record does not show active. When the cap is full the task
// is handed back at once rather than hold a worker slot that tasks of other
// servers could use: the start script has closed the queue's gate, so asynq
// does not deliver it (or its queue mates) again until a slot frees. The
// slot is renewed while the call runs and given back when the attempt is
// recorded.
func (w *Worker) start(next step) step {
	return func(ctx context.Context, a *attempt) answer {
		in := a.Instance
		var err error
		var r store.StartResult
		b, explains := w.starter.(beginner)
		var ok bool
		if a.taken != nil {
			// the take script that dequeued the task started it (take.go)
			r, ok = *a.taken, a.taken.Code == store.StartStarted
		} else if explains {
			r, err = b.Begin(ctx, a.ID, a.Payload, a.Number, in.capacity, w.cfg.SlotLease)
			ok = r.Code == store.StartStarted
		} else {
			ok, err = w.starter.Start(ctx, a.ID, a.Payload, a.Number, in.capacity, w.cfg.SlotLease)
		}
		switch {
		case err != nil:
			return answer{NotStarted: true, RetryAfter: w.cfg.RetryBase, RedisDown: true}
		case r.Code == store.StartInFlight:
			// asynq delivered an id that is running elsewhere (issue 10):
			// never two attempts at once. Hand it back; it runs if that
			// attempt's worker died and its slot lease runs out.
			a.Log.Warn().Msg("second delivery of a task in flight handed back")
			return answer{NotStarted: true, RetryAfter: w.cfg.SlotLease}
		case r.Code == store.StartHeld:
			// its batch is paused: the reconciler's next pass takes it out of
			// asynq's retry set into the batch's held set (store's pause.go);
			// until then it comes back at most once
			a.Log.Debug().Msg("task of a paused batch handed back")
			return answer{NotStarted: true, RetryAfter: heldRetry}
		case r.Code == store.StartEnded || r.Code == store.StartSuperseded:
			return w.dropped(a, r)
		case !ok:
			w.metrics.LimiterWaits.WithLabelValues(in.name, "concurrency").Inc()
			return answer{NotStarted: true}
		}
		w.held.add(in.name, a.ID)
		if r.Attempt > 0 {
			a.Number = r.Attempt // fresh retries after a run from asynq's archive
		}
		return next(ctx, a)
	}
}

// heldRetry is how long a task of a paused batch that asynq delivered waits
// in asynq's retry set before asynq delivers it again: short, so that one
// handed back just as the batch is resumed (after resume's hold, before its
// unpause) starts within seconds rather than a minute; while the batch stays
// paused it is refused again, at no retry's cost, until the reconciler holds
// it.
const heldRetry = 2 * time.Second

// validate runs the optional subscription/key check before the logout.
func (w *Worker) validate(next step) step {
	return func(ctx context.Context, a *attempt) answer {
		if w.validator != nil {
			if err := w.validator.Check(ctx); err != nil {
				return answer{Err: err}
			}
		}
		return next(ctx, a)
	}
}

// logout is the innermost step: the call to WAHA, measured.
func (w *Worker) logout(ctx context.Context, a *attempt) answer {
	start := w.cfg.Now()
	res, err := a.Instance.client.Logout(ctx, a.Payload.Session)
	w.metrics.LogoutDuration.WithLabelValues(a.Instance.name).Observe(w.cfg.Now().Sub(start).Seconds())
	code := "error"
	switch {
	case err == nil && res != nil:
		code = statusCode(res.HTTPStatus)
	case err != nil:
		var apiErr *wahaclient.APIError
		if errors.As(err, &apiErr) && apiErr.StatusCode != 0 {
			code = statusCode(apiErr.StatusCode)
		}
	}
	w.metrics.Responses.WithLabelValues(a.Instance.name, code).Inc()
	return answer{Result: res, Err: err, Called: true}
}
