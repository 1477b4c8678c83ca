package wahafake_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/wahaclient"
	"github.com/wahaq/wahaq/wahaclient/wahafake"
)

type answer struct {
	status      int
	contentType string
	body        string
	header      http.Header
}

func call(t *testing.T, method, url, key, body string) answer {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	require.NoError(t, err)
	if key != "" {
		req.Header.Set("X-Api-Key", key)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return answer{resp.StatusCode, resp.Header.Get("Content-Type"), string(b), resp.Header}
}

const coreBody = `{"statusCode":422,"message":"WAHA Core support only 'default' session. If you want to run more then one WhatsApp account - please get WAHA PLUS version. Check this out: https://waha.devlike.pro/","error":"Unprocessable Entity"}`

// TestObservedAnswers replays the exact answers observed on a real WAHA Core
// 2024.10.8, byte for byte, key order included.
func TestObservedAnswers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		opts   wahafake.Options
		method string
		path   string
		key    string
		body   string
		status int
		want   string
	}{
		{"list all on a fresh server", wahafake.Options{}, "GET", "/api/sessions?all=true", "", "", 200, `[{"name":"default","status":"STOPPED","config":null,"me":null}]`},
		{"list without all", wahafake.Options{}, "GET", "/api/sessions", "", "", 200, `[]`},
		{"list all=True", wahafake.Options{}, "GET", "/api/sessions?all=True", "", "", 200, `[{"name":"default","status":"STOPPED","config":null,"me":null}]`},
		{"list all=1", wahafake.Options{}, "GET", "/api/sessions?all=1", "", "", 200, `[{"name":"default","status":"STOPPED","config":null,"me":null}]`},
		{"list all=False", wahafake.Options{}, "GET", "/api/sessions?all=False", "", "", 200, `[]`},
		{"list all=0", wahafake.Options{}, "GET", "/api/sessions?all=0", "", "", 200, `[]`},
		{"list all=yes", wahafake.Options{}, "GET", "/api/sessions?all=yes", "", "", 400, `{"statusCode":400,"message":["all must be a boolean value"],"error":"Bad Request"}`},
		{"list all empty", wahafake.Options{}, "GET", "/api/sessions?all=", "", "", 400, `{"statusCode":400,"message":["all must be a boolean value"],"error":"Bad Request"}`},
		{"get default", wahafake.Options{}, "GET", "/api/sessions/default", "", "", 200, `{"name":"default","status":"STOPPED","config":null,"me":null,"engine":{}}`},
		{"logout stopped default", wahafake.Options{}, "POST", "/api/sessions/default/logout", "", "", 201, `{"name":"default","status":"STOPPED","config":null,"me":null,"engine":{}}`},
		{"logout running", wahafake.Options{Sessions: 1}, "POST", "/api/sessions/session-0001/logout", "", "", 201, `{"name":"session-0001","status":"STARTING","config":null,"me":null,"engine":{"engine":"NOWEB"}}`},
		{"core logout other", wahafake.Options{Core: true}, "POST", "/api/sessions/nosuch/logout", "", "", 422, coreBody},
		{"core get other", wahafake.Options{Core: true}, "GET", "/api/sessions/nosuch", "", "", 404, `{"statusCode":404,"message":"Session not found","error":"Not Found"}`},
		{"plus logout unknown", wahafake.Options{}, "POST", "/api/sessions/nosuch/logout", "", "", 404, `{"statusCode":404,"message":"Session not found","error":"Not Found"}`},
		{"get unknown", wahafake.Options{}, "GET", "/api/sessions/nosuch", "", "", 404, `{"statusCode":404,"message":"Session not found","error":"Not Found"}`},
		{"no key", wahafake.Options{APIKey: "k"}, "GET", "/api/sessions", "", "", 401, `{"message":"Unauthorized","statusCode":401}`},
		{"wrong key", wahafake.Options{APIKey: "k"}, "POST", "/api/sessions/default/logout", "nope", "", 401, `{"message":"Unauthorized","statusCode":401}`},
		{"key in query", wahafake.Options{APIKey: "k"}, "GET", "/api/sessions?x-api-key=k", "", "", 200, `[]`},
		{"scoped key other session", wahafake.Options{APIKey: "k", ScopedKeys: map[string][]string{"sk": {"a"}}}, "POST", "/api/sessions/default/logout", "sk", "", 403, `{"message":"Forbidden","statusCode":403}`},
		{"scoped key lists", wahafake.Options{ScopedKeys: map[string][]string{"sk": {"a"}}}, "GET", "/api/sessions", "sk", "", 403, `{"message":"Forbidden","statusCode":403}`},
		{"scoped key own session", wahafake.Options{APIKey: "k", ScopedKeys: map[string][]string{"sk": {"default"}}}, "GET", "/api/sessions/default", "sk", "", 200, `{"name":"default","status":"STOPPED","config":null,"me":null,"engine":{}}`},
		{"route missing", wahafake.Options{}, "POST", "/api/sessions/default/start", "", "", 404, `{"statusCode":404,"message":"Cannot POST /api/sessions/default/start","error":"Not Found"}`},
		{"legacy has no logout route", wahafake.Options{Legacy: true}, "POST", "/api/sessions/default/logout", "", "", 404, `{"statusCode":404,"message":"Cannot POST /api/sessions/default/logout","error":"Not Found"}`},
		{"newest has no deprecated route", wahafake.Options{NoDeprecatedRoute: true}, "POST", "/api/sessions/logout", "", `{"name":"default"}`, 404, `{"statusCode":404,"message":"Cannot POST /api/sessions/logout","error":"Not Found"}`},
		{"deprecated route", wahafake.Options{}, "POST", "/api/sessions/logout", "", `{"name":"default"}`, 201, ``},
		{"deprecated route unknown name", wahafake.Options{}, "POST", "/api/sessions/logout", "", `{"name":"nosuch"}`, 201, ``},
		{"deprecated route without name", wahafake.Options{}, "POST", "/api/sessions/logout", "", `{}`, 422, `{"statusCode":422,"message":"Session name is required","error":"Unprocessable Entity"}`},
		{"deprecated route on core", wahafake.Options{Core: true}, "POST", "/api/sessions/logout", "", `{"name":"other"}`, 422, coreBody},
		{"deprecated route on core without name", wahafake.Options{Core: true}, "POST", "/api/sessions/logout", "", `{}`, 422, coreBody},
		{"deprecated route, body not JSON", wahafake.Options{}, "POST", "/api/sessions/logout", "", `nope`, 400, `{"statusCode":400,"message":"Unexpected token n in JSON at position 0","error":"Bad Request"}`},
		{"deprecated route, broken JSON", wahafake.Options{Core: true}, "POST", "/api/sessions/logout", "", `{"name":x}`, 400, `{"statusCode":400,"message":"Unexpected token x in JSON at position 8","error":"Bad Request"}`},
		{"list without all shows no engine", wahafake.Options{Sessions: 1}, "GET", "/api/sessions", "", "", 200, `[{"name":"session-0001","status":"WORKING","config":null,"me":{"id":"4915100000002@c.us","pushName":"session-0001"}}]`},
		{"list all shows no engine", wahafake.Options{Sessions: 1}, "GET", "/api/sessions?all=true", "", "", 200, `[{"name":"default","status":"STOPPED","config":null,"me":null},{"name":"session-0001","status":"WORKING","config":null,"me":{"id":"4915100000002@c.us","pushName":"session-0001"}}]`},
		{"get running shows engine", wahafake.Options{Sessions: 1}, "GET", "/api/sessions/session-0001", "", "", 200, `{"name":"session-0001","status":"WORKING","config":null,"me":{"id":"4915100000002@c.us","pushName":"session-0001"},"engine":{"engine":"NOWEB"}}`},
		{"wrong method", wahafake.Options{}, "DELETE", "/api/sessions/default", "", "", 404, `{"statusCode":404,"message":"Cannot DELETE /api/sessions/default","error":"Not Found"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := wahafake.NewT(t, tc.opts)
			got := call(t, tc.method, srv.URL()+tc.path, tc.key, tc.body)
			require.Equal(t, tc.status, got.status)
			require.Equal(t, tc.want, got.body)
			if tc.want == "" {
				require.Empty(t, got.contentType, "an empty answer has no Content-Type")
			} else {
				require.Equal(t, "application/json; charset=utf-8", got.contentType)
			}
		})
	}
}

func TestDeprecatedRouteDeletesSession(t *testing.T) {
	t.Parallel()
	srv := wahafake.NewT(t, wahafake.Options{Legacy: true})
	require.Equal(t, 201, call(t, "POST", srv.URL()+"/api/sessions/logout", "", `{"name":"default"}`).status)
	_, ok := srv.Session("default")
	require.False(t, ok)
	require.Equal(t, `{"statusCode":404,"message":"Session not found","error":"Not Found"}`, call(t, "GET", srv.URL()+"/api/sessions/default", "", "").body)
	require.Equal(t, 1, srv.LogoutCalls("default"))
	require.Equal(t, map[int]int{201: 1}, srv.CallsByStatus())
}

func TestLogoutStateMachine(t *testing.T) {
	t.Parallel()
	srv := wahafake.NewT(t, wahafake.Options{Sessions: 1})
	for _, st := range []string{"STARTING", "FAILED", "SCAN_QR_CODE", "PASSKEY_REQUIRED"} {
		srv.AddSession("s-"+strings.ToLower(st), st)
	}
	s, ok := srv.Session("session-0001")
	require.True(t, ok)
	require.Equal(t, "WORKING", s.Status)
	require.NotNil(t, s.Me)
	require.JSONEq(t, `{"engine":"NOWEB"}`, string(s.Engine))

	for _, name := range []string{"session-0001", "s-starting", "s-failed", "s-scan_qr_code", "s-passkey_required"} {
		got := call(t, "POST", srv.URL()+"/api/sessions/"+name+"/logout", "", "")
		require.Equal(t, 201, got.status, name)
		require.Contains(t, got.body, `"status":"STARTING"`, name)
		s, _ := srv.Session(name)
		require.Equal(t, "SCAN_QR_CODE", s.Status, name)
		require.Nil(t, s.Me, name)
	}
	// Listing without all shows running sessions, without an engine key
	// (observed on Core 2024.10.8).
	list := call(t, "GET", srv.URL()+"/api/sessions", "", "")
	require.Contains(t, list.body, `{"name":"session-0001","status":"SCAN_QR_CODE","config":null,"me":null}`)
	require.NotContains(t, list.body, `"default"`)
}

func TestLogoutLatencyAndSerialisation(t *testing.T) {
	t.Parallel()
	const latency = 300 * time.Millisecond
	srv := wahafake.NewT(t, wahafake.Options{Sessions: 1, LogoutLatency: latency})

	// STOPPED sessions do not pay the latency; lower bounds only, never upper.
	start := time.Now()
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			require.Equal(t, 201, call(t, "POST", srv.URL()+"/api/sessions/session-0001/logout", "", "").status)
		}()
	}
	wg.Wait()
	require.GreaterOrEqual(t, time.Since(start), 2*latency, "two logouts of one running session are serialised")
	require.Equal(t, 2, srv.LogoutCalls("session-0001"))
	require.Equal(t, 1, srv.ConcurrentSameSession(), "the second logout overlapped the first")

	srv.SetLogoutLatency(0)
	require.Equal(t, 201, call(t, "POST", srv.URL()+"/api/sessions/session-0001/logout", "", "").status)
}

func TestFaults(t *testing.T) {
	t.Parallel()
	srv := wahafake.NewT(t, wahafake.Options{Sessions: 2})
	u := srv.URL() + "/api/sessions/session-0001/logout"
	srv.Script("session-0001",
		wahafake.Fault{Status: 503, Times: 2, RetryAfter: 1500 * time.Millisecond},
		wahafake.Fault{Status: 500, Times: 1},
		wahafake.Fault{Status: 401, Times: 1},
		wahafake.Fault{Status: 418, Times: 1},
	)
	a := call(t, "POST", u, "", "")
	require.Equal(t, 503, a.status)
	require.Equal(t, "2", a.header.Get("Retry-After"), "rounded up")
	require.Equal(t, "text/html", a.contentType)
	require.Contains(t, a.body, "<center>nginx</center>")
	require.Equal(t, 503, call(t, "POST", u, "", "").status)
	a = call(t, "POST", u, "", "")
	require.Equal(t, 500, a.status)
	require.Contains(t, a.body, `"exception":{"message":`)
	require.Contains(t, a.body, `"request":{"path":"/api/sessions/session-0001/logout","method":"POST"`)
	require.Equal(t, `{"message":"Unauthorized","statusCode":401}`, call(t, "POST", u, "", "").body)
	require.Equal(t, `{"statusCode":418,"message":"I'm a teapot","error":"I'm a teapot"}`, call(t, "POST", u, "", "").body)
	require.Equal(t, 201, call(t, "POST", u, "", "").status, "the script is used up")
	require.Equal(t, 201, call(t, "POST", srv.URL()+"/api/sessions/session-0002/logout", "", "").status, "scripts are per session")

	// A default fault beats scripts and applies to every session; Times bounds it.
	srv.Script("session-0002", wahafake.Fault{Status: 500})
	srv.SetDefaultFault(&wahafake.Fault{Status: 401, Times: 2})
	require.Equal(t, 401, call(t, "POST", u, "", "").status)
	require.Equal(t, 401, call(t, "POST", srv.URL()+"/api/sessions/session-0002/logout", "", "").status)
	require.Equal(t, 201, call(t, "POST", u, "", "").status)
	require.Equal(t, 500, call(t, "POST", srv.URL()+"/api/sessions/session-0002/logout", "", "").status, "Times 0 is forever")
	require.Equal(t, 500, call(t, "POST", srv.URL()+"/api/sessions/session-0002/logout", "", "").status)
	srv.Script("session-0002")
	require.Equal(t, 201, call(t, "POST", srv.URL()+"/api/sessions/session-0002/logout", "", "").status, "an empty script clears")

	srv.SetDefaultFault(&wahafake.Fault{Status: 503})
	for range 3 {
		require.Equal(t, 503, call(t, "POST", u, "", "").status)
	}
	srv.SetDefaultFault(nil)
	require.Equal(t, 201, call(t, "POST", u, "", "").status)

	// Faults touch logouts only.
	srv.SetDefaultFault(&wahafake.Fault{Status: 503})
	require.Equal(t, 200, call(t, "GET", srv.URL()+"/api/sessions/session-0001", "", "").status)
	srv.SetDefaultFault(nil)

	byStatus := srv.CallsByStatus()
	require.Equal(t, map[int]int{503: 5, 500: 3, 401: 3, 418: 1, 201: 5}, byStatus)
	require.Equal(t, 17, srv.TotalLogoutCalls())

	require.Panics(t, func() { srv.Script("x", wahafake.Fault{Status: 42}) })
}

func TestResetFault(t *testing.T) {
	t.Parallel()
	srv := wahafake.NewT(t, wahafake.Options{})
	srv.Script("default", wahafake.Fault{Reset: true, Times: 1})
	c, err := wahaclient.New(wahaclient.Config{BaseURL: srv.URL()})
	require.NoError(t, err)
	_, err = c.Logout(context.Background(), "default")
	require.ErrorIs(t, err, wahaclient.ErrTransient)
	_, err = c.Logout(context.Background(), "default")
	require.NoError(t, err)
	require.Equal(t, map[int]int{0: 1, 201: 1}, srv.CallsByStatus())
}

func TestFlakyIsSeeded(t *testing.T) {
	t.Parallel()
	run := func(seed uint64) []int {
		srv := wahafake.NewT(t, wahafake.Options{Seed: seed})
		srv.SetFlaky("default", 0.5, 502)
		var out []int
		for range 40 {
			out = append(out, call(t, "POST", srv.URL()+"/api/sessions/default/logout", "", "").status)
		}
		return out
	}
	a, b := run(7), run(7)
	require.Equal(t, a, b, "same seed, same sequence")
	var fails int
	for _, st := range a {
		require.Contains(t, []int{201, 502}, st)
		if st == 502 {
			fails++
		}
	}
	require.Greater(t, fails, 0)
	require.Less(t, fails, 40)

	srv := wahafake.NewT(t, wahafake.Options{})
	srv.SetFlaky("default", 1, 0)
	require.Equal(t, 503, call(t, "POST", srv.URL()+"/api/sessions/default/logout", "", "").status, "status 0 means 503")
	srv.SetFlaky("default", 0, 0)
	require.Equal(t, 201, call(t, "POST", srv.URL()+"/api/sessions/default/logout", "", "").status)
}

func TestDownUpKeepsURL(t *testing.T) {
	t.Parallel()
	srv := wahafake.NewT(t, wahafake.Options{})
	url := srv.URL()
	require.Equal(t, 200, call(t, "GET", url+"/api/sessions", "", "").status)
	srv.Down()
	srv.Down() // harmless
	_, err := http.Get(url + "/api/sessions")
	require.Error(t, err)
	require.Contains(t, err.Error(), "connection refused")
	srv.Up()
	srv.Up() // harmless
	require.Equal(t, url, srv.URL())
	require.Equal(t, 200, call(t, "GET", url+"/api/sessions", "", "").status)
	require.NoError(t, srv.Close())
	require.NoError(t, srv.Close())
	srv.Up() // a closed server stays closed
	_, err = http.Get(url + "/api/sessions")
	require.Error(t, err)
}

func TestCloseEndsSlowLogouts(t *testing.T) {
	t.Parallel()
	srv, err := wahafake.New(wahafake.Options{Sessions: 1, LogoutLatency: time.Hour})
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() {
		_, err := http.Post(srv.URL()+"/api/sessions/session-0001/logout", "", nil)
		done <- err
	}()
	require.Eventually(t, func() bool { return srv.InFlight() == 1 }, 10*time.Second, 5*time.Millisecond)
	require.NoError(t, srv.Close())
	require.Error(t, <-done)
	require.Equal(t, 0, srv.InFlight())
	s, _ := srv.Session("session-0001")
	require.Equal(t, "WORKING", s.Status, "an abandoned logout changes nothing")
}

func TestSessionsAndKeys(t *testing.T) {
	t.Parallel()
	srv := wahafake.NewT(t, wahafake.Options{Sessions: 2})
	require.Equal(t, []string{"s-0001", "s-0002"}, srv.AddSessions("s", 2, "STOPPED"))
	require.Equal(t, []string{"session-0003"}, srv.AddSessions("session", 1, ""), "numbering skips existing names")
	require.Equal(t, []string{"default", "s-0001", "s-0002", "session-0001", "session-0002", "session-0003"}, srv.Sessions())
	srv.RemoveSession("s-0001")
	_, ok := srv.Session("s-0001")
	require.False(t, ok)

	srv.SetAPIKey("rotated")
	require.Equal(t, 401, call(t, "GET", srv.URL()+"/api/sessions", "", "").status)
	require.Equal(t, 200, call(t, "GET", srv.URL()+"/api/sessions", "rotated", "").status)
	srv.SetAPIKey("")
	require.Equal(t, 200, call(t, "GET", srv.URL()+"/api/sessions", "anything", "").status)

	_, err := wahafake.New(wahafake.Options{Core: true, Sessions: 1})
	require.Error(t, err)
	_, err = wahafake.New(wahafake.Options{Addr: "256.0.0.1:0"})
	require.Error(t, err)
}

func TestInFlightCounters(t *testing.T) {
	t.Parallel()
	srv := wahafake.NewT(t, wahafake.Options{Sessions: 3, LogoutLatency: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := 1; i <= 3; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequestWithContext(ctx, "POST", srv.URL()+"/api/sessions/session-000"+string(rune('0'+i))+"/logout", nil)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		}()
	}
	require.Eventually(t, func() bool { return srv.InFlight() == 3 }, 10*time.Second, 5*time.Millisecond)
	require.Equal(t, 3, srv.MaxInFlight())
	cancel()
	wg.Wait()
	require.Eventually(t, func() bool { return srv.InFlight() == 0 }, 10*time.Second, 5*time.Millisecond)
	require.Equal(t, 3, srv.MaxInFlight())
	srv.ResetMaxInFlight()
	require.Equal(t, 0, srv.MaxInFlight())
	require.Equal(t, map[int]int{wahafake.StatusClientClosed: 3}, srv.CallsByStatus())
	srv.ResetStats()
	require.Equal(t, 0, srv.TotalLogoutCalls())
	require.Empty(t, srv.CallsByStatus())
}

// The counters are current as soon as the client has its answer, and a
// sequential client never counts as two calls in flight.
func TestCountersCurrentWhenAnswerArrives(t *testing.T) {
	t.Parallel()
	srv := wahafake.NewT(t, wahafake.Options{Sessions: 1})
	c, err := wahaclient.New(wahaclient.Config{BaseURL: srv.URL()})
	require.NoError(t, err)
	for i := 1; i <= 50; i++ {
		_, err := c.Logout(context.Background(), "session-0001")
		require.NoError(t, err)
		require.Equal(t, i, srv.LogoutCalls("session-0001"))
		require.Equal(t, i, srv.CallsByStatus()[201])
	}
	require.Equal(t, 1, srv.MaxInFlight())
}
