package console_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/audit"
	"github.com/wahaq/wahaq/tasks"
	"github.com/wahaq/wahaq/wahaclient/wahafake"
	"github.com/wahaq/wahaq/wahaqtest"
)

// TestTeardownRoles: the pause button and the New teardown link show only
// for tokens that may use them; a forged pause or teardown of a token
// without the role is refused, changes nothing and is in the audit log;
// a pause of an operate token is recorded with its name.
func TestTeardownRoles(t *testing.T) {
	t.Parallel()
	env := wahaqtest.Start(t, wahaqtest.Options{NoStart: true})
	names := env.Fake.AddSessions("tr", 3, wahafake.StatusWorking)
	info, err := env.Producer.EnqueueBatch(context.Background(), tasks.BatchRequest{Sessions: names, When: tasks.When{In: time.Hour}})
	require.NoError(t, err)
	var log *audit.Log
	srv := serve(t, env, withRoles(env, &log))
	batchURL := srv.URL + "/ui/batches/" + info.BatchID
	paused := func() bool {
		b, err := env.Inspector.Batch(context.Background(), info.BatchID)
		require.NoError(t, err)
		return b.Paused
	}

	viewer := client(t)
	_, csrf := signIn(t, viewer, srv.URL, readToken, nil)
	_, body := get(t, viewer, batchURL)
	require.NotContains(t, body, "Pause the batch")
	require.NotContains(t, body, `href="/ui/teardown"`)
	resp, body := post(t, viewer, batchURL+"/pause", url.Values{"csrf": {csrf}}, nil)
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	require.Contains(t, body, "needs role operate")
	require.False(t, paused())
	resp, body = post(t, viewer, srv.URL+"/ui/teardown", url.Values{"csrf": {csrf}, "server": {env.Instance}, "selection": {"all"},
		"action": {"start"}, "confirm_server": {env.Instance}}, nil)
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	require.Contains(t, body, "needs role operate")

	oncall := client(t)
	_, csrf = signIn(t, oncall, srv.URL, operateToken, nil)
	_, body = get(t, oncall, batchURL)
	require.Contains(t, body, "Pause the batch")
	require.Contains(t, body, `href="/ui/teardown"`)
	resp, _ = post(t, oncall, batchURL+"/pause", url.Values{"csrf": {csrf}}, nil)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, "back to the batch")
	require.True(t, paused())
	_, body = get(t, oncall, batchURL)
	require.Contains(t, body, "by oncall")

	bs, err := env.Inspector.RecentBatches(context.Background(), 0)
	require.NoError(t, err)
	require.Len(t, bs, 1, "the refused teardown started nothing")
	p, err := log.List(context.Background(), audit.Query{})
	require.NoError(t, err)
	var got []string
	for _, e := range p.Entries {
		got = append(got, e.Actor+" "+e.Action+" "+e.Outcome)
	}
	require.Equal(t, []string{"oncall batch.pause ok", "viewer batch.create refused", "viewer batch.pause refused"}, got)
	require.False(t, strings.Contains(strings.Join(got, " "), readToken))
}
