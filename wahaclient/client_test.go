package wahaclient_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/wahaclient"
	"github.com/wahaq/wahaq/wahaclient/wahafake"
)

const testKey = "s3cr3t-key-never-printed"

func newClient(t *testing.T, baseURL, key string, mod ...func(*wahaclient.Config)) *wahaclient.Client {
	t.Helper()
	cfg := wahaclient.Config{BaseURL: baseURL, APIKey: key}
	for _, m := range mod {
		m(&cfg)
	}
	c, err := wahaclient.New(cfg)
	require.NoError(t, err)
	return c
}

// requireNoKey fails if the key leaks into an error's text.
func requireNoKey(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		require.NotContains(t, err.Error(), testKey)
		require.NotContains(t, fmt.Sprintf("%+v", err), testKey)
	}
}

func TestNewConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  wahaclient.Config
		ok   bool
	}{
		{"plain", wahaclient.Config{BaseURL: "http://127.0.0.1:3000"}, true},
		{"trailing slashes", wahaclient.Config{BaseURL: "https://waha.example/waha//"}, true},
		{"empty", wahaclient.Config{}, false},
		{"no scheme", wahaclient.Config{BaseURL: "127.0.0.1:3000"}, false},
		{"ftp", wahaclient.Config{BaseURL: "ftp://host"}, false},
		{"key in query", wahaclient.Config{BaseURL: "http://h/?x-api-key=" + testKey}, false},
		{"fragment", wahaclient.Config{BaseURL: "http://h/#x"}, false},
		{"key with newline", wahaclient.Config{BaseURL: "http://h", APIKey: testKey + "\n"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := wahaclient.New(tc.cfg)
			if tc.ok {
				require.NoError(t, err)
				require.NotNil(t, c)
				return
			}
			require.Error(t, err)
			requireNoKey(t, err)
		})
	}
}

func TestLogoutAgainstFake(t *testing.T) {
	t.Parallel()
	srv := wahafake.NewT(t, wahafake.Options{APIKey: testKey, Sessions: 2})
	c := newClient(t, srv.URL()+"/", testKey) // a trailing slash must not matter
	ctx := context.Background()

	// A running session restarts: STARTING in the answer, SCAN_QR_CODE after.
	res, err := c.Logout(ctx, "session-0001")
	require.NoError(t, err)
	require.Equal(t, 201, res.HTTPStatus)
	require.False(t, res.Deprecated)
	require.NotNil(t, res.Session)
	require.Equal(t, "session-0001", res.Session.Name)
	require.Equal(t, "STARTING", res.Session.Status)
	require.Nil(t, res.Session.Me)
	require.JSONEq(t, `{"engine":"NOWEB"}`, string(res.Session.Engine))
	after, err := c.GetSession(ctx, "session-0001")
	require.NoError(t, err)
	require.Equal(t, "SCAN_QR_CODE", after.Status)
	require.Nil(t, after.Me)

	// A STOPPED session stays STOPPED.
	res, err = c.Logout(ctx, "default")
	require.NoError(t, err)
	require.Equal(t, "STOPPED", res.Session.Status)
	require.JSONEq(t, `{}`, string(res.Session.Engine))

	// Twice is harmless.
	_, err = c.Logout(ctx, "session-0001")
	require.NoError(t, err)
	require.Equal(t, 2, srv.LogoutCalls("session-0001"))

	// The untouched session still has its account.
	s2, err := c.GetSession(ctx, "session-0002")
	require.NoError(t, err)
	require.Equal(t, "WORKING", s2.Status)
	require.NotNil(t, s2.Me)
	require.NotEmpty(t, s2.Me.ID)
}

