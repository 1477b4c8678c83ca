package worker

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/go-redis/redis_rate/v10"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/base"
	"github.com/wahaq/wahaq/internal/metrics"
	"github.com/wahaq/wahaq/wahaclient"
)

// Fakes of the steps' collaborators.

type fakeLimiter struct {
	res *redis_rate.Result
	err error
	key string
}

func (f *fakeLimiter) Allow(_ context.Context, key string, _ redis_rate.Limit) (*redis_rate.Result, error) {
	f.key = key
	return f.res, f.err
}

// fakeStarter answers Start with its replies in turn, the last one for ever.
type fakeStarter struct {
	mu      sync.Mutex
	replies []bool
	err     error
	calls   int
	cap     int
}

func (f *fakeStarter) Start(_ context.Context, _ string, _ base.Payload, _, capacity int, _ time.Duration) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	f.cap = capacity
	if f.err != nil {
		return false, f.err
	}
	r := f.replies[min(f.calls-1, len(f.replies)-1)]
	return r, nil
}

type fakeChecker struct{ err error }

func (f fakeChecker) Check(context.Context) error { return f.err }

// stepWorker is a Worker with fakes and a clock the test moves.
func stepWorker(t *testing.T) (*Worker, *time.Time) {
	t.Helper()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	w := &Worker{cfg: Config{RetryBase: time.Second, SlotWait: time.Second, SlotLease: time.Minute,
		Now: func() time.Time { return now }}, metrics: metrics.New(nil)}
	return w, &now
}

func stepAttempt() *attempt {
	return &attempt{ID: "id1", Number: 1, Payload: base.Payload{Instance: "eu", Session: "s1", MaxRetries: 3},
		Instance: &instance{name: "eu", capacity: 2, limit: rateLimit(5), rateKey: "rate-key"}}
}

// reached is an inner step that records it ran.
func reached(ran *bool) step {
	return func(context.Context, *attempt) answer { *ran = true; return answer{} }
}

func TestLimitRateStep(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name    string
		lim     *fakeLimiter
		noLimit bool
		want    answer
		next    bool
	}{
		{"allowed", &fakeLimiter{res: &redis_rate.Result{Allowed: 1}}, false, answer{}, true},
		{"no rate configured", &fakeLimiter{err: errors.New("must not be called")}, true, answer{}, true},
		{"over the rate: handed back, no retry spent", &fakeLimiter{res: &redis_rate.Result{Allowed: 0, RetryAfter: 300 * time.Millisecond}}, false,
			answer{NotStarted: true, RetryAfter: 300 * time.Millisecond}, false},
		{"Redis down", &fakeLimiter{err: errors.New("connection refused")}, false,
			answer{NotStarted: true, RetryAfter: time.Second, RedisDown: true}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			w, _ := stepWorker(t)
			w.rate = c.lim
			a := stepAttempt()
			if c.noLimit {
				a.Instance.limit = nil
			}
			var ran bool
			got := w.limitRate(reached(&ran))(context.Background(), a)
			require.Equal(t, c.want, got)
			require.Equal(t, c.next, ran)
			if !c.noLimit {
				require.Equal(t, "rate-key", c.lim.key)
			}
		})
	}
}

func TestStartStep(t *testing.T) {
	t.Parallel()
	t.Run("a free slot: the next step runs", func(t *testing.T) {
		t.Parallel()
		w, _ := stepWorker(t)
		st := &fakeStarter{replies: []bool{true}}
		w.starter = st
		var ran bool
		require.Equal(t, answer{}, w.start(reached(&ran))(context.Background(), stepAttempt()))
		require.True(t, ran)
		require.Equal(t, 2, st.cap, "the instance's cap")
		require.Zero(t, counter(t, w.metrics.LimiterWaits.WithLabelValues("eu", "concurrency")))
	})
	t.Run("cap full: handed back at once, without waiting", func(t *testing.T) {
		t.Parallel()
		w, _ := stepWorker(t)
		st := &fakeStarter{replies: []bool{false, true}}
		w.starter = st
		var ran bool
		got := w.start(reached(&ran))(context.Background(), stepAttempt())
		require.Equal(t, answer{NotStarted: true}, got)
		require.False(t, ran)
		require.Equal(t, 1, st.calls, "one try: the queue's gate, not the handler, waits for a slot")
		require.Equal(t, 1.0, counter(t, w.metrics.LimiterWaits.WithLabelValues("eu", "concurrency")))
	})
	t.Run("Redis down", func(t *testing.T) {
		t.Parallel()
		w, _ := stepWorker(t)
		w.starter = &fakeStarter{err: errors.New("connection refused")}
		var ran bool
		got := w.start(reached(&ran))(context.Background(), stepAttempt())
		require.Equal(t, answer{NotStarted: true, RetryAfter: time.Second, RedisDown: true}, got)
		require.False(t, ran)
	})
}

func TestValidateStep(t *testing.T) {
	t.Parallel()
	w, _ := stepWorker(t)
	var ran bool
	require.Equal(t, answer{}, w.validate(reached(&ran))(context.Background(), stepAttempt()), "no validator configured")
	require.True(t, ran)

	w.validator = fakeChecker{}
	ran = false
	require.Equal(t, answer{}, w.validate(reached(&ran))(context.Background(), stepAttempt()))
	require.True(t, ran)

	w.validator = fakeChecker{err: wahaclient.ErrUnauthorized}
	ran = false
	got := w.validate(reached(&ran))(context.Background(), stepAttempt())
	require.ErrorIs(t, got.Err, wahaclient.ErrUnauthorized)
	require.False(t, got.NotStarted, "a refused key is an answer, for the policy to classify")
	require.False(t, ran)
}

// TestChainOrder: the steps run outermost first, and one that answers stops
// the chain.
func TestChainOrder(t *testing.T) {
	t.Parallel()
	var order []string
	mw := func(name string, stop bool) middleware {
		return func(next step) step {
			return func(ctx context.Context, a *attempt) answer {
				order = append(order, name)
				if stop {
					return answer{NotStarted: true}
				}
				return next(ctx, a)
			}
		}
	}
	inner := func(context.Context, *attempt) answer { order = append(order, "inner"); return answer{} }
	chain(inner, mw("a", false), mw("b", false))(context.Background(), stepAttempt())
	require.Equal(t, []string{"a", "b", "inner"}, order)
	order = nil
	require.True(t, chain(inner, mw("a", true), mw("b", false))(context.Background(), stepAttempt()).NotStarted)
	require.Equal(t, []string{"a"}, order)
}

func TestPoll(t *testing.T) {
	t.Parallel()
	now := time.Now()
	clock := func() time.Time { return now }
	n := 0
	require.True(t, poll(context.Background(), clock, time.Time{}, pauses{time.Microsecond, time.Microsecond}, func() bool { n++; return n == 3 }))
	require.Equal(t, 3, n)
	n = 0
	require.False(t, poll(context.Background(), clock, now.Add(-time.Second), slotPause, func() bool { n++; return false }), "past until")
	require.Equal(t, 1, n, "tried once")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.False(t, poll(ctx, clock, time.Time{}, redisPause, func() bool { return false }))
}

// counter reads a counter's value.
func counter(t *testing.T, c interface{ Write(*dto.Metric) error }) float64 {
	t.Helper()
	var m dto.Metric
	require.NoError(t, c.Write(&m))
	return m.GetCounter().GetValue()
}
