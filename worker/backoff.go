package worker

import (
	"errors"
	"math/rand/v2"
	"time"

	"github.com/hibiken/asynq"
)

// errThrottled marks an attempt that did not start because its server's
// concurrency cap or rate was reached. It is not a failure: asynq is told so
// through IsFailure, and no retry is spent.
var errThrottled = errors.New("waiting for the instance's concurrency or rate limit")

// retryError carries the delay before the next attempt, computed when the
// attempt was recorded so the record's next_attempt_at and asynq's schedule
// agree.
type retryError struct {
	err   error
	delay time.Duration
	// at, when set, is the next_attempt_at written in the record (a whole
	// second, see dueTime); it wins over delay.
	at time.Time
}

// dueTime rounds t up to a whole second. asynq keeps a retry's time in whole
// Unix seconds, truncated, and runs the task as soon as that second begins:
// up to a second before the time it was given, which would break a server's
// Retry-After and the RetryBase floor. A time that is a whole second already
// is kept, so asynq runs the task at it and never before.
func dueTime(t time.Time) time.Time {
	if r := t.Truncate(time.Second); !r.Equal(t) {
		return r.Add(time.Second)
	}
	return t
}

func (e *retryError) Error() string { return e.err.Error() }
func (e *retryError) Unwrap() error { return e.err }

// backoff returns the delay before retry n (n = 1 for the first retry):
// exponential from base, capped at max, with "equal jitter" (a random point in
// the upper half) so workers that failed together do not retry together, and
// never below base.
func backoff(n int, base, max time.Duration) time.Duration {
	d := base
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	half := d / 2
	j := half + time.Duration(rand.Int64N(int64(half)+1))
	if j < base {
		j = base
	}
	return j
}

// retryDelay is asynq's RetryDelayFunc: the delay carried by the error, or
// plain backoff for errors that did not come from the policy (a panic, an
// expired lease).
func (w *Worker) retryDelay(n int, err error, _ *asynq.Task) time.Duration {
	var re *retryError
	if errors.As(err, &re) {
		if !re.at.IsZero() {
			// asynq adds this to its own clock, read a moment later than
			// ours, so its truncated retry time is never before re.at.
			return max(re.at.Sub(w.cfg.Now()), 0)
		}
		return re.delay
	}
	return backoff(n+1, w.cfg.RetryBase, w.cfg.RetryMax)
}

// isFailure is asynq's IsFailure: waiting for a slot is not a failure.
func isFailure(err error) bool { return !errors.Is(err, errThrottled) }