func TestLogoutErrorsAgainstFake(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		opts    wahafake.Options
		key     string
		session string
		kind    error
		status  int
		message string
	}{
		{"unknown session", wahafake.Options{APIKey: testKey}, testKey, "nosuch", wahaclient.ErrSessionNotFound, 404, "Session not found"},
		{"core rejects other names", wahafake.Options{Core: true}, "", "nosuch", wahaclient.ErrRejected, 422, wahafake.CoreMessage},
		{"wrong key", wahafake.Options{APIKey: testKey}, "wrong", "default", wahaclient.ErrUnauthorized, 401, "Unauthorized"},
		{"no key", wahafake.Options{APIKey: testKey}, "", "default", wahaclient.ErrUnauthorized, 401, "Unauthorized"},
		{"scoped key, other session", wahafake.Options{APIKey: "main", ScopedKeys: map[string][]string{testKey: {"session-0001"}}, Sessions: 2}, testKey, "session-0002", wahaclient.ErrForbidden, 403, `the key is valid but scoped: it lacks the "control" action for this session, or it is bound to other sessions (WAHA 2026.4.3+ keys); give wahaq a key with "control" on every session it logs out`},
		{"neither route", wahafake.Options{Legacy: true, NoDeprecatedRoute: true}, "", "default", wahaclient.ErrRouteMissing, 404, "Cannot POST /api/sessions/default/logout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := wahafake.NewT(t, tc.opts)
			c := newClient(t, srv.URL(), tc.key)
			res, err := c.Logout(context.Background(), tc.session)
			require.Nil(t, res)
			require.ErrorIs(t, err, tc.kind)
			var ae *wahaclient.APIError
			require.ErrorAs(t, err, &ae)
			require.Equal(t, "logout", ae.Op)
			require.Equal(t, tc.status, ae.StatusCode)
			require.Equal(t, tc.message, ae.Message)
			requireNoKey(t, err)
		})
	}
}

func TestLogoutAcceptsAnyKeyWhenServerHasNone(t *testing.T) {
	t.Parallel()
	srv := wahafake.NewT(t, wahafake.Options{Sessions: 1})
	for _, key := range []string{"", "whatever"} {
		_, err := newClient(t, srv.URL(), key).Logout(context.Background(), "session-0001")
		require.NoError(t, err)
	}
	scoped := wahafake.NewT(t, wahafake.Options{APIKey: "main", ScopedKeys: map[string][]string{testKey: {"session-0001"}}, Sessions: 1})
	_, err := newClient(t, scoped.URL(), testKey).Logout(context.Background(), "session-0001")
	require.NoError(t, err, "a scoped key works on its own session")
}

func TestInvalidNameMakesNoCall(t *testing.T) {
	t.Parallel()
	srv := wahafake.NewT(t, wahafake.Options{})
	c := newClient(t, srv.URL(), "")
	for _, name := range []string{"", "a b", "../default", "default/logout", strings.Repeat("x", 55)} {
		_, err := c.Logout(context.Background(), name)
		require.ErrorIs(t, err, wahaclient.ErrInvalidSessionName)
		_, err = c.GetSession(context.Background(), name)
		require.ErrorIs(t, err, wahaclient.ErrInvalidSessionName)
	}
	require.Equal(t, 0, srv.TotalLogoutCalls())
}

// countingProxy fronts the fake's handler so a test can see every request,
// including the 404s of routes the fake lacks (which it does not count).
func countingProxy(t *testing.T, srv *wahafake.Server) (*httptest.Server, func(path string) int) {
	var mu sync.Mutex
	seen := map[string]int{}
	h := srv.Handler()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.Method+" "+r.URL.Path]++
		mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	return ts, func(p string) int {
		mu.Lock()
		defer mu.Unlock()
		return seen[p]
	}
}

func TestLogoutFallsBackToDeprecatedRouteAndRemembers(t *testing.T) {
	t.Parallel()
	srv := wahafake.NewT(t, wahafake.Options{Legacy: true, APIKey: testKey, Sessions: 3})
	ts, seen := countingProxy(t, srv)
	c := newClient(t, ts.URL, testKey)
	ctx := context.Background()

	res, err := c.Logout(ctx, "session-0001")
	require.NoError(t, err)
	require.True(t, res.Deprecated)
	require.Equal(t, 201, res.HTTPStatus)
	require.Nil(t, res.Session, "the deprecated route answers an empty body")
	_, ok := srv.Session("session-0001")
	require.False(t, ok, "the deprecated route deletes the session")

	for _, s := range []string{"session-0002", "session-0003"} {
		res, err = c.Logout(ctx, s)
		require.NoError(t, err)
		require.True(t, res.Deprecated)
	}
	require.Equal(t, 1, seen("POST /api/sessions/session-0001/logout"))
	require.Equal(t, 0, seen("POST /api/sessions/session-0002/logout"), "the client remembered the server lacks the route")
	require.Equal(t, 0, seen("POST /api/sessions/session-0003/logout"))
	require.Equal(t, 3, seen("POST /api/sessions/logout"))
	require.Equal(t, 3, srv.TotalLogoutCalls())

	// Deleted now: the deprecated route never says 404; GET does.
	_, err = c.GetSession(ctx, "session-0001")
	require.ErrorIs(t, err, wahaclient.ErrSessionNotFound)

	// Auth errors on the deprecated route are classified like any other.
	bad := newClient(t, ts.URL, "wrong")
	_, err = bad.Logout(ctx, "default")
	require.ErrorIs(t, err, wahaclient.ErrUnauthorized)
}

