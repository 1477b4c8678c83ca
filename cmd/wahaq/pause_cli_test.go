package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/tasks"
	"github.com/wahaq/wahaq/wahaclient/wahafake"
)

// TestCLIDryRunPauseResume: bulk --dry-run prints what the batch would take
// and enqueues nothing; batch pause and resume change the batch and say so;
// bad uses exit 2.
func TestCLIDryRunPauseResume(t *testing.T) {
	c := newCLI(t)
	fake := wahafake.NewT(t, wahafake.Options{APIKey: "cli-preview-key", Sessions: 3})
	waha := []string{"--waha-base-url", fake.URL(), "--waha-api-key", "cli-preview-key"}

	r := c.ok(append(waha, "bulk", "--instance", "default", "--all", "--status", "WORKING", "--dry-run")...)
	require.Contains(t, r.stdout, "nothing was enqueued")
	require.Contains(t, r.stdout, "would enqueue   3")
	require.Contains(t, r.stdout, "status_filter 1")
	require.Contains(t, r.stdout, "session-0001, session-0002, session-0003")
	r = c.ok(append(waha, "bulk", "--instance", "default", "--session", "session-0001", "--session", "gone", "--dry-run", "--json")...)
	var pv tasks.Preview
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &pv))
	require.Equal(t, []string{"gone"}, pv.NotOnServerNames)
	require.EqualValues(t, 2, pv.WouldEnqueue)
	require.Empty(t, c.keys(), "a preview writes nothing")
	require.Zero(t, fake.Stats().TotalLogoutCalls)

	r = c.run(append(waha, "bulk", "--instance", "default", "--all", "--dry-run", "--wait")...)
	require.Equal(t, exitUsage, r.code, r.stderr)

	id := strings.TrimSpace(c.ok("bulk", "--instance", "default", "--session", "a", "--session", "b").stdout)
	r = c.ok("batch", "pause", id)
	require.Contains(t, r.stdout, "paused")
	r = c.ok("batch", id)
	require.Contains(t, r.stdout, "paused since")
	require.Contains(t, r.stdout, "by cli:")
	entries := c.ok("audit", "--action", "batch.pause", "--json").stdout
	require.Contains(t, entries, id, "the pause is in the audit log")
	r = c.ok("batch", "pause", id, "--json")
	require.Contains(t, r.stdout, `"changed":false`)
	r = c.ok("batch", "resume", id)
	require.Contains(t, r.stdout, "resumed")
	r = c.ok("batch", id, "--json")
	require.Contains(t, r.stdout, `"paused":false`)
	r = c.run("batch", "pause", "bad.id")
	require.Equal(t, exitUsage, r.code, r.stderr)
	r = c.run("batch", "resume")
	require.Equal(t, exitUsage, r.code, r.stderr)
}
