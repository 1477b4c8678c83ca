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
	"github.com/wahaq/wahaq/wahaclient"
	"github.com/wahaq/wahaq/wahaclient/wahafake"
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
	w, logs := startEchoWorker(t, c, key, func(k string) string {
		return fmt.Sprintf(`{"message":"bad key %s \u001b[31mred\u001b[0m"}`, k)
	})

	// No retries: the first 500 is final (retries_exhausted).
	id, r, tk := enqueueEchoDead(t, c)
	assert.Contains(t, *tk.LastError, "bad key [redacted]", "the message is kept, the key is not")

	human := c.run("status", id).stdout + c.ok("dlq", "list").stdout
	assert.Contains(t, human, "bad key [redacted]")
	assert.NotContains(t, human, "\x1b", "no ESC reaches the terminal")
	printed := human + r.stdout + r.stderr + c.ok("dlq", "list", "--json").stdout
	assert.NotContains(t, printed, key)

	requireNotInRedis(t, c, key)
	w.Shutdown()
	assert.NotContains(t, logs.String(), key, "the worker logged the key")
	assert.Contains(t, logs.String(), "[redacted]", "the log line is there, redacted")
}

// startEchoWorker starts a worker whose one WAHA server, with key, answers
// every logout 500 with the JSON body echo makes of the key it was sent,
// and returns the worker and its debug log.
func startEchoWorker(t *testing.T, c *cli, key string, echo func(key string) string) (*worker.Worker, *wahaqtest.LogBuffer) {
	t.Helper()
	waha := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprint(w, echo(r.Header.Get("X-Api-Key")))
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
	return w, logs
}

// requireNotInRedis fails if any key of the CLI's namespace holds secret.
func requireNotInRedis(t *testing.T, c *cli, secret string) {
	t.Helper()
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
		assert.NotContains(t, dump, secret, "Redis key %s holds the secret", k)
	}
}

// TestEveryConfiguredSecretIsRedacted (issue 11 item 4): whichever of the
// worker's secrets a server echoes (the validation service's key, another
// WAHA server's key, the callback secret) and whichever server echoes it
// (WAHA or the validation service), it reaches neither the record, its
// last_error, the dead-letter queue, the CLI's output nor the worker's log.
func TestEveryConfiguredSecretIsRedacted(t *testing.T) {
	const (
		wahaKey       = "own-waha-key-77d1c0"
		otherKey      = "other-waha-key-3b9e"
		validationKey = "validation-key-a41f5e"
		// A valid secret: whsec_ + base64 of 24 bytes.
		callbackSecret = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3"
	)
	cases := []struct {
		name, secret string
		validation   bool // the validation service echoes it, WAHA is never called
	}{
		{"WAHA echoes the validation key", validationKey, false},
		{"WAHA echoes another server's key", otherKey, false},
		{"WAHA echoes the callback secret", callbackSecret, false},
		{"WAHA echoes the callback secret's key part", strings.TrimPrefix(callbackSecret, "whsec_"), false},
		{"the validation service echoes the WAHA key", wahaKey, true},
		{"the validation service echoes its own key", validationKey, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newCLI(t)
			fake := wahafake.NewT(t, wahafake.Options{})
			fake.AddSession("echo", wahafake.StatusWorking)
			fake.SetDefaultFault(&wahafake.Fault{Status: http.StatusInternalServerError, Message: "bad key " + tc.secret})
			validation := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				if !tc.validation {
					w.WriteHeader(http.StatusOK)
					return
				}
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusInternalServerError)
				fmt.Fprintf(w, `{"message":"bad key %s"}`, tc.secret)
			}))
			t.Cleanup(validation.Close)
			logs := &wahaqtest.LogBuffer{}
			log := zerolog.New(logs).Level(zerolog.DebugLevel)
			w, err := worker.New(worker.Config{Redis: c.rdb, Namespace: c.ns,
				Instances: []worker.Instance{{Name: "default", BaseURL: fake.URL(), APIKey: wahaKey},
					{Name: "other", BaseURL: "http://127.0.0.1:1", APIKey: otherKey}},
				Validation:     wahaclient.ValidatorConfig{URL: validation.URL, APIKey: validationKey},
				CallbackSecret: callbackSecret,
				RetryBase:      10 * time.Millisecond, RetryMax: 50 * time.Millisecond, Logger: &log})
			require.NoError(t, err)
			require.NoError(t, w.Start())
			t.Cleanup(w.Shutdown)

			id, r, tk := enqueueEchoDead(t, c)
			require.Contains(t, *tk.LastError, "bad key [redacted]", "the message is kept, the secret is not")
			if tc.validation {
				require.Contains(t, *tk.LastError, "validate")
			} else {
				require.Equal(t, 1, fake.LogoutCalls("echo"))
			}
			printed := r.stdout + r.stderr + c.ok("status", id).stdout + c.ok("dlq", "list").stdout + c.ok("dlq", "list", "--json").stdout
			require.NotContains(t, printed, tc.secret)
			requireNotInRedis(t, c, tc.secret)
			w.Shutdown()
			require.NotContains(t, logs.String(), tc.secret, "the worker logged the secret")
			require.Contains(t, logs.String(), "[redacted]")
		})
	}
}