func TestLogoutForgetsLegacyWhenServerUpgraded(t *testing.T) {
	t.Parallel()
	legacy := wahafake.NewT(t, wahafake.Options{Legacy: true})
	modern := wahafake.NewT(t, wahafake.Options{NoDeprecatedRoute: true, Sessions: 1})
	var target atomic.Pointer[wahafake.Server]
	target.Store(legacy)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		target.Load().Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	c := newClient(t, ts.URL, "")

	res, err := c.Logout(context.Background(), "default")
	require.NoError(t, err)
	require.True(t, res.Deprecated)

	target.Store(modern) // "the server was upgraded"
	res, err = c.Logout(context.Background(), "session-0001")
	require.NoError(t, err)
	require.False(t, res.Deprecated)
	require.Equal(t, "STARTING", res.Session.Status)
}

func TestLogoutScriptedFaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		faults     []wahafake.Fault
		kinds      []error // one per attempt; nil = success
		retryAfter time.Duration
	}{
		{"503 three times then success", []wahafake.Fault{{Status: 503, Times: 3}},
			[]error{wahaclient.ErrTransient, wahaclient.ErrTransient, wahaclient.ErrTransient, nil}, 0},
		{"429 with Retry-After", []wahafake.Fault{{Status: 429, RetryAfter: 2 * time.Second, Times: 1}},
			[]error{wahaclient.ErrTransient, nil}, 2 * time.Second},
		{"500 then 502", []wahafake.Fault{{Status: 500, Times: 1}, {Status: 502, Times: 1}},
			[]error{wahaclient.ErrTransient, wahaclient.ErrTransient, nil}, 0},
		{"connection reset", []wahafake.Fault{{Reset: true, Times: 1}},
			[]error{wahaclient.ErrTransient, nil}, 0},
		{"401 forever", []wahafake.Fault{{Status: 401}},
			[]error{wahaclient.ErrUnauthorized, wahaclient.ErrUnauthorized, wahaclient.ErrUnauthorized}, 0},
		{"403 once", []wahafake.Fault{{Status: 403, Times: 1}},
			[]error{wahaclient.ErrForbidden, nil}, 0},
		{"422 with a message", []wahafake.Fault{{Status: 422, Message: "custom refusal", Times: 1}},
			[]error{wahaclient.ErrRejected, nil}, 0},
		{"delay only", []wahafake.Fault{{Delay: 10 * time.Millisecond, Times: 1}},
			[]error{nil}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := wahafake.NewT(t, wahafake.Options{Sessions: 1})
			srv.Script("session-0001", tc.faults...)
			c := newClient(t, srv.URL(), "")
			for i, want := range tc.kinds {
				res, err := c.Logout(context.Background(), "session-0001")
				if want == nil {
					require.NoError(t, err, "attempt %d", i+1)
					require.Equal(t, 201, res.HTTPStatus)
					continue
				}
				require.ErrorIs(t, err, want, "attempt %d", i+1)
				if i == 0 && tc.retryAfter > 0 {
					d, ok := wahaclient.RetryAfter(err)
					require.True(t, ok)
					require.Equal(t, tc.retryAfter, d)
				}
			}
			require.Equal(t, len(tc.kinds), srv.LogoutCalls("session-0001"))
		})
	}
}

