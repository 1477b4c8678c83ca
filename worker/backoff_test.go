package worker

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestBackoffBounds(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ base, max time.Duration }{
		{10 * time.Millisecond, 50 * time.Millisecond},
		{2 * time.Second, 10 * time.Minute},
		{time.Second, time.Second},
		{time.Nanosecond, time.Microsecond},
	} {
		t.Run(fmt.Sprintf("%s..%s", c.base, c.max), func(t *testing.T) {
			for n := 1; n <= 64; n++ {
				for range 50 {
					d := backoff(n, c.base, c.max)
					require.GreaterOrEqual(t, d, c.base, "retry %d", n)
					require.LessOrEqual(t, d, c.max, "retry %d", n)
				}
			}
		})
	}
}

// TestBackoffGrows: retry n draws from [d/2, d] with d = base·2^(n-1), so
// until the cap every delay of retry n+1 is at least every delay of retry n,
// and at the cap the delays stay in the upper half below max.
func TestBackoffGrows(t *testing.T) {
	t.Parallel()
	base, maxD := 100*time.Millisecond, 10*time.Second
	prevMax := time.Duration(0)
	for n := 1; n <= 20; n++ {
		d := base << (n - 1)
		capped := d >= maxD
		if capped {
			d = maxD
		}
		lo, hi := max(d/2, base), d
		curMin, curMax := time.Duration(1<<62), time.Duration(0)
		for range 500 {
			v := backoff(n, base, maxD)
			require.GreaterOrEqual(t, v, lo, "retry %d", n)
			require.LessOrEqual(t, v, hi, "retry %d", n)
			curMin, curMax = min(curMin, v), max(curMax, v)
		}
		if !capped {
			require.GreaterOrEqual(t, curMin, prevMax, "retry %d must not wait less than retry %d", n, n-1)
		}
		prevMax = curMax
	}
	// Jitter: 500 draws at the cap are not all the same.
	seen := map[time.Duration]bool{}
	for range 500 {
		seen[backoff(30, base, maxD)] = true
	}
	require.Greater(t, len(seen), 1)
}

func TestDueTime(t *testing.T) {
	t.Parallel()
	whole := time.Date(2025, 1, 1, 0, 0, 7, 0, time.UTC)
	require.Equal(t, whole, dueTime(whole))
	require.Equal(t, whole.Add(time.Second), dueTime(whole.Add(time.Nanosecond)))
	require.Equal(t, whole.Add(time.Second), dueTime(whole.Add(999*time.Millisecond)))
	for i := range 1000 {
		at := whole.Add(time.Duration(i) * 1234567 * time.Nanosecond)
		d := dueTime(at)
		require.False(t, d.Before(at))
		require.Less(t, d.Sub(at), time.Second)
		require.Zero(t, d.Nanosecond())
	}
}

// TestRetryDelayNeverEarly: asynq truncates now+delay to whole Unix seconds
// and runs the task when that second begins. With the delay retryDelay
// gives, that moment is never before the record's next_attempt_at.
func TestRetryDelayNeverEarly(t *testing.T) {
	t.Parallel()
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 2000 {
		now := start.Add(time.Duration(i) * 7919 * time.Microsecond)
		w := testWorker(now)
		delay := backoff(1+i%5, 10*time.Millisecond, 3*time.Second)
		next := dueTime(now.Add(delay))
		d := w.retryDelay(0, &retryError{err: errors.New("503"), delay: delay, at: next}, nil)
		runsAt := time.Unix(now.Add(d).Unix(), 0) // what asynq does with it
		require.False(t, runsAt.Before(next), "now %s delay %s: asynq would run at %s, before %s", now, delay, runsAt, next)
		require.False(t, runsAt.Before(now.Add(delay)))
	}
	// Without a recorded time (a throttled hand-back) the delay is used as is.
	w := testWorker(start)
	require.Equal(t, 100*time.Millisecond, w.retryDelay(0, &retryError{err: errThrottled, delay: 100 * time.Millisecond}, nil))
	// Errors that did not come from the policy get plain backoff.
	d := w.retryDelay(2, errors.New("panic"), nil)
	require.GreaterOrEqual(t, d, w.cfg.RetryBase)
	require.LessOrEqual(t, d, w.cfg.RetryMax)
}

func TestIsFailure(t *testing.T) {
	t.Parallel()
	require.False(t, isFailure(&retryError{err: errThrottled}), "waiting for a slot is not a failure")
	require.False(t, isFailure(errThrottled))
	require.True(t, isFailure(&retryError{err: errors.New("503")}))
	require.True(t, isFailure(errors.New("boom")))
}
