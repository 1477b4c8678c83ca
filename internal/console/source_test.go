package console

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRate(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	s := &source{now: func() time.Time { return now }, samples: map[string][]sample{}}
	require.Negative(t, s.rate("a", 100), "one sample: unknown")
	now = now.Add(30 * time.Second)
	require.InDelta(t, 120, s.rate("a", 160), 0.001, "60 attempts in 30 s")
	now = now.Add(90 * time.Second)
	require.Negative(t, s.rate("a", 160), "samples older than a minute are dropped")
	now = now.Add(2 * time.Second)
	require.InDelta(t, 0, s.rate("a", 160), 0.001, "nothing finished in the last two seconds")
	now = now.Add(time.Second)
	require.Negative(t, s.rate("a", 10), "a counter that went back (reset) is unknown")
	require.Negative(t, s.rate("b", 5), "servers are sampled apart")
}

func TestFormat(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		0: "0s", 850 * time.Millisecond: "850ms", 42 * time.Second: "42s", 200 * time.Second: "3m 20s",
		5*time.Hour + 2*time.Minute: "5h 02m", 76 * time.Hour: "3d 4h",
	} {
		require.Equal(t, want, fmtDur(d))
	}
	require.Equal(t, "—", fmtRate(-1))
	require.Equal(t, "42/min", fmtRate(42))
	require.Equal(t, "5/s", fmtRate(300))
	require.Equal(t, 33, pct(1, 3))
	require.Zero(t, pct(0, 0))
	require.Equal(t, "1 task", countOf(1, "task"))
	require.Equal(t, "0 dead letters", letters(0))
}
