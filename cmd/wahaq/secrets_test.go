package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/tasks"
	"github.com/wahaq/wahaq/wahaqtest"
	"github.com/wahaq/wahaq/worker"
)

// TestCLIKeyEchoedByWAHAIsStoredNowhere: a WAHA server that answers
// 500 {"message":"bad key <the key>"} (with an ESC sequence for good
// measure) leaves the key nowhere: not in Redis (wahaq's record, asynq's
// task, the dead-letter queue), not in the worker's log, not in what the
// CLI prints; and the CLI's human output carries no ESC.
func TestCLIKeyEchoedByWAHAIsStoredNowhere(t *testing.T) {
	c := newCLI(t)
	const key = "echoed-waha-key-5c2f9a1e"
	waha := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprintf(w, `{"message":"bad key %s \u001b[31mred\u001b[0m"}`, r.Header.Get("X-Api-Key"))
	}))
	t.Cleanup(waha.Close)
	logs := &wahaqtest.LogBuffer{}
	log := zerolog.New(logs).Level(zerolog.DebugLevel)
	w, err := worker.New(worker.Config{Redis: c.rdb, Namespace: c.ns,
		Instances: []worker.Instance{{Name: "default", BaseURL: waha.URL, APIKey: key}},
		RetryBase: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond, Logger: &log})
	require.NoError(t, err)
	require.NoError(t, w.Start())
	t.Cleanup(w.Shutdown)

	// No retries: the first 500 is final (retries_exhausted).
	id := strings.TrimSpace(c.ok("enqueue", "--session", "echo", "--max-retries", "0").stdout)
	r := c.run("status", id, "--wait", "--timeout", "20s", "--json")
	require.Equal(t, exitFailure, r.code, "%s %s", r.stdout, r.stderr)
	var tk tasks.Task
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &tk))
	require.Equal(t, tasks.StateDead, tk.State)
	require.NotNil(t, tk.LastError)
	assert.Contains(t, *tk.LastError, "bad key [redacted]", "the message is kept, the key is not")

	human := c.run("status", id).stdout + c.ok("dlq", "list").stdout
	assert.Contains(t, human, "bad key [redacted]")
	assert.NotContains(t, human, "\x1b", "no ESC reaches the terminal")
	printed := human + r.stdout + r.stderr + c.ok("dlq", "list", "--json").stdout
	assert.NotContains(t, printed, key)

	ctx := context.Background()
	keys := c.keys()
	require.NotEmpty(t, keys)
	for _, k := range keys {
		var dump string
		switch typ := c.rdb.Type(ctx, k).Val(); typ {
		case "string":
			dump = c.rdb.Get(ctx, k).Val()
		case "hash":
			dump = fmt.Sprint(c.rdb.HGetAll(ctx, k).Val())
		case "list":
			dump = fmt.Sprint(c.rdb.LRange(ctx, k, 0, -1).Val())
		case "set":
			dump = fmt.Sprint(c.rdb.SMembers(ctx, k).Val())
		case "zset":
			dump = fmt.Sprint(c.rdb.ZRange(ctx, k, 0, -1).Val())
		case "stream":
			dump = fmt.Sprint(c.rdb.XRange(ctx, k, "-", "+").Val())
		}
		assert.NotContains(t, dump, key, "Redis key %s holds the WAHA key", k)
	}
	w.Shutdown()
	assert.NotContains(t, logs.String(), key, "the worker logged the key")
	assert.Contains(t, logs.String(), "[redacted]", "the log line is there, redacted")
}
