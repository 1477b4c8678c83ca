package worker

import (
	"testing"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/stretchr/testify/require"
)

// TestRateLimit: the limit spaces starts by exactly 1/rate, fractional rates
// included (2.5/s used to be truncated to 2/s).
func TestRateLimit(t *testing.T) {
	t.Parallel()
	require.Nil(t, rateLimit(0))
	for _, c := range []struct {
		rate     float64
		interval time.Duration
		burst    int
	}{
		{0.5, 2 * time.Second, 1},
		{1, time.Second, 1},
		{2, 500 * time.Millisecond, 2},
		{2.5, 400 * time.Millisecond, 3},
		{10, 100 * time.Millisecond, 10},
		{12.5, 80 * time.Millisecond, 13},
	} {
		l := rateLimit(c.rate)
		require.NotNil(t, l)
		require.Equal(t, c.burst, l.Burst, "rate %v", c.rate)
		require.InDelta(t, c.interval, emission(*l), float64(time.Microsecond), "rate %v", c.rate)
	}
}

// emission is the time between two starts redis_rate allows.
func emission(l redis_rate.Limit) time.Duration { return l.Period / time.Duration(l.Rate) }