// enqueueEchoDead enqueues a logout of the session "echo" with no retries,
// whose WAHA answers 500 echoing a secret, and waits with `status --wait
// --json` until it is dead. It returns the task id, the status run and the
// task it printed.
func enqueueEchoDead(t *testing.T, c *cli) (string, result, tasks.Task) {
	t.Helper()
	id := strings.TrimSpace(c.ok("enqueue", "--session", "echo", "--max-retries", "0").stdout)
	r := c.run("status", id, "--wait", "--timeout", "20s", "--json")
	require.Equal(t, exitFailure, r.code, "%s %s", r.stdout, r.stderr)
	var tk tasks.Task
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &tk))
	require.Equal(t, tasks.StateDead, tk.State)
	require.NotNil(t, tk.LastError)
	return id, r, tk
}

// TestCLIKeyInsideNamesAndStatuses (issue 22): a WAHA key that is part of
// a session's name or of a status rewrites neither. With the key "321",
// `bulk --all` takes bot-321 as well as bot-7 (it used to skip bot-321 as
// bad_name, its listed name redacted to bot-[redacted]); with a key inside
// "WORKING", `--status WORKING` still finds the working sessions (it used
// to find none).
func TestCLIKeyInsideNamesAndStatuses(t *testing.T) {
	for _, tc := range []struct {
		key    string
		status []string
		total  int64
	}{
		{"321", nil, 3}, // bot-321, bot-7 and the STOPPED default
		{"ORKIN", []string{"--status", "WORKING"}, 2},
	} {
		t.Run(tc.key, func(t *testing.T) {
			c := newCLI(t)
			fake := wahafake.NewT(t, wahafake.Options{APIKey: tc.key})
			fake.AddSession("bot-321", wahafake.StatusWorking)
			fake.AddSession("bot-7", wahafake.StatusWorking)
			w, err := worker.New(worker.Config{Redis: c.rdb, Namespace: c.ns,
				Instances: []worker.Instance{{Name: "default", BaseURL: fake.URL(), APIKey: tc.key}},
				RetryBase: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond})
			require.NoError(t, err)
			require.NoError(t, w.Start())
			t.Cleanup(w.Shutdown)

			r := c.ok(append([]string{"bulk", "--instance", "default", "--all", "--json"}, tc.status...)...)
			var info tasks.BatchInfo
			require.NoError(t, json.Unmarshal([]byte(r.stdout), &info))
			c.ok("batch", info.BatchID, "--wait", "--timeout", "20s")
			r = c.ok("batch", info.BatchID, "--json")
			var b tasks.Batch
			require.NoError(t, json.Unmarshal([]byte(r.stdout), &b))
			assert.Equal(t, tc.total, b.Total)
			assert.Empty(t, b.Skipped, "nothing skipped as a bad name or status")
			assert.Equal(t, 1, fake.LogoutCalls("bot-321"))
			assert.Equal(t, 1, fake.LogoutCalls("bot-7"))
			r = c.ok("batch", "tasks", info.BatchID, "--json")
			assert.Contains(t, r.stdout, `"session":"bot-321"`)
		})
	}
}

// TestCLIKeyEchoedInAnyCaseOrInPart (issue 23 M4): a WAHA server that
// echoes the key in other letter cases and in part leaves none of it in
// Redis, the CLI's output or the worker's log: any run of
// wahaclient.MinEchoRun of the key's characters, in any case, is redacted.
func TestCLIKeyEchoedInAnyCaseOrInPart(t *testing.T) {
	c := newCLI(t)
	const key = "Echoed-Waha-Key-5c2f9a1e"
	w, logs := startEchoWorker(t, c, key, func(k string) string {
		return fmt.Sprintf(`{"message":"bad key %s and again %s / first 10 characters %s"}`, strings.ToUpper(k), strings.ToLower(k), k[:10])
	})

	id, r, tk := enqueueEchoDead(t, c)
	assert.Equal(t, "waha logout: 500 Internal Server Error: bad key [redacted] and again [redacted] / first 10 characters [redacted]", *tk.LastError)
	printed := r.stdout + r.stderr + c.ok("status", id).stdout + c.ok("dlq", "list", "--json").stdout
	w.Shutdown()
	for _, form := range []string{key, strings.ToUpper(key), strings.ToLower(key), key[:10], strings.ToLower(key[:10])} {
		assert.NotContains(t, printed, form)
		requireNotInRedis(t, c, form)
		assert.NotContains(t, logs.String(), form, "the worker logged part of the key")
	}
}
