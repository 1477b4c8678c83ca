package wahafake_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/wahaclient/wahafake"
)

const (
	unauthorized = `{"message":"Unauthorized","statusCode":401}`
	forbidden    = `{"message":"Forbidden","statusCode":403}`
)

// On the current line a key is always required: an unset one ("", "123",
// "admin", "waha", only zeros) is replaced by a generated key, which those
// values then do not match; WAHA_NO_API_KEY turns the check off.
func TestCurrentLineRequiresAKey(t *testing.T) {
	t.Parallel()
	for _, configured := range []string{"", "123", "admin", "waha", "00000000000000000000000000000000"} {
		srv := wahafake.NewT(t, wahafake.Options{CurrentLine: true, APIKey: configured})
		key := srv.APIKey()
		require.Len(t, key, 32, "a generated key for %q", configured)
		require.NotEqual(t, configured, key)
		for _, sent := range []string{"", configured, "nope"} {
			got := call(t, "GET", srv.URL()+"/api/sessions", sent, "")
			require.Equal(t, 401, got.status, "configured %q, sent %q", configured, sent)
			require.Equal(t, unauthorized, got.body)
		}
		require.Equal(t, 200, call(t, "GET", srv.URL()+"/api/sessions", key, "").status)
	}

	srv := wahafake.NewT(t, wahafake.Options{CurrentLine: true, APIKey: "real-key-1"})
	require.Equal(t, "real-key-1", srv.APIKey())
	require.Equal(t, 401, call(t, "POST", srv.URL()+"/api/sessions/default/logout", "", "").status)
	require.Equal(t, 401, call(t, "POST", srv.URL()+"/api/sessions/default/logout", "REAL-KEY-1", "").status)
	require.Equal(t, 201, call(t, "POST", srv.URL()+"/api/sessions/default/logout", "real-key-1", "").status)

	open := wahafake.NewT(t, wahafake.Options{CurrentLine: true, NoAPIKey: true, APIKey: "ignored"})
	require.Empty(t, open.APIKey())
	require.Equal(t, 200, call(t, "GET", open.URL()+"/api/sessions", "anything", "").status)

	// The observed 2024.10.8 accepts any key when none is set.
	old := wahafake.NewT(t, wahafake.Options{APIKey: "123"})
	require.Equal(t, "123", old.APIKey())
	require.Equal(t, 200, call(t, "GET", wahafake.NewT(t, wahafake.Options{}).URL()+"/api/sessions", "whatever", "").status)
}

// Scoped keys with actions (2026.4.3+): 403 without the action or for
// another session; logout needs control, DELETE needs delete.
func TestScopedKeyActions(t *testing.T) {
	t.Parallel()
	srv := wahafake.NewT(t, wahafake.Options{CurrentLine: true, APIKey: "admin-key", Keys: []wahafake.Key{
		{Key: "reader", Sessions: []string{"a"}, Actions: []string{"read"}},
		{Key: "ops", Sessions: []string{"a"}}, // WAHA's default: all but delete
		{Key: "deleter", Sessions: []string{"a", "gone"}, Actions: []string{"delete"}},
	}})
	srv.AddSession("a", wahafake.StatusWorking)
	srv.AddSession("b", wahafake.StatusWorking)
	u := srv.URL()
	for _, tc := range []struct {
		method, path, key string
		status            int
		body              string
	}{
		{"GET", "/api/sessions/a", "reader", 200, ""},
		{"POST", "/api/sessions/a/logout", "reader", 403, forbidden},
		{"POST", "/api/sessions/logout", "reader", 403, forbidden},
		{"GET", "/api/sessions/b", "reader", 403, forbidden},
		{"GET", "/api/sessions", "reader", 403, forbidden},
		{"GET", "/api/version", "reader", 200, ""},
		{"POST", "/api/sessions/b/logout", "ops", 403, forbidden},
		{"DELETE", "/api/sessions/a", "ops", 403, forbidden},
		{"POST", "/api/sessions/a/logout", "ops", 201, ""},
		{"POST", "/api/sessions/a/logout", "deleter", 403, forbidden},
		{"DELETE", "/api/sessions/b", "deleter", 403, forbidden},
		{"DELETE", "/api/sessions/a", "deleter", 200, ""},
		{"DELETE", "/api/sessions/a", "deleter", 200, ""}, // idempotent
		{"DELETE", "/api/sessions/gone", "deleter", 200, ""},
		{"GET", "/api/sessions/a", "nosuch-key", 401, unauthorized},
	} {
		body := ""
		if tc.path == "/api/sessions/logout" {
			body = `{"name":"a"}`
		}
		got := call(t, tc.method, u+tc.path, tc.key, body)
		require.Equal(t, tc.status, got.status, "%s %s with %s", tc.method, tc.path, tc.key)
		if tc.body != "" {
			require.Equal(t, tc.body, got.body)
		}
		if tc.method == "DELETE" && tc.status == 200 {
			require.Empty(t, got.body, "DELETE answers no body")
			require.Empty(t, got.contentType)
		}
	}
	_, ok := srv.Session("a")
	require.False(t, ok, "DELETE deleted it")
	_, ok = srv.Session("b")
	require.True(t, ok)

	srv.RemoveKey("reader")
	require.Equal(t, 401, call(t, "GET", u+"/api/sessions/b", "reader", "").status, "a revoked key is a wrong key")
	require.Panics(t, func() { srv.AddKey(wahafake.Key{Key: "x", Sessions: []string{"a"}, Actions: []string{"logout"}}) })
	_, err := wahafake.New(wahafake.Options{Keys: []wahafake.Key{{Key: "x"}}})
	require.ErrorContains(t, err, "name at least one session")
}

