package worker

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestSweepEvery: an idle delivery loop looks at each queue once a sweep,
// and at most deliverySweepRate queues a second however many servers the
// worker knows (issue 20: polling every queue every 200 ms made an idle
// worker's Redis calls grow with its servers).
func TestSweepEvery(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		queues int
		want   time.Duration
	}{
		{1, deliverySweep},
		{100, deliverySweep},
		{250, deliverySweep},
		{1000, 20 * time.Second},
	} {
		got := sweepEvery(tc.queues)
		require.Equal(t, tc.want, got, "%d queues", tc.queues)
		looks := float64(tc.queues) / got.Seconds()
		require.LessOrEqual(t, looks, float64(deliverySweepRate), "%d queues: looks a second", tc.queues)
	}
}
