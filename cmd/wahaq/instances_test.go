package main

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/preflight"
	"github.com/wahaq/wahaq/wahaclient/wahafake"
)

// `wahaq instances check` against a healthy fake, a fake that accepts any
// key, a wrong key and a server that is down: what it says, its exit
// codes, and --json (the API's answer).
func TestCLIInstancesCheck(t *testing.T) {
	c := newCLI(t)
	healthy := wahafake.NewT(t, wahafake.Options{CurrentLine: true, APIKey: "good-key-1", Sessions: 2})
	anyKey := wahafake.NewT(t, wahafake.Options{Core: true})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	down := "http://" + ln.Addr().String()
	require.NoError(t, ln.Close())

	// The healthy one, as the default server.
	r := c.ok("instances", "check", "--waha-base-url", healthy.URL(), "--waha-api-key", "good-key-1")
	assert.Contains(t, r.stdout, "default  "+healthy.URL()+"  OK\n")
	assert.Contains(t, r.stdout, "  version    "+wahafake.CurrentVersion+"\n")
	assert.Contains(t, r.stdout, "  key        accepted; the server refuses a wrong key\n")
	assert.Contains(t, r.stdout, "  sessions   3 (STOPPED 1, WORKING 2)\n")
	assert.Regexp(t, `  reachable  yes \(round trip [0-9.]+ ms\)`, r.stdout)
	assert.NotContains(t, r.stdout, "warning")

	r = c.ok("instances", "check", "--waha-base-url", healthy.URL(), "--waha-api-key", "good-key-1", "--instance", "default", "--json")
	var one preflight.Result
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &one))
	assert.True(t, one.OK)
	assert.Equal(t, "default", one.Instance)
	assert.Equal(t, map[string]int{"STOPPED": 1, "WORKING": 2}, one.Sessions)
	var raw map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &raw))
	for _, k := range []string{"instance", "base_url", "ok", "reachable", "version", "key_accepted", "key_enforced", "sessions", "sessions_total", "round_trip_ms", "problems", "warnings"} {
		assert.Contains(t, raw, k)
	}

	// A server that accepts any key says so, and passes.
	r = c.ok("instances", "check", "--waha-base-url", anyKey.URL(), "--waha-api-key", "anything")
	assert.Contains(t, r.stdout, "accepted; the server accepts ANY key: a wrong key will not be detected")
	assert.Contains(t, r.stdout, "warning: this server accepts any key")

	// A wrong key: 401, exit 1.
	r = c.run("instances", "check", "--waha-base-url", healthy.URL(), "--waha-api-key", "wrong-key-1")
	assert.Equal(t, exitFailure, r.code)
	assert.Contains(t, r.stdout, "default  "+healthy.URL()+"  FAILED\n")
	assert.Contains(t, r.stdout, "  key        REFUSED; the server refuses a wrong key\n")
	assert.Contains(t, r.stdout, "problem: the server refuses the configured key (401)")
	assert.Contains(t, r.stderr, "wahaq: 1 server of 1 failed the check")
	assert.NotContains(t, r.stdout+r.stderr, "wrong-key-1")

	// A server that is down: exit 1, --json says why.
	r = c.run("instances", "check", "--waha-base-url", down, "--json")
	assert.Equal(t, exitFailure, r.code)
	var all []preflight.Result
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &all))
	require.Len(t, all, 1)
	assert.False(t, all[0].OK)
	assert.False(t, all[0].Reachable)
	assert.Contains(t, all[0].Problems[0], "unreachable")

	// Several servers from an instances file, one down; the key of one
	// missing from this environment is a problem too.
	dir := t.TempDir()
	file := filepath.Join(dir, "instances.yaml")
	require.NoError(t, os.WriteFile(file, []byte(`instances:
  - name: good
    base_url: `+healthy.URL()+`
    api_key_env: WAHAQ_TEST_CHECK_KEY_GOOD
  - name: old
    base_url: `+anyKey.URL()+`
    api_key_env: ""
  - name: gone
    base_url: `+down+`
    api_key_env: ""
  - name: nokey
    base_url: http://localhost:1
    api_key_env: WAHAQ_TEST_CHECK_KEY_UNSET
`), 0o600))
	t.Setenv("WAHAQ_TEST_CHECK_KEY_GOOD", "good-key-1")
	r = c.run("instances", "check", "--instances", file)
	assert.Equal(t, exitFailure, r.code, r.stdout+r.stderr)
	assert.Contains(t, r.stdout, "good  "+healthy.URL()+"  OK\n")
	assert.Contains(t, r.stdout, "old  "+anyKey.URL()+"  OK\n")
	assert.Contains(t, r.stdout, "gone  "+down+"  FAILED\n")
	assert.Contains(t, r.stdout, "problem: its key is not in this process's environment (WAHAQ_TEST_CHECK_KEY_UNSET is unset or empty)")
	assert.Contains(t, r.stderr, "3 servers of 5 failed the check", "gone, nokey and the default server of the flags (port 9)")
	r = c.ok("instances", "check", "--instances", file, "--instance", "good")
	assert.Contains(t, r.stdout, "good  ")
	assert.NotContains(t, r.stdout, "old  ")

	// An unknown instance is bad usage.
	r = c.run("instances", "check", "--instances", file, "--instance", "nosuch")
	assert.Equal(t, exitUsage, r.code)
	assert.Contains(t, r.stderr, `unknown instance "nosuch"; the configured ones are default, good, old, gone, nokey`)
}
