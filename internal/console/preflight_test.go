package console_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/console"
	"github.com/wahaq/wahaq/internal/preflight"
	"github.com/wahaq/wahaq/wahaclient/wahafake"
	"github.com/wahaq/wahaq/wahaqtest"
)

// The overview offers each server's preflight, runs it only when asked,
// and then shows its last result.
func TestOverviewPreflight(t *testing.T) {
	t.Parallel()
	env := wahaqtest.Start(t, wahaqtest.Options{Fake: wahafake.Options{Core: true}, NoStart: true})
	srv := serve(t, env, func(cfg *console.Config) {
		cfg.Preflight = preflight.New([]preflight.Target{{Name: env.Instance, BaseURL: env.Fake.URL(), NoKey: true}}, 0)
	})
	c := client(t)
	_, _ = signIn(t, c, srv.URL, token, nil)
	_, body := get(t, c, srv.URL+"/ui/")
	require.Contains(t, body, `<a href="/ui/instances/`+env.Instance+`/check">check now</a>`)
	require.Zero(t, env.Fake.Stats().TotalLogoutCalls)

	resp, body := get(t, c, srv.URL+"/ui/instances/"+env.Instance+"/check")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, body, "Preflight of "+env.Instance)
	require.Contains(t, body, ">passed<")
	require.Contains(t, body, "<dd>"+wahafake.ObservedVersion+"</dd>")
	require.Contains(t, body, "this server accepts any key, so a wrong key will not be detected")
	require.Contains(t, body, "<dt>STOPPED</dt><dd>1</dd>")

	_, body = get(t, c, srv.URL+"/ui/")
	require.Contains(t, body, ">passed</span>")
	require.Contains(t, body, "WAHA "+wahafake.ObservedVersion)
	require.Contains(t, body, "<strong>accepts any key</strong>")
	require.Contains(t, body, ">check again</a>")

	resp, _ = get(t, c, srv.URL+"/ui/instances/nosuch/check")
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	resp, _ = get(t, client(t), srv.URL+"/ui/instances/"+env.Instance+"/check")
	require.NotEqual(t, http.StatusOK, resp.StatusCode, "signed-in only")

	// Without a preflight, nothing is offered.
	plain := serve(t, env, nil)
	c = client(t)
	_, _ = signIn(t, c, plain.URL, token, nil)
	_, body = get(t, c, plain.URL+"/ui/")
	require.NotContains(t, body, "check now")
}
