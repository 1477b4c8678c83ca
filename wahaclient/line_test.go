package wahaclient_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/wahaclient"
	"github.com/wahaq/wahaq/wahaclient/wahafake"
)

// TestObservedChecksOnCurrentLine runs the client's side of the six
// checks that passed against a real WAHA Core 2024.10.8 (waha-api.md,
// "Observed on a real server") against the fake playing the current line,
// with its required key: a fresh listing, GET of default, a logout of a
// STOPPED and of a running session, Core's 422 for another name, and the
// fallback to the deprecated route (201, no body, the session deleted).
func TestObservedChecksOnCurrentLine(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	line := func(o wahafake.Options) (*wahafake.Server, *wahaclient.Client) {
		o.CurrentLine = true
		srv := wahafake.NewT(t, o)
		_, err := newClient(t, srv.URL(), "").ListSessions(ctx, true)
		require.ErrorIs(t, err, wahaclient.ErrUnauthorized, "the current line requires a key")
		return srv, newClient(t, srv.URL(), srv.APIKey())
	}

	_, c := line(wahafake.Options{})
	list, err := c.ListSessions(ctx, true) // 1
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Equal(t, "default", list[0].Name)
	require.Equal(t, "STOPPED", list[0].Status)
	s, err := c.GetSession(ctx, "default") // 2
	require.NoError(t, err)
	require.Equal(t, "STOPPED", s.Status)
	res, err := c.Logout(ctx, "default") // 3
	require.NoError(t, err)
	require.Equal(t, 201, res.HTTPStatus)
	require.Equal(t, "STOPPED", res.Session.Status)

	_, c = line(wahafake.Options{Sessions: 1})
	res, err = c.Logout(ctx, "session-0001") // 4
	require.NoError(t, err)
	require.Equal(t, "STARTING", res.Session.Status)
	require.Nil(t, res.Session.Me)

	_, c = line(wahafake.Options{Core: true})
	_, err = c.Logout(ctx, "nosuch") // 5
	require.ErrorIs(t, err, wahaclient.ErrRejected)
	require.ErrorContains(t, err, "422")

	srv, c := line(wahafake.Options{Legacy: true})
	res, err = c.Logout(ctx, "default") // 6
	require.NoError(t, err)
	require.True(t, res.Deprecated)
	require.Nil(t, res.Session)
	_, err = c.GetSession(ctx, "default")
	require.ErrorIs(t, err, wahaclient.ErrSessionNotFound)
	_, ok := srv.Session("default")
	require.False(t, ok)
}
