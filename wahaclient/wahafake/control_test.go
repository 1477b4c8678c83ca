package wahafake_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/wahaclient/wahafake"
)

func TestControlAPI(t *testing.T) {
	t.Parallel()
	srv := wahafake.NewT(t, wahafake.Options{APIKey: "k"})
	u := srv.URL()
	ok := `{"ok":true}`

	// The control API never needs the key.
	got := call(t, "POST", u+"/_fake/sessions", "", `{"prefix":"s","count":3,"status":"WORKING"}`)
	require.Equal(t, 200, got.status)
	require.JSONEq(t, `{"names":["s-0001","s-0002","s-0003"]}`, got.body)
	require.JSONEq(t, `{"names":["solo"]}`, call(t, "POST", u+"/_fake/sessions", "", `{"name":"solo","status":"STOPPED"}`).body)
	s, found := srv.Session("solo")
	require.True(t, found)
	require.Equal(t, "STOPPED", s.Status)

	require.Equal(t, ok, call(t, "POST", u+"/_fake/script", "", `{"session":"s-0001","faults":[{"status":503,"times":2,"retry_after":3},{"reset":true,"times":1},{"delay":"1ms","times":1}]}`).body)
	logout := u + "/api/sessions/s-0001/logout"
	a := call(t, "POST", logout, "k", "")
	require.Equal(t, 503, a.status)
	require.Equal(t, "3", a.header.Get("Retry-After"))
	require.Equal(t, 503, call(t, "POST", logout, "k", "").status)
	require.Equal(t, 201, func() int {
		// The reset: a fresh client sees an error, then the delay-only fault passes through.
		_, err := httpPost(logout, "k")
		require.Error(t, err)
		return call(t, "POST", logout, "k", "").status
	}())

	require.Equal(t, ok, call(t, "POST", u+"/_fake/default-fault", "", `{"status":401}`).body)
	require.Equal(t, 401, call(t, "POST", logout, "k", "").status)
	require.Equal(t, ok, call(t, "POST", u+"/_fake/default-fault", "", `null`).body)
	require.Equal(t, 201, call(t, "POST", logout, "k", "").status)

	require.Equal(t, ok, call(t, "POST", u+"/_fake/api-key", "", `{"key":"K2"}`).body)
	require.Equal(t, 401, call(t, "POST", logout, "k", "").status)
	require.Equal(t, 201, call(t, "POST", logout, "K2", "").status)

	require.Equal(t, ok, call(t, "POST", u+"/_fake/latency", "", `{"latency":"1ms"}`).body)
	require.Equal(t, ok, call(t, "POST", u+"/_fake/flaky", "", `{"session":"s-0002","rate":1,"status":502}`).body)
	require.Equal(t, 502, call(t, "POST", u+"/api/sessions/s-0002/logout", "K2", "").status)

	var st wahafake.Stats
	got = call(t, "GET", u+"/_fake/stats", "", "")
	require.Equal(t, 200, got.status)
	require.NoError(t, json.Unmarshal([]byte(got.body), &st))
	require.Equal(t, wahafake.Stats{
		LogoutCalls:      map[string]int{"s-0001": 8, "s-0002": 1},
		TotalLogoutCalls: 9,
		MaxInFlight:      1,
		InFlight:         0,
		CallsByStatus:    map[string]int{"0": 1, "201": 3, "401": 2, "502": 1, "503": 2},
	}, st)
	require.Regexp(t, `^\{"logout_calls":\{.*\},"total_logout_calls":9,"max_in_flight":1,"in_flight":0,"calls_by_status":\{.*\},"concurrent_same_session":0\}$`, got.body)

	require.Equal(t, ok, call(t, "DELETE", u+"/_fake/sessions/s-0003", "", "").body)
	_, found = srv.Session("s-0003")
	require.False(t, found)

	require.Equal(t, ok, call(t, "POST", u+"/_fake/reset-stats", "", "").body)
	require.JSONEq(t, `{"logout_calls":{},"total_logout_calls":0,"max_in_flight":0,"in_flight":0,"calls_by_status":{},"concurrent_same_session":0}`, call(t, "GET", u+"/_fake/stats", "", "").body)

	help := call(t, "GET", u+"/_fake/", "", "")
	require.Equal(t, 200, help.status)
	require.Contains(t, help.body, "POST   /_fake/script")
}