// DELETE and /api/server/version are the current line's; /api/version
// answers on both lines.
func TestCurrentLineRoutes(t *testing.T) {
	t.Parallel()
	old := wahafake.NewT(t, wahafake.Options{Core: true})
	require.Equal(t, `{"version":"2024.10.8","engine":"NOWEB","tier":"CORE","browser":null}`, call(t, "GET", old.URL()+"/api/version", "", "").body)
	require.Equal(t, `{"statusCode":404,"message":"Cannot GET /api/server/version","error":"Not Found"}`, call(t, "GET", old.URL()+"/api/server/version", "", "").body)
	require.Equal(t, 404, call(t, "DELETE", old.URL()+"/api/sessions/default", "", "").status)

	cur := wahafake.NewT(t, wahafake.Options{CurrentLine: true, APIKey: "k"})
	for _, p := range []string{"/api/version", "/api/server/version"} {
		got := call(t, "GET", cur.URL()+p, "k", "")
		require.Equal(t, 200, got.status, p)
		require.Equal(t, `{"version":"2026.7.1","engine":"NOWEB","tier":"PLUS","browser":null}`, got.body)
		require.Equal(t, 401, call(t, "GET", cur.URL()+p, "", "").status, p)
	}
	cur.AddSession("run", wahafake.StatusWorking)
	got := call(t, "DELETE", cur.URL()+"/api/sessions/run", "k", "")
	require.Equal(t, 200, got.status)
	require.Empty(t, got.body)
	require.Equal(t, 404, call(t, "GET", cur.URL()+"/api/sessions/run", "k", "").status)
	require.Equal(t, 1, cur.LogoutCalls("run"), "a DELETE counts as a logout call")
}

