package preflight_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/preflight"
	"github.com/wahaq/wahaq/wahaclient/wahafake"
)

// All checks every server, in configuration order; a key this process
// lacks is a problem of its own; no configured key reaches a result, even
// one a server echoes.
func TestChecker(t *testing.T) {
	t.Parallel()
	good := wahafake.NewT(t, wahafake.Options{CurrentLine: true, APIKey: "key-of-good-0123"})
	echo := wahafake.NewT(t, wahafake.Options{APIKey: "key-of-echo-4567"})
	echo.SetAPIKey("rotated")
	c := preflight.New([]preflight.Target{
		{Name: "good", BaseURL: good.URL(), APIKey: "key-of-good-0123", APIKeyEnv: "GOOD_KEY"},
		{Name: "missing", BaseURL: good.URL() + "/", APIKeyEnv: "MISSING_KEY"},
		{Name: "echo", BaseURL: "http://u:url-pass-89ab@" + echo.URL()[len("http://"):], APIKey: "key-of-echo-4567"},
	}, 0)
	require.Equal(t, []string{"good", "missing", "echo"}, c.Instances())
	rs := c.All(context.Background())
	require.Len(t, rs, 3)
	require.Equal(t, "good", rs[0].Instance)
	require.True(t, rs[0].OK, "%+v", rs[0])

	require.Equal(t, "missing", rs[1].Instance)
	require.False(t, rs[1].OK)
	require.Contains(t, rs[1].Problems, "its key is not in this process's environment (MISSING_KEY is unset or empty): the key could not be checked; run the check with the worker's settings")

	require.Equal(t, "echo", rs[2].Instance)
	require.Equal(t, echo.URL(), rs[2].BaseURL, "no user info")
	require.False(t, rs[2].OK)
	for _, s := range append(rs[2].Problems, rs[2].Warnings...) {
		require.NotContains(t, s, "key-of-echo")
		require.NotContains(t, s, "url-pass")
	}

	_, ok := c.Check(context.Background(), "nosuch")
	require.False(t, ok)
}
