package wahafake_test

import (
	"context"
	"net/http"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/wahaclient"
	"github.com/wahaq/wahaq/wahaclient/wahafake"
)

// A deleted default answers the deprecated route with 201 again (observed on
// Core 2024.10.8), while the current route says 404.
func TestDeprecatedRouteTwiceOnDeletedDefault(t *testing.T) {
	t.Parallel()
	srv := wahafake.NewT(t, wahafake.Options{Core: true})
	for range 2 {
		got := call(t, "POST", srv.URL()+"/api/sessions/logout", "", `{"name":"default"}`)
		require.Equal(t, 201, got.status)
		require.Empty(t, got.body)
	}
	_, ok := srv.Session("default")
	require.False(t, ok)
	require.Equal(t, 404, call(t, "POST", srv.URL()+"/api/sessions/default/logout", "", "").status)
	require.Equal(t, map[int]int{201: 2, 404: 1}, srv.CallsByStatus())
}

// Every WAHA answer carries Express's headers; the control API does not
// pretend to be WAHA.
func TestExpressHeaders(t *testing.T) {
	t.Parallel()
	srv := wahafake.NewT(t, wahafake.Options{Sessions: 1})
	etag := regexp.MustCompile(`^W/"[0-9a-f]+-[A-Za-z0-9+/]{27}"$`)
	for _, tc := range []struct{ method, path string }{
		{"GET", "/api/sessions"},
		{"GET", "/api/sessions/session-0001"},
		{"GET", "/api/sessions/nosuch"},
		{"POST", "/api/sessions/default/logout"},
		{"POST", "/api/nothing"},
	} {
		got := call(t, tc.method, srv.URL()+tc.path, "", "")
		require.Equal(t, "Express", got.header.Get("X-Powered-By"), tc.path)
		require.Equal(t, "*", got.header.Get("Access-Control-Allow-Origin"), tc.path)
		require.Equal(t, "timeout=5", got.header.Get("Keep-Alive"), tc.path)
		require.Regexp(t, etag, got.header.Get("ETag"), tc.path)
	}
	a := call(t, "GET", srv.URL()+"/api/sessions?all=true", "", "")
	b := call(t, "GET", srv.URL()+"/api/sessions?all=true", "", "")
	require.Equal(t, a.header.Get("ETag"), b.header.Get("ETag"), "same body, same ETag")
	require.NotEqual(t, a.header.Get("ETag"), call(t, "GET", srv.URL()+"/api/sessions", "", "").header.Get("ETag"))

	ctl := call(t, "GET", srv.URL()+"/_fake/stats", "", "")
	require.Equal(t, 200, ctl.status)
	require.Empty(t, ctl.header.Get("X-Powered-By"))
}

// Two logouts of one session at once crashed a real WAHA: the fake counts
// them, sequential ones never, and other sessions in parallel never.
func TestConcurrentSameSessionIsCounted(t *testing.T) {
	t.Parallel()
	srv := wahafake.NewT(t, wahafake.Options{Sessions: 2, LogoutLatency: time.Hour})
	c, err := wahaclient.New(wahaclient.Config{BaseURL: srv.URL()})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, name := range []string{"session-0001", "session-0002", "session-0001"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = c.Logout(ctx, name)
		}()
	}
	require.Eventually(t, func() bool { return srv.InFlight() == 3 && srv.ConcurrentSameSession() == 1 }, 10*time.Second, 5*time.Millisecond)
	cancel()
	wg.Wait()
	require.Eventually(t, func() bool { return srv.InFlight() == 0 }, 10*time.Second, 5*time.Millisecond)
	require.Equal(t, 1, srv.Stats().ConcurrentSameSession)
	srv.ResetStats()
	require.Equal(t, 0, srv.ConcurrentSameSession())

	srv.SetLogoutLatency(0)
	for range 3 {
		_, err := c.Logout(context.Background(), "session-0001")
		require.NoError(t, err)
	}
	require.Equal(t, 0, srv.ConcurrentSameSession(), "sequential logouts do not overlap")
	require.Equal(t, 3, srv.LogoutCalls("session-0001"))
}

// With CrashOnConcurrentLogout the overlapping call's connection is dropped,
// like the real server, and the first logout still completes.
func TestCrashOnConcurrentLogout(t *testing.T) {
	t.Parallel()
	const latency = 200 * time.Millisecond
	srv := wahafake.NewT(t, wahafake.Options{Sessions: 1, LogoutLatency: latency, CrashOnConcurrentLogout: true})
	first := make(chan int, 1)
	go func() {
		resp, err := httpPost(srv.URL()+"/api/sessions/session-0001/logout", "")
		if err != nil {
			first <- 0
			return
		}
		first <- resp.StatusCode
	}()
	require.Eventually(t, func() bool { return srv.InFlight() == 1 }, 10*time.Second, 5*time.Millisecond)
	_, err := httpPost(srv.URL()+"/api/sessions/session-0001/logout", "")
	require.Error(t, err, "the overlapping logout's connection is dropped")
	require.Equal(t, http.StatusCreated, <-first)
	require.Equal(t, 1, srv.ConcurrentSameSession())
	require.Equal(t, map[int]int{0: 1, 201: 1}, srv.CallsByStatus())

	// A STOPPED session is never dropped (the crash needs a running one),
	// but the overlap is still counted.
	srv.ResetStats()
	srv.AddSession("stopped", wahafake.StatusStopped)
	srv.Script("stopped", wahafake.Fault{Delay: latency, Times: 1})
	go func() {
		resp, err := httpPost(srv.URL()+"/api/sessions/stopped/logout", "")
		if err != nil {
			first <- 0
			return
		}
		first <- resp.StatusCode
	}()
	require.Eventually(t, func() bool { return srv.InFlight() == 1 }, 10*time.Second, 5*time.Millisecond)
	resp, err := httpPost(srv.URL()+"/api/sessions/stopped/logout", "")
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	require.Equal(t, http.StatusCreated, <-first)
}
