package api

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/preflight"
)

// GET /v1/instances/{name}/check: 200 with the preflight whether the server
// passes or not, 404 for an instance that is not configured.
func TestCheckInstance(t *testing.T) {
	t.Parallel()
	e := newEnv(t)

	w := e.do(http.MethodGet, "/v1/instances/default/check", "")
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	var r preflight.Result
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &r))
	require.True(t, r.OK, "%+v", r)
	require.Equal(t, "default", r.Instance)
	require.Equal(t, "2026.7.1", r.Version)
	require.True(t, *r.KeyAccepted)
	require.True(t, *r.KeyEnforced)
	require.Equal(t, map[string]int{"STOPPED": 1, "WORKING": 1}, r.Sessions)
	require.NotContains(t, w.Body.String(), "api-test-key-1")

	w = e.do(http.MethodGet, "/v1/instances/eu/check", "")
	require.Equal(t, http.StatusOK, w.Code)
	r = preflight.Result{}
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &r))
	require.False(t, r.OK)
	require.False(t, r.Reachable)
	require.Contains(t, r.Problems[0], "unreachable")

	w = e.do(http.MethodGet, "/v1/instances/nosuch/check", "")
	require.Equal(t, http.StatusNotFound, w.Code)
	require.Contains(t, w.Body.String(), `no instance named \"nosuch\" is configured; the configured ones are default, eu`)

	// Without a preflight configured the route is not served.
	e = newEnv(t, func(c *Config) { c.Preflight = nil })
	require.Equal(t, http.StatusNotFound, e.do(http.MethodGet, "/v1/instances/default/check", "").Code)
}
