package main

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/wahaclient"
	"github.com/wahaq/wahaq/wahaclient/wahafake"
	"github.com/wahaq/wahaq/wahaqtest"
)

const secret = "sup3r-s3cret"

func noEnv(string) string { return "" }

func TestParseArgs(t *testing.T) {
	t.Parallel()
	cfg, err := parseArgs([]string{"--addr", "127.0.0.1:0", "--api-key", secret, "--sessions", "5", "--latency", "3s",
		"--legacy", "--scoped-key", "ops=a,b", "--scoped-key", "ci=c", "--fail", "a=503x3", "--fail", "b=reset", "--fail", "c=429", "--fail", "a=resetx1"}, noEnv, &bytes.Buffer{})
	require.NoError(t, err)
	require.Equal(t, wahafake.Options{
		APIKey: secret, Sessions: 5, LogoutLatency: 3 * time.Second, Legacy: true, Addr: "127.0.0.1:0", Seed: 1,
		ScopedKeys: map[string][]string{"ops": {"a", "b"}, "ci": {"c"}},
	}, cfg.opts)
	require.Equal(t, map[string][]wahafake.Fault{
		"a": {{Status: 503, Times: 3}, {Reset: true, Times: 1}},
		"b": {{Reset: true}},
		"c": {{Status: 429}},
	}, cfg.faults)

	// WAHA_API_KEY is the default; the flag wins.
	cfg, err = parseArgs(nil, func(k string) string { return map[string]string{"WAHA_API_KEY": "env"}[k] }, &bytes.Buffer{})
	require.NoError(t, err)
	require.Equal(t, "env", cfg.opts.APIKey)
	require.Equal(t, "127.0.0.1:3000", cfg.opts.Addr)
	cfg, err = parseArgs([]string{"--api-key", ""}, func(string) string { return "env" }, &bytes.Buffer{})
	require.NoError(t, err)
	require.Equal(t, "", cfg.opts.APIKey, "an explicit empty flag means any key")

	// webhooks: the signing key from WHATSAPP_HOOK_HMAC_KEY, as on WAHA; the flag wins
	hookEnv := func(k string) string { return map[string]string{"WHATSAPP_HOOK_HMAC_KEY": "hook-env"}[k] }
	cfg, err = parseArgs([]string{"--webhook-url", "http://127.0.0.1:8080/v1/waha/default/events", "--webhook-duplicates", "1"}, hookEnv, &bytes.Buffer{})
	require.NoError(t, err)
	require.Equal(t, wahafake.Webhook{URL: "http://127.0.0.1:8080/v1/waha/default/events", HMACKey: "hook-env", Duplicates: 1}, cfg.opts.Webhook)
	cfg, err = parseArgs([]string{"--webhook-url", "http://h/x", "--webhook-hmac-key", "flag", "--webhook-core"}, hookEnv, &bytes.Buffer{})
	require.NoError(t, err)
	require.Equal(t, wahafake.Webhook{URL: "http://h/x", HMACKey: "flag", Core: true}, cfg.opts.Webhook)
}

// The current line's flags: the mode, WAHA_NO_API_KEY, the lock timeout,
// keys bound to actions and the lock-timeout fault.
func TestParseArgsCurrentLine(t *testing.T) {
	t.Parallel()
	cfg, err := parseArgs([]string{"--current-line", "--no-api-key", "--lock-timeout", "2s",
		"--scoped-key", "ops=a,b:read,control", "--scoped-key", "old=c", "--fail", "a=lockx2", "--fail", "b=501"}, noEnv, &bytes.Buffer{})
	require.NoError(t, err)
	require.True(t, cfg.opts.CurrentLine)
	require.True(t, cfg.opts.NoAPIKey)
	require.Equal(t, 2*time.Second, cfg.opts.LockTimeout)
	require.Equal(t, []wahafake.Key{{Key: "ops", Sessions: []string{"a", "b"}, Actions: []string{"read", "control"}}}, cfg.opts.Keys)
	require.Equal(t, map[string][]string{"old": {"c"}}, cfg.opts.ScopedKeys)
	require.Equal(t, map[string][]wahafake.Fault{"a": {{LockTimeout: true, Times: 2}}, "b": {{Status: 501}}}, cfg.faults)
}

// On the current line without a key the fake generates one and says it,
// as WAHA does at start.
func TestCurrentLinePrintsTheGeneratedKey(t *testing.T) {
	t.Parallel()
	var stderr bytes.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	key := make(chan string, 1)
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--addr", "127.0.0.1:0", "--current-line"}, func(k string) string {
			return map[string]string{"WAHA_API_KEY": "123"}[k]
		}, &stderr, func(s *wahafake.Server) { key <- s.APIKey() })
	}()
	k := <-key
	cancel()
	require.Equal(t, 0, <-done)
	require.Len(t, k, 32)
	require.Contains(t, stderr.String(), "current line "+wahafake.CurrentVersion)
	require.Contains(t, stderr.String(), "API key required; generated: "+k)
}

