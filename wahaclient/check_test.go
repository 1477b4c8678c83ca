package wahaclient_test

import (
	"context"
	"net"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/wahaclient"
	"github.com/wahaq/wahaq/wahaclient/wahafake"
)

func TestCheck(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	yes, no := true, false

	// A healthy server of the current line.
	cur := wahafake.NewT(t, wahafake.Options{CurrentLine: true, APIKey: "good-key", Sessions: 2})
	cur.AddSession("stopped-1", wahafake.StatusStopped)
	ch := newClient(t, cur.URL(), "good-key").Check(ctx)
	require.True(t, ch.OK(), "%+v", ch)
	require.True(t, ch.Reachable)
	require.Equal(t, wahafake.CurrentVersion, ch.Version)
	require.Equal(t, &yes, ch.KeyAccepted)
	require.Equal(t, &yes, ch.KeyEnforced)
	require.Equal(t, map[string]int{"WORKING": 2, "STOPPED": 2}, ch.Sessions)
	require.Equal(t, 4, ch.SessionsTotal)
	require.NotNil(t, ch.RoundTripMS)
	require.Empty(t, ch.Warnings)
	require.Zero(t, cur.TotalLogoutCalls(), "a check never logs out")

	// A server that accepts any key says so plainly, and is still fit.
	old := wahafake.NewT(t, wahafake.Options{Core: true})
	ch = newClient(t, old.URL(), "whatever").Check(ctx)
	require.True(t, ch.OK(), "%+v", ch)
	require.Equal(t, wahafake.ObservedVersion, ch.Version)
	require.Equal(t, &yes, ch.KeyAccepted)
	require.Equal(t, &no, ch.KeyEnforced)
	require.Equal(t, []string{"this server accepts any key: a call with a wrong key succeeded, so a wrong key will not be detected (WAHA 2024.10.x, or WAHA_NO_API_KEY=True)"}, ch.Warnings)

	// A wrong key: 401, a problem.
	ch = newClient(t, cur.URL(), "wrong-key").Check(ctx)
	require.False(t, ch.OK())
	require.True(t, ch.Reachable)
	require.Equal(t, &no, ch.KeyAccepted)
	require.Equal(t, &yes, ch.KeyEnforced)
	require.Nil(t, ch.Sessions)
	require.Equal(t, []string{"the server refuses the configured key (401): check the key, or the variable its api_key_env names"}, ch.Problems)
	ch = newClient(t, cur.URL(), "").Check(ctx)
	require.Equal(t, []string{"the server requires a key and none is configured (401)"}, ch.Problems)

	// A scoped key: accepted, but it cannot list.
	cur.AddKey(wahafake.Key{Key: "scoped", Sessions: []string{"session-0001"}, Actions: []string{"control"}})
	ch = newClient(t, cur.URL(), "scoped").Check(ctx)
	require.True(t, ch.OK(), "%+v", ch)
	require.Equal(t, &yes, ch.KeyAccepted)
	require.Contains(t, ch.Warnings[0], "the key is scoped to sessions")

	// A server that is down.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	ch = newClient(t, "http://"+addr, "k").Check(ctx)
	require.False(t, ch.OK())
	require.False(t, ch.Reachable)
	require.Nil(t, ch.KeyAccepted)
	require.Nil(t, ch.KeyEnforced)
	require.Nil(t, ch.RoundTripMS)
	require.Len(t, ch.Problems, 1)
	require.Contains(t, ch.Problems[0], "unreachable: waha version: ")

	// The key never shows in what a check says.
	srv := wahafake.NewT(t, wahafake.Options{APIKey: "secret-key-0123456789"})
	srv.SetDefaultFault(&wahafake.Fault{Status: 500})
	c, err := wahaclient.New(wahaclient.Config{BaseURL: srv.URL(), APIKey: "wrong-secret-key-0123"})
	require.NoError(t, err)
	ch = c.Check(ctx)
	for _, s := range append(ch.Problems, ch.Warnings...) {
		require.NotContains(t, s, "secret-key-0123")
	}
}
