package worker

import (
	"context"
	"errors"
	"time"

	"github.com/go-redis/redis_rate/v10"

	"github.com/wahaq/wahaq/internal/base"
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
	// checker is the validation service (wahaclient.Validator).
	checker interface {
		Check(ctx context.Context) error
	}
)

// handBack is how soon a task that gave way to a limit runs again.
const handBack = 100 * time.Millisecond

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
// by a task its record does not show active. It waits up to SlotWait for a
// slot, then hands the task back rather than hold a worker that tasks of
// other servers could use. The slot is given back when the attempt is
// recorded.
func (w *Worker) start(next step) step {
	return func(ctx context.Context, a *attempt) answer {
		in := a.Instance
		var err error
		waited := false
		ok := poll(ctx, w.cfg.Now, w.cfg.Now().Add(w.cfg.SlotWait), slotPause, func() bool {
			var got bool
			got, err = w.starter.Start(ctx, a.ID, a.Payload, a.Number, in.capacity, w.cfg.SlotLease)
			if err != nil {
				return true // stop polling: Redis is not answering
			}
			if !got && !waited {
				waited = true
				w.metrics.LimiterWaits.WithLabelValues(in.name, "concurrency").Inc()
			}
			return got
		})
		switch {
		case err != nil:
			return answer{NotStarted: true, RetryAfter: w.cfg.RetryBase, RedisDown: true}
		case !ok:
			return answer{NotStarted: true, RetryAfter: handBack}
		}
		return next(ctx, a)
	}
}

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
	return answer{Result: res, Err: err}
}