func TestLogoutWhileServerDown(t *testing.T) {
	t.Parallel()
	srv := wahafake.NewT(t, wahafake.Options{Sessions: 1})
	c := newClient(t, srv.URL(), "")
	_, err := c.Logout(context.Background(), "default") // warm a pooled connection
	require.NoError(t, err)

	srv.Down()
	_, err = c.Logout(context.Background(), "session-0001")
	require.ErrorIs(t, err, wahaclient.ErrTransient)
	var ae *wahaclient.APIError
	require.ErrorAs(t, err, &ae)
	require.Equal(t, 0, ae.StatusCode)

	srv.Up()
	res, err := c.Logout(context.Background(), "session-0001")
	require.NoError(t, err)
	require.Equal(t, "STARTING", res.Session.Status)
}

func TestLogoutTimeoutAndCancel(t *testing.T) {
	t.Parallel()
	srv := wahafake.NewT(t, wahafake.Options{Sessions: 2, LogoutLatency: time.Minute})

	// The per-call timeout fires: transient, and not the caller's cancellation.
	c := newClient(t, srv.URL(), "", func(cfg *wahaclient.Config) { cfg.Timeout = 50 * time.Millisecond })
	_, err := c.Logout(context.Background(), "session-0001")
	require.ErrorIs(t, err, wahaclient.ErrTransient)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.NotErrorIs(t, err, context.Canceled)
	require.Contains(t, err.Error(), "per-call timeout of 50ms")

	// The caller cancels: transient, and context.Canceled stays visible.
	srv = wahafake.NewT(t, wahafake.Options{Sessions: 2, LogoutLatency: time.Minute})
	c2 := newClient(t, srv.URL(), "")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := c2.Logout(ctx, "session-0002")
		done <- err
	}()
	require.Eventually(t, func() bool { return srv.InFlight() > 0 }, 10*time.Second, 5*time.Millisecond)
	cancel()
	err = <-done
	require.ErrorIs(t, err, wahaclient.ErrTransient)
	require.ErrorIs(t, err, context.Canceled)

	// The abandoned logout left the session untouched.
	require.Eventually(t, func() bool { return srv.InFlight() == 0 }, 10*time.Second, 5*time.Millisecond)
	require.Equal(t, 1, srv.LogoutCalls("session-0002"))
	require.Equal(t, map[int]int{wahafake.StatusClientClosed: 1}, srv.CallsByStatus())
	s, _ := srv.Session("session-0002")
	require.Equal(t, "WORKING", s.Status)
	require.NotNil(t, s.Me)
}

func TestConcurrentLogouts(t *testing.T) {
	t.Parallel()
	const n = 8
	// Logouts that never finish on their own, so the test can wait until all
	// n are in flight at once without relying on timing.
	srv := wahafake.NewT(t, wahafake.Options{Sessions: n, LogoutLatency: time.Hour})
	c := newClient(t, srv.URL(), "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = c.Logout(ctx, fmt.Sprintf("session-%04d", i+1))
		}()
	}
	require.Eventually(t, func() bool { return srv.InFlight() == n }, 20*time.Second, 5*time.Millisecond)
	require.Equal(t, n, srv.MaxInFlight())
	cancel()
	wg.Wait()
	for _, err := range errs {
		require.ErrorIs(t, err, context.Canceled)
		require.ErrorIs(t, err, wahaclient.ErrTransient)
	}
	require.Eventually(t, func() bool { return srv.InFlight() == 0 }, 10*time.Second, 5*time.Millisecond)
	require.Equal(t, n, srv.TotalLogoutCalls())
}

func TestListSessions(t *testing.T) {
	t.Parallel()
	srv := wahafake.NewT(t, wahafake.Options{APIKey: testKey, Sessions: 3})
	srv.AddSession("idle", "STOPPED")
	c := newClient(t, srv.URL(), testKey)

	all, err := c.ListSessions(context.Background(), true)
	require.NoError(t, err)
	names := make([]string, 0, len(all))
	for _, s := range all {
		names = append(names, s.Name)
	}
	require.Equal(t, []string{"default", "idle", "session-0001", "session-0002", "session-0003"}, names)

	running, err := c.ListSessions(context.Background(), false)
	require.NoError(t, err)
	require.Len(t, running, 3)
	for _, s := range running {
		require.Equal(t, "WORKING", s.Status)
		require.NotNil(t, s.Me)
	}

	fresh := wahafake.NewT(t, wahafake.Options{})
	empty, err := newClient(t, fresh.URL(), "").ListSessions(context.Background(), false)
	require.NoError(t, err)
	require.NotNil(t, empty)
	require.Empty(t, empty)

	_, err = newClient(t, srv.URL(), "wrong").ListSessions(context.Background(), true)
	require.ErrorIs(t, err, wahaclient.ErrUnauthorized)
	var ae *wahaclient.APIError
	require.ErrorAs(t, err, &ae)
	require.Equal(t, "list sessions", ae.Op)
}