func TestBadFlagsExitTwo(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args    []string
		mention string
	}{
		{[]string{"--sessions", "many"}, "invalid value"},
		{[]string{"--latency", "soon"}, "invalid value"},
		{[]string{"--nope"}, "flag provided but not defined"},
		{[]string{"extra"}, "takes no arguments"},
		{[]string{"--sessions", "-1"}, "--sessions must be 0 or more"},
		{[]string{"--latency", "-1s"}, "--latency must not be negative"},
		{[]string{"--core", "--sessions", "2"}, "--core allows only"},
		{[]string{"--scoped-key", "justakey"}, "--scoped-key must look like"},
		{[]string{"--fail", "a"}, "must look like SESSION=STATUS"},
		{[]string{"--fail", "a=boom"}, "must look like SESSION=STATUS"},
		{[]string{"--fail", "a=99"}, "must look like SESSION=STATUS"},
		{[]string{"--fail", "a=503x0"}, "must look like SESSION=STATUS"},
		{[]string{"--fail", "=503"}, "must look like SESSION=STATUS"},
		{[]string{"--webhook-url", "localhost:8080"}, "--webhook-url must be an http://"},
		{[]string{"--webhook-core"}, "need --webhook-url"},
		{[]string{"--webhook-url", "http://127.0.0.1:1/x", "--webhook-duplicates", "-1"}, "--webhook-duplicates must be 0 or more"},
		{[]string{"--scoped-key", "k=a:fly"}, `unknown action "fly"`},
		{[]string{"--scoped-key", "k=a:"}, "--scoped-key must look like"},
		{[]string{"--no-api-key"}, "--no-api-key needs --current-line"},
		{[]string{"--lock-timeout", "-1s"}, "--lock-timeout must not be negative"},
	}
	for _, tc := range tests {
		var stderr bytes.Buffer
		code := run(context.Background(), append([]string{"--addr", "127.0.0.1:0"}, tc.args...), noEnv, &stderr, nil)
		require.Equal(t, 2, code, "%v", tc.args)
		require.Contains(t, stderr.String(), tc.mention, "%v", tc.args)
	}
	var stderr bytes.Buffer
	require.Equal(t, 0, run(context.Background(), []string{"--help"}, noEnv, &stderr, nil))
	require.Contains(t, stderr.String(), "Usage: fakewaha")
}

func TestRunServesUntilCanceled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr wahaqtest.LogBuffer
	ready := make(chan *wahafake.Server, 1)
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"--addr", "127.0.0.1:0", "--api-key", secret, "--sessions", "2", "--fail", "session-0001=503x1"},
			noEnv, &stderr, func(s *wahafake.Server) { ready <- s })
	}()
	srv := <-ready

	c, err := wahaclient.New(wahaclient.Config{BaseURL: srv.URL(), APIKey: secret})
	require.NoError(t, err)
	_, err = c.Logout(ctx, "session-0001")
	require.ErrorIs(t, err, wahaclient.ErrTransient, "--fail is applied")
	res, err := c.Logout(ctx, "session-0001")
	require.NoError(t, err)
	require.Equal(t, "STARTING", res.Session.Status)
	sessions, err := c.ListSessions(ctx, true)
	require.NoError(t, err)
	require.Len(t, sessions, 3)

	cancel()
	require.Equal(t, 0, <-code)
	log := stderr.String()
	require.Contains(t, log, "listening on "+srv.URL())
	require.Contains(t, log, "stopping")
	require.NotContains(t, log, secret)
}

// TestSignalStopsCleanly runs the real main (this test binary re-executed, see
// TestMain) and stops it with SIGTERM.
func TestSignalStopsCleanly(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "FAKEWAHA_HELPER=1", "WAHA_API_KEY="+secret)
	var stderr wahaqtest.LogBuffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	re := regexp.MustCompile(`listening on (http://127\.0\.0\.1:\d+)`)
	var url string
	require.Eventually(t, func() bool {
		m := re.FindStringSubmatch(stderr.String())
		if m != nil {
			url = m[1]
		}
		return m != nil
	}, 30*time.Second, 10*time.Millisecond)

	resp, err := http.Get(url + "/api/sessions?all=true")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "the key came from WAHA_API_KEY")

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, cmd.Wait(), "exit code 0 on SIGTERM; stderr: %s", stderr.String())
	require.NotContains(t, stderr.String(), secret)
	require.True(t, strings.Contains(stderr.String(), "stopping"))
}

// TestMain turns the test binary into fakewaha itself when re-executed by
// TestSignalStopsCleanly.
func TestMain(m *testing.M) {
	if os.Getenv("FAKEWAHA_HELPER") == "1" {
		os.Args = []string{"fakewaha", "--addr", "127.0.0.1:0"}
		main()
		return
	}
	os.Exit(m.Run())
}
