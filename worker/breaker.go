package worker

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/wahaq/wahaq/internal/store"
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

// newBreaker returns instance's breaker; callTimeout bounds its trial call.
func (w *Worker) newBreaker(instance string, callTimeout time.Duration) *breaker {
	b := &breaker{}
	rep := &circuitReporter{w: w, instance: instance}
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
				// Reports are on the Store's clock, which trims them.
				rep.report(store.CircuitOpen, w.cfg.Now().Add(BreakerOpen))
			case gobreaker.StateHalfOpen:
				gauge.Set(circuitHalfOpen)
				// The trial call ends within the call timeout (BreakerOpen
				// more for the wait on the rate limit or a slot); a report
				// that outlives it without a new one is stale.
				rep.report(store.CircuitHalfOpen, w.cfg.Now().Add(callTimeout+BreakerOpen))
			default:
				gauge.Set(circuitClosed)
				rep.report(store.CircuitClosed, time.Time{})
			}
			w.log.Warn().Str("instance", name).Str("from", from.String()).Str("to", to.String()).Msg("circuit breaker changed state")
		},
	})
	return b
}

// circuitReportTimeout bounds one write of a breaker's state to Redis.
const circuitReportTimeout = 2 * time.Second

// circuitReporter writes one breaker's state changes into Redis
// (store.ReportCircuit) for processes without the breaker, the console's.
// gobreaker calls OnStateChange holding its lock, so the write runs in a
// goroutine; each goroutine writes the latest state under mu, so writes
// that run out of order still leave the last change in Redis. A failed
// write is logged at debug and changes nothing else: the report is advice
// for operators, the breaker itself is local.
type circuitReporter struct {
	w        *Worker
	instance string

	latest atomic.Pointer[circuitChange]
	mu     sync.Mutex // serializes writes
}

// circuitChange is a breaker state and when the report of it ends.
type circuitChange struct {
	state store.CircuitState
	until time.Time
}

func (r *circuitReporter) report(st store.CircuitState, until time.Time) {
	r.latest.Store(&circuitChange{state: st, until: until})
	r.w.reports.Add(1)
	go func() {
		defer r.w.reports.Done()
		r.mu.Lock()
		defer r.mu.Unlock()
		c := r.latest.Load()
		ctx, cancel := context.WithTimeout(context.Background(), circuitReportTimeout)
		defer cancel()
		if err := r.w.store.ReportCircuit(ctx, r.instance, r.w.id, c.state, c.until); err != nil {
			r.w.log.Debug().Err(err).Str("instance", r.instance).Msg("could not report the circuit breaker's state")
		}
	}()
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
		if err != nil && a.taken != nil && a.taken.Code == store.StartStarted {
			// Started by the take script while the breaker was closed
			// (take.go): the call goes ahead, as one already in flight
			// when the breaker opened, and does not count.
			return next(ctx, a)
		}
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