func TestControlAPIRejectsBadInput(t *testing.T) {
	t.Parallel()
	srv := wahafake.NewT(t, wahafake.Options{})
	u := srv.URL()
	tests := []struct {
		method, path, body string
		status             int
	}{
		{"POST", "/_fake/script", `{"session":"a","faults":[{"status":503,"tmies":3}]}`, 400},
		{"POST", "/_fake/script", `{"session":"a","faults":[{"status":99}]}`, 400},
		{"POST", "/_fake/script", `{"faults":[]}`, 400},
		{"POST", "/_fake/script", `{"session":"a","faults":[{"delay":"soon"}]}`, 400},
		{"POST", "/_fake/script", ``, 400},
		{"GET", "/_fake/script", ``, 405},
		{"POST", "/_fake/default-fault", `{"status":"503"}`, 400},
		{"POST", "/_fake/api-key", `{}`, 400},
		{"POST", "/_fake/latency", `{"latency":-1}`, 400},
		{"POST", "/_fake/flaky", `{"session":"a","rate":2}`, 400},
		{"POST", "/_fake/sessions", `{"prefix":"s"}`, 400},
		{"POST", "/_fake/sessions", `{"name":"x","prefix":"s","count":1}`, 400},
		{"POST", "/_fake/stats", ``, 405},
		{"POST", "/_fake/nosuch", `{}`, 404},
	}
	for _, tc := range tests {
		got := call(t, tc.method, u+tc.path, "", tc.body)
		require.Equal(t, tc.status, got.status, "%s %s %s", tc.method, tc.path, tc.body)
		var e struct{ Error string }
		require.NoError(t, json.Unmarshal([]byte(got.body), &e))
		require.NotEmpty(t, e.Error)
	}
	require.Equal(t, 0, srv.TotalLogoutCalls())
}

func TestFaultJSON(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want wahafake.Fault
	}{
		{`{"status":429,"retry_after":2}`, wahafake.Fault{Status: 429, RetryAfter: 2 * time.Second}},
		{`{"status":429,"retry_after":"1.5s"}`, wahafake.Fault{Status: 429, RetryAfter: 1500 * time.Millisecond}},
		{`{"reset":true,"times":2}`, wahafake.Fault{Reset: true, Times: 2}},
		{`{"delay":0.25}`, wahafake.Fault{Delay: 250 * time.Millisecond}},
		{`{"status":422,"message":"no"}`, wahafake.Fault{Status: 422, Message: "no"}},
	}
	for _, tc := range tests {
		var f wahafake.Fault
		require.NoError(t, json.Unmarshal([]byte(tc.in), &f), tc.in)
		require.Equal(t, tc.want, f)
		out, err := json.Marshal(f)
		require.NoError(t, err)
		var back wahafake.Fault
		require.NoError(t, json.Unmarshal(out, &back))
		require.Equal(t, f, back, "round trip of %s", out)
	}
	require.Equal(t, "503 retry-after 2s x3", wahafake.Fault{Status: 503, Times: 3, RetryAfter: 2 * time.Second}.String())
	require.Equal(t, "reset forever", wahafake.Fault{Reset: true}.String())
}

// The listing controls: generated sessions and injected entries, as a shell
// script sets them.
func TestControlListing(t *testing.T) {
	t.Parallel()
	srv := wahafake.NewT(t, wahafake.Options{})
	u := srv.URL()
	ok := `{"ok":true}`
	require.Equal(t, ok, call(t, "POST", u+"/_fake/generate", "", `{"prefix":"gen","count":3,"status":"WORKING"}`).body)
	require.Equal(t, ok, call(t, "POST", u+"/_fake/list-entries", "", `{"entries":[42,{"name":"../etc","status":"WORKING"}]}`).body)
	got := call(t, "GET", u+"/api/sessions", "", "")
	require.Equal(t, 200, got.status)
	require.JSONEq(t, `[42,{"name":"../etc","status":"WORKING"},
		{"name":"gen-0000001","status":"WORKING","config":null,"me":null},
		{"name":"gen-0000002","status":"WORKING","config":null,"me":null},
		{"name":"gen-0000003","status":"WORKING","config":null,"me":null}]`, got.body)
	require.Equal(t, 201, call(t, "POST", u+"/api/sessions/gen-0000002/logout", "", "").status)
	got = call(t, "GET", u+"/api/sessions?all=true", "", "")
	require.Contains(t, got.body, `{"name":"gen-0000002","status":"SCAN_QR_CODE","config":null,"me":null}`,
		"a logged-out generated session is listed once, in its new status")
	require.Equal(t, 1, strings.Count(got.body, "gen-0000002"))
	require.Equal(t, 400, call(t, "POST", u+"/_fake/generate", "", `{"prefix":"a/b","count":3}`).status)
	require.Equal(t, ok, call(t, "POST", u+"/_fake/generate", "", `{"prefix":"gen","count":0}`).body)
	require.Equal(t, ok, call(t, "POST", u+"/_fake/list-entries", "", `{"entries":[]}`).body)
	require.JSONEq(t, `[{"name":"default","status":"STOPPED","config":null,"me":null}, {"name":"gen-0000002","status":"SCAN_QR_CODE","config":null,"me":null}]`,
		call(t, "GET", u+"/api/sessions?all=true", "", "").body, "touched generated sessions stay, stored")
}