func TestGetSessionCore(t *testing.T) {
	t.Parallel()
	srv := wahafake.NewT(t, wahafake.Options{Core: true})
	c := newClient(t, srv.URL(), "")
	s, err := c.GetSession(context.Background(), "default")
	require.NoError(t, err)
	require.Equal(t, "STOPPED", s.Status)
	require.JSONEq(t, `null`, string(s.Config))
	// Core answers GET of another name 404 like any unknown session (only
	// its logout route says 422).
	_, err = c.GetSession(context.Background(), "other")
	require.ErrorIs(t, err, wahaclient.ErrSessionNotFound)
}

// oddServer answers every request with a fixed status, headers and body.
func oddServer(t *testing.T, status int, contentType, body string) *httptest.Server {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if contentType != "" {
			w.Header().Set("Content-Type", contentType)
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(ts.Close)
	return ts
}

func TestOddBodies(t *testing.T) {
	t.Parallel()
	huge := `{"message":"` + strings.Repeat("x", 3<<20) + `"}`
	tests := []struct {
		name        string
		status      int
		contentType string
		body        string
		kind        error // nil = success
		message     string
		hasSession  bool
	}{
		{"201 empty body", 201, "", "", nil, "", false},
		{"200 whitespace", 200, "application/json", " \n", nil, "", false},
		{"201 JSON true", 201, "application/json", "true", wahaclient.ErrRejected, "unexpected answer: JSON that is not a session object: true", false},
		{"200 JSON array", 200, "application/json", "[1,2,3]", wahaclient.ErrRejected, "unexpected answer: JSON that is not a session object: [1,2,3]", false},
		{"201 JSON string", 201, "application/json", `"x"`, wahaclient.ErrRejected, `unexpected answer: JSON that is not a session object: "x"`, false},
		{"201 JSON null", 201, "application/json", `null`, wahaclient.ErrRejected, `unexpected answer: JSON that is not a session object: null`, false},
		{"201 empty object", 201, "application/json", `{}`, wahaclient.ErrRejected, `unexpected answer: a JSON object that is not a session (it needs a string "name" and "status"): {}`, false},
		{"201 object without status", 201, "application/json", `{"name":"a"}`, wahaclient.ErrRejected, "", false},
		{"201 object with a numeric status", 201, "application/json", `{"name":"a","status":3}`, wahaclient.ErrRejected, "", false},
		{"201 long non-session body is shortened", 201, "application/json", `[` + strings.Repeat(`1,`, 5000) + `1]`, wahaclient.ErrRejected, "", false},
		{"201 session with unknown fields", 201, "application/json", `{"status":"STARTING","presence":null,"name":"a","timestamps":{"activity":1}}`, nil, "", true},
		{"200 HTML page", 200, "text/html", "<html>welcome</html>", wahaclient.ErrRejected, "unexpected answer: a body that is not JSON; is BaseURL pointing at WAHA?: <html>welcome</html>", false},
		{"502 HTML from a proxy", 502, "text/html", "<html><body>bad gateway</body></html>", wahaclient.ErrTransient, "Bad Gateway", false},
		{"400 reordered keys", 400, "application/json", `{"error":"Bad Request","message":["a","b"],"statusCode":400}`, wahaclient.ErrRejected, "a; b", false},
		{"422 huge message is capped", 422, "application/json", huge, wahaclient.ErrRejected, "", false},
		{"2xx body over the cap", 201, "application/json", `{"name":"` + strings.Repeat("y", 2<<20) + `"}`, wahaclient.ErrRejected, "unexpected answer: the body exceeds 1 MiB", false},
		{"redirect not followed", 307, "", "", wahaclient.ErrRejected, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ts := oddServer(t, tc.status, tc.contentType, tc.body)
			res, err := newClient(t, ts.URL, testKey).Logout(context.Background(), "a")
			if tc.kind == nil {
				require.NoError(t, err)
				require.Equal(t, tc.status, res.HTTPStatus)
				require.Equal(t, tc.hasSession, res.Session != nil)
				return
			}
			require.ErrorIs(t, err, tc.kind)
			var ae *wahaclient.APIError
			require.ErrorAs(t, err, &ae)
			require.Equal(t, tc.status, ae.StatusCode)
			if tc.message != "" {
				require.Equal(t, tc.message, ae.Message)
			}
			require.Less(t, len(ae.Message), 4096)
			if tc.status >= 200 && tc.status < 300 && len(tc.body) > 0 {
				require.NotEmpty(t, ae.Body, "WAHA's body is kept")
				require.LessOrEqual(t, len(ae.Body), 256+len("…"), "and shortened")
			}
			requireNoKey(t, err)
		})
	}
}

