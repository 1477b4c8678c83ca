package bench

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRedisStatsRanking: the idle row's busiest commands go by calls, the
// Redis-cost row's by CPU µs; a command not called is left out.
func TestRedisStatsRanking(t *testing.T) {
	t.Parallel()
	s := redisStats{
		Commands: map[string]int64{"evalsha": 3, "hset": 5, "get": 1, "zadd": 0},
		Micros:   map[string]int64{"evalsha": 90, "hset": 10, "get": 2, "zadd": 7},
	}
	tests := []struct {
		name, got, want string
	}{
		{"top by calls", s.top(2), "hset=5 evalsha=3"},
		{"top, more asked than called", s.top(10), "hset=5 evalsha=3 get=1"},
		{"per call by µs, per unit", s.perCall(2, 2), "evalsha=1.50/45.0µs hset=2.50/5.0µs"},
		{"none asked", s.top(0), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, tc.got)
		})
	}
}
