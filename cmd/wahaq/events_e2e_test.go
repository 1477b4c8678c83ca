package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/redistest"
	"github.com/wahaq/wahaq/tasks"
	"github.com/wahaq/wahaq/wahaclient/wahafake"
)

// TestE2EConfirmationFromWAHAEvents runs the fake WAHA sending signed
// session.status webhooks (each twice) to wahaq serve's receiver while a
// worker logs sessions out: the running session's logout reads confirmed,
// once, with session_after following the events; the STOPPED session's
// (WAHA emits nothing for it) stays unconfirmed.
func TestE2EConfirmationFromWAHAEvents(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binaries")
	}
	wahaqBin, fakeBin := binaries(t)
	redisURL, ns := redistest.URL(t), redistest.Namespace(t)
	fakeAddr, serveAddr, metricsAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	const secret = "hook-s3cret"

	instances := filepath.Join(t.TempDir(), "instances.yaml")
	require.NoError(t, os.WriteFile(instances, []byte("instances:\n  - name: default\n    base_url: http://"+fakeAddr+
		"\n    api_key_env: \"\"\n    webhook_hmac_key_env: WAHA_HOOK_SECRET\n"), 0o600))
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "REDIS_URL=" + redisURL, "WAHAQ_NAMESPACE=" + ns,
		"WAHAQ_INSTANCES=" + instances, "WAHA_HOOK_SECRET=" + secret, "WAHAQ_SHUTDOWN_GRACE=5s"}

	start(t, "fakewaha", []string{"WHATSAPP_HOOK_HMAC_KEY=" + secret}, fakeBin, "--addr", fakeAddr, "--sessions", "1",
		"--latency", "200ms", "--webhook-url", "http://"+serveAddr+"/v1/waha/default/events", "--webhook-duplicates", "1")
	serve := start(t, "serve", env, wahaqBin, "serve", "--addr", serveAddr, "--insecure-no-auth")
	start(t, "worker", env, wahaqBin, "worker", "--metrics-addr", metricsAddr)
	waitHTTP(t, "http://"+fakeAddr+"/api/sessions", http.StatusOK, 10*time.Second)
	waitHTTP(t, "http://"+serveAddr+"/readyz", http.StatusOK, 15*time.Second)
	waitHTTP(t, "http://"+metricsAddr+"/readyz", http.StatusOK, 15*time.Second)

	wahaq := func(args ...string) (int, string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, wahaqBin, args...)
		cmd.Env = env
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), out.String() + errb.String()
		}
		require.NoError(t, err)
		return 0, out.String()
	}
	enqueue := func(session string) string {
		t.Helper()
		code, out := wahaq("enqueue", "--session", session, "--json")
		require.Equal(t, 0, code, out)
		var tk tasks.Task
		require.NoError(t, json.Unmarshal([]byte(out), &tk), out)
		return tk.ID
	}
	task := func(id string) tasks.Task {
		t.Helper()
		code, out := wahaq("status", id, "--json")
		require.Equal(t, 0, code, out)
		var tk tasks.Task
		require.NoError(t, json.Unmarshal([]byte(out), &tk), out)
		return tk
	}

	running, stopped := enqueue("session-0001"), enqueue("default")
	var tk tasks.Task
	require.Eventually(t, func() bool { tk = task(running); return tk.Confirmed != nil }, 30*time.Second, 100*time.Millisecond,
		"the running session's logout is confirmed by WAHA's events")
	assert.Equal(t, tasks.StateCompleted, tk.State)
	assert.Contains(t, []string{"STOPPED", "SCAN_QR_CODE"}, tk.Confirmed.Status)

	// the fake delivers STOPPED, STARTING, SCAN_QR_CODE twice each
	var st wahafake.WebhookStats
	require.Eventually(t, func() bool {
		code, body := get(t, "http://"+fakeAddr+"/_fake/webhook")
		return code == http.StatusOK && json.Unmarshal([]byte(body), &st) == nil && st.Delivered == 6
	}, 20*time.Second, 50*time.Millisecond, "six deliveries: %+v", st)
	assert.Zero(t, st.Failed)
	tk = task(running)
	var after struct{ Status string }
	require.NotNil(t, tk.Result)
	require.NoError(t, json.Unmarshal(tk.Result.SessionAfter, &after))
	assert.Equal(t, "SCAN_QR_CODE", after.Status, "session_after follows the latest event")

	s := task(stopped)
	assert.Equal(t, tasks.StateCompleted, s.State)
	assert.Nil(t, s.Confirmed, "a STOPPED session's logout emits nothing")

	// recorded once: three events recorded, three duplicates, one confirmation
	_, metrics := get(t, "http://"+serveAddr+"/metrics")
	for _, line := range []string{
		`wahaq_logouts_confirmed_total{instance="default"} 1`,
		`wahaq_waha_events_total{instance="default",result="duplicate"} 3`,
		`wahaq_waha_events_total{instance="default",result="confirmed"} 1`,
		`wahaq_waha_events_total{instance="default",result="recorded"} 2`,
	} {
		assert.Contains(t, metrics, line)
	}
	assert.NotContains(t, serve.out.String(), secret, "the secret is never logged")
}