func TestRedirectIsNotFollowedAndKeyNotForwarded(t *testing.T) {
	t.Parallel()
	var leaked atomic.Int32
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Api-Key") != "" {
			leaked.Add(1)
		}
		w.WriteHeader(201)
	}))
	t.Cleanup(elsewhere.Close)
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	t.Cleanup(redirector.Close)

	// Even with the caller's own client, whose policy would follow redirects.
	c := newClient(t, redirector.URL, testKey, func(cfg *wahaclient.Config) { cfg.HTTPClient = &http.Client{} })
	_, err := c.Logout(context.Background(), "a")
	require.ErrorIs(t, err, wahaclient.ErrRejected)
	require.Contains(t, err.Error(), "unexpected redirect to "+elsewhere.URL)
	require.Equal(t, int32(0), leaked.Load())
}

func TestRequestShape(t *testing.T) {
	t.Parallel()
	type seen struct {
		method, path, query, key, contentType, body string
	}
	var mu sync.Mutex
	var got []seen
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := make([]byte, 256)
		n, _ := r.Body.Read(b)
		mu.Lock()
		got = append(got, seen{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("X-Api-Key"), r.Header.Get("Content-Type"), string(b[:n])})
		mu.Unlock()
		if r.URL.Path == "/waha/api/sessions/a/logout" {
			w.WriteHeader(404)
			_, _ = w.Write([]byte(`{"message":"Cannot POST /api/sessions/a/logout","error":"Not Found","statusCode":404}`))
			return
		}
		if r.URL.Path == "/waha/api/sessions" {
			_, _ = w.Write([]byte(`[]`))
			return
		}
		w.WriteHeader(201)
	}))
	t.Cleanup(ts.Close)
	c := newClient(t, ts.URL+"/waha/", testKey)
	res, err := c.Logout(context.Background(), "a")
	require.NoError(t, err)
	require.True(t, res.Deprecated)
	_, err = c.ListSessions(context.Background(), true)
	require.NoError(t, err)
	_, err = c.ListSessions(context.Background(), false)
	require.NoError(t, err)

	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, []seen{
		{"POST", "/waha/api/sessions/a/logout", "", testKey, "", ""},
		{"POST", "/waha/api/sessions/logout", "", testKey, "application/json", `{"name":"a"}`},
		{"GET", "/waha/api/sessions", "all=true", testKey, "", ""},
		{"GET", "/waha/api/sessions", "", testKey, "", ""},
	}, got)
}

func TestTransportErrorCarriesNoKeyOrURLSecrets(t *testing.T) {
	t.Parallel()
	ts := httptest.NewServer(http.NotFoundHandler())
	url := ts.URL
	ts.Close() // nothing listens there any more
	_, err := newClient(t, url, testKey).Logout(context.Background(), "a")
	require.ErrorIs(t, err, wahaclient.ErrTransient)
	requireNoKey(t, err)
	require.True(t, errors.Is(err, wahaclient.ErrTransient))
	require.Contains(t, err.Error(), "waha logout: ")
}