// 501 (the engine does not implement the call) and the lock timeout, as
// faults; the lock timeout also for real, when a session's lock is held
// past Options.LockTimeout.
func TestNotImplementedAndLockTimeout(t *testing.T) {
	t.Parallel()
	srv := wahafake.NewT(t, wahafake.Options{CurrentLine: true, APIKey: "k", Sessions: 1})
	u := srv.URL() + "/api/sessions/session-0001/logout"
	srv.Script("session-0001", wahafake.Fault{Status: 501, Times: 1}, wahafake.Fault{LockTimeout: true, Times: 1})
	got := call(t, "POST", u, "k", "")
	require.Equal(t, 501, got.status)
	require.Equal(t, `{"statusCode":501,"message":"The method is not implemented by 'NOWEB' engine. Check the docs and try another engine: https://waha.devlike.pro/","error":"Not Implemented"}`, got.body)
	got = call(t, "POST", u, "k", "")
	require.Equal(t, 500, got.status)
	var body struct {
		StatusCode int `json:"statusCode"`
		Exception  struct {
			Message string `json:"message"`
		} `json:"exception"`
	}
	require.NoError(t, json.Unmarshal([]byte(got.body), &body))
	require.Equal(t, "async-lock timed out in queue session-0001", body.Exception.Message)
	require.Equal(t, 201, call(t, "POST", u, "k", "").status)

	// For real: one logout holds the session's lock (a long logout), the
	// next waits past the lock's timeout.
	srv.SetLogoutLatency(time.Hour)
	srv.SetLockTimeout(20 * time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	holder := make(chan struct{})
	go func() {
		defer close(holder)
		req, _ := http.NewRequestWithContext(ctx, "POST", u, nil)
		req.Header.Set("X-Api-Key", "k")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	require.Eventually(t, func() bool { return srv.InFlight() == 1 }, 10*time.Second, 5*time.Millisecond)
	got = call(t, "POST", u, "k", "")
	require.Equal(t, 500, got.status)
	require.Contains(t, got.body, `"message":"async-lock timed out in queue session-0001"`)
	cancel()
	<-holder
}

// The control API switches the line and adds keys at run time.
func TestLineControlAPI(t *testing.T) {
	t.Parallel()
	srv := wahafake.NewT(t, wahafake.Options{APIKey: "k", Sessions: 1})
	u := srv.URL()
	require.JSONEq(t, `{"current_line":false,"no_api_key":false,"api_key":"k","lock_timeout":"0s","version":"2024.10.8"}`, call(t, "GET", u+"/_fake/line", "", "").body)
	require.Equal(t, 404, call(t, "DELETE", u+"/api/sessions/session-0001", "k", "").status)
	got := call(t, "POST", u+"/_fake/line", "", `{"current_line":true,"lock_timeout":"2s"}`)
	require.Equal(t, 200, got.status)
	require.JSONEq(t, `{"current_line":true,"no_api_key":false,"api_key":"k","lock_timeout":"2s","version":"2026.7.1"}`, got.body)
	require.Equal(t, 200, call(t, "POST", u+"/_fake/keys", "", `{"key":"sk","sessions":["session-0001"],"actions":["read"]}`).status)
	require.Equal(t, 403, call(t, "POST", u+"/api/sessions/session-0001/logout", "sk", "").status)
	require.Equal(t, 200, call(t, "DELETE", u+"/_fake/keys/sk", "", "").status)
	require.Equal(t, 401, call(t, "POST", u+"/api/sessions/session-0001/logout", "sk", "").status)

	// An unset key on the current line: the answer names the generated one.
	got = call(t, "POST", u+"/_fake/api-key", "", `{"key":"waha"}`)
	require.Equal(t, 200, got.status)
	var st struct {
		APIKey string `json:"api_key"`
	}
	require.NoError(t, json.Unmarshal([]byte(call(t, "GET", u+"/_fake/line", "", "").body), &st))
	require.Len(t, st.APIKey, 32)
	require.Equal(t, 401, call(t, "GET", u+"/api/sessions", "waha", "").status)
	require.Equal(t, 200, call(t, "GET", u+"/api/sessions", st.APIKey, "").status)

	for _, bad := range []string{`{"current":true}`, `{"lock_timeout":"-1s"}`, `nope`} {
		require.Equal(t, 400, call(t, "POST", u+"/_fake/line", "", bad).status, bad)
	}
	require.Equal(t, 400, call(t, "POST", u+"/_fake/keys", "", `{"key":"x","sessions":["a"],"actions":["fly"]}`).status)
	require.Contains(t, call(t, "GET", u+"/_fake/", "", "").body, "/_fake/line")
	require.Equal(t, 405, call(t, "PUT", u+"/_fake/line", "", "").status)
	require.True(t, strings.HasPrefix(call(t, "POST", u+"/_fake/line", "", `{"no_api_key":true}`).body, `{"current_line":true,"no_api_key":true,"api_key":""`))
}

// The six checks that passed against a real WAHA Core 2024.10.8 (the
// "Observed on a real server" answers of waha-api.md) hold on the
// current line too, with the key: the listing of a fresh server, GET of
// default, a logout of a STOPPED and of a running session, Core's 422 for
// another name, and the deprecated route's 201 with no body that deletes
// the session.
func TestObservedChecksOnCurrentLine(t *testing.T) {
	t.Parallel()
	const key = "current-line-key"
	stopped := `{"name":"default","status":"STOPPED","config":null,"me":null,"engine":{}}`
	for _, tc := range []struct {
		name         string
		opts         wahafake.Options
		method, path string
		body         string
		status       int
		want         string
	}{
		{"1 list all on a fresh server", wahafake.Options{}, "GET", "/api/sessions?all=true", "", 200, `[{"name":"default","status":"STOPPED","config":null,"me":null}]`},
		{"2 get default", wahafake.Options{}, "GET", "/api/sessions/default", "", 200, stopped},
		{"3 logout a stopped session", wahafake.Options{}, "POST", "/api/sessions/default/logout", "", 201, stopped},
		{"4 logout a running session", wahafake.Options{Sessions: 1}, "POST", "/api/sessions/session-0001/logout", "", 201, `{"name":"session-0001","status":"STARTING","config":null,"me":null,"engine":{"engine":"NOWEB"}}`},
		{"5 core logout of another name", wahafake.Options{Core: true}, "POST", "/api/sessions/nosuch/logout", "", 422, coreBody},
		{"6 deprecated logout", wahafake.Options{}, "POST", "/api/sessions/logout", `{"name":"default"}`, 201, ``},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.opts.CurrentLine, tc.opts.APIKey = true, key
			srv := wahafake.NewT(t, tc.opts)
			require.Equal(t, 401, call(t, tc.method, srv.URL()+tc.path, "", tc.body).status, "no key")
			got := call(t, tc.method, srv.URL()+tc.path, key, tc.body)
			require.Equal(t, tc.status, got.status)
			require.Equal(t, tc.want, got.body)
			if tc.path == "/api/sessions/logout" {
				require.Empty(t, got.contentType)
				require.Equal(t, `{"statusCode":404,"message":"Session not found","error":"Not Found"}`, call(t, "GET", srv.URL()+"/api/sessions/default", key, "").body)
			}
		})
	}
}
