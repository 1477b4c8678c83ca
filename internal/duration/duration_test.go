package duration

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParse(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"30m", 30 * time.Minute},
		{"1h30m", 90 * time.Minute},
		{"0s", 0},
		{"7d", 7 * Day},
		{"1d12h", 36 * time.Hour},
		{"1.5d", 36 * time.Hour},
		{"2D", 2 * Day},
		{"-5m", -5 * time.Minute},
		{"PT30M", 30 * time.Minute},
		{"P7D", 7 * Day},
		{"P1DT2H", 26 * time.Hour},
		{"P2W", 14 * Day},
		{"PT1H30M15S", time.Hour + 30*time.Minute + 15*time.Second},
		{"PT0.5S", 500 * time.Millisecond},
		{"PT1,5H", 90 * time.Minute},
		{"pt30m", 30 * time.Minute},
		{" PT30M ", 30 * time.Minute},
		{"PT0S", 0},
		{"-PT1M", -time.Minute},
	} {
		got, err := Parse(tc.in)
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.want, got, tc.in)
	}
}

func TestParseRefuses(t *testing.T) {
	t.Parallel()
	for _, in := range []string{
		"", "   ", "d", "P", "PT", "P1Y", "P1M", "P1DT", "PT1D", "P1H", "PT30M1H", "P1DT1HT1M",
		"30", "1x", "1d-2h", "--5m", "PT1e3S", "Pinf D", "PTNaNS", "1e400d", "300000000d", "P9999999999W",
		"1d1d", "abc", "P-1D", "PT.S",
	} {
		_, err := Parse(in)
		require.ErrorIs(t, err, ErrSyntax, "%q", in)
	}
}
