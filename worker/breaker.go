package worker

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/wahaq/wahaq/wahaclient"
)

// Circuit breaker settings. A server whose calls keep failing transiently
// (timeouts, refused connections, 5xx) is not called for a while: its tasks
// are handed back to the queue at once, spending no retry, instead of each
// holding a worker slot until its call times out.
//
// The breaker is per worker process, not shared in Redis: its state is read
// on every task and a shared one would cost a Redis round trip per task
// (issue 14's budget); each process sees the server from its own network
// position; and a server that fails for one process fails for the others
// within BreakerFailures calls each, so N workers spend at most N ×
// BreakerFailures calls on a dead server per BreakerOpen.
const (
	// BreakerFailures is how many transient failures in a row open a
	// server's breaker.
	BreakerFailures = 5
	// BreakerOpen is how long an open breaker keeps its server's tasks
	// from being called; then one trial call (half-open) decides whether it
	// closes or opens again.
	BreakerOpen = 5 * time.Second
)

// Circuit states as wahaq_circuit_state reports them.
const (
	circuitClosed   = 0
	circuitHalfOpen = 1
	circuitOpen     = 2
)

// errNotCalled is what the breaker is told when an attempt never reached
// the server (its cap was full, or the validation service refused): it
// counts neither as a success nor as a failure.
var errNotCalled = errors.New("the server was not called")

// breaker is one server's circuit breaker.
type breaker struct {
	cb *gobreaker.TwoStepCircuitBreaker[struct{}]
	// openUntil is when the open state ends (Unix ns), for the delay of the
	// tasks it hands back.
	openUntil atomic.Int64
}

func (w *Worker) newBreaker(instance string) *breaker {
	b := &breaker{}
	gauge := w.metrics.CircuitState.WithLabelValues(instance)
	gauge.Set(circuitClosed)
	b.cb = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        instance,
		MaxRequests: 1,
		Timeout:     BreakerOpen,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= BreakerFailures },
		IsSuccessful: func(err error) bool {
			return err == nil || !breakerFailure(err)
		},
		IsExcluded: func(err error) bool { return errors.Is(err, errNotCalled) },
		OnStateChange: func(name string, from, to gobreaker.State) {
			switch to {
			case gobreaker.StateOpen:
				b.openUntil.Store(time.Now().Add(BreakerOpen).UnixNano())
				gauge.Set(circuitOpen)
			case gobreaker.StateHalfOpen:
				gauge.Set(circuitHalfOpen)
			default:
				gauge.Set(circuitClosed)
			}
			w.log.Warn().Str("instance", name).Str("from", from.String()).Str("to", to.String()).Msg("circuit breaker changed state")
		},
	})
	return b
}

// breakerFailure reports whether err says the server is unwell: a timeout,
// a connection error or a 5xx (wahaclient's ErrTransient). A 401, 404 or 422
// is the server answering, and a canceled context is this worker stopping.
func breakerFailure(err error) bool {
	if errors.Is(err, context.Canceled) {
		return false
	}
	return errors.Is(err, wahaclient.ErrTransient) || errors.Is(err, context.DeadlineExceeded)
}

// circuit is the outermost limit: a server whose breaker is open has its
// task handed back before it takes a slot, spending no retry.
func (w *Worker) circuit(next step) step {
	return func(ctx context.Context, a *attempt) answer {
		b := a.Instance.breaker
		done, err := b.cb.Allow()
		if err != nil {
			w.metrics.LimiterWaits.WithLabelValues(a.Instance.name, "circuit").Inc()
			// Come back when the breaker lets a trial call through, spread
			// over a second so the queue does not arrive at once.
			wait := time.Until(time.Unix(0, b.openUntil.Load()))
			return answer{NotStarted: true, RetryAfter: max(wait, 0) + rand.N(time.Second)}
		}
		ans := next(ctx, a)
		switch {
		case ans.NotStarted || !ans.Called:
			done(errNotCalled)
		default:
			done(ans.Err)
		}
		return ans
	}
}
