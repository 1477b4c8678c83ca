package config

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestShortDuration(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		24 * time.Hour: "24h", 10 * time.Minute: "10m", 2 * time.Second: "2s", 30 * time.Second: "30s",
		90 * time.Minute: "1h30m", 1500 * time.Millisecond: "1.5s", 10 * time.Millisecond: "10ms",
	} {
		require.Equal(t, want, shortDuration(d))
	}
}
