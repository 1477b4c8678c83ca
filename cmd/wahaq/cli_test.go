package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/redistest"
	"github.com/wahaq/wahaq/tasks"
	"github.com/wahaq/wahaq/wahaclient/wahafake"
	"github.com/wahaq/wahaq/worker"
)

// The tests of this file call run in-process, one at a time: run is the
// whole command line and sets process-wide state (go-redis' logger), so they
// are not parallel. Every setting is passed as a flag, never with t.Setenv.

// cli runs wahaq commands against a real Redis in a namespace of its own.
type cli struct {
	t   *testing.T
	url string
	ns  string
	rdb *redis.Client
}

func newCLI(t *testing.T) *cli {
	t.Helper()
	return &cli{t: t, url: redistest.URL(t), ns: redistest.Namespace(t), rdb: redistest.Client(t)}
}

type result struct {
	code           int
	stdout, stderr string
}

// run runs one command line with this test's Redis and namespace. The
// settings are flags, so the environment of whoever runs the tests cannot
// change them (--instances= cancels a WAHAQ_INSTANCES file).
func (c *cli) run(args ...string) result {
	c.t.Helper()
	var out, errb bytes.Buffer
	// The settings come first so that a test's own flags win.
	full := append([]string{"--redis-url", c.url, "--namespace", c.ns, "--instances=",
		"--waha-base-url", "http://127.0.0.1:9", "--max-retries", "10", "--log-level", "warn"}, args...)
	code := run(full, &out, &errb)
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// ok runs a command that must succeed.
func (c *cli) ok(args ...string) result {
	c.t.Helper()
	r := c.run(args...)
	require.Equalf(c.t, exitOK, r.code, "wahaq %s\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.stdout, r.stderr)
	return r
}

// queued returns the pending and scheduled tasks of the default queue (0
// when the queue does not exist yet).
func (c *cli) queued() (pending, scheduled int) {
	c.t.Helper()
	info, err := asynq.NewInspectorFromRedisClient(c.rdb).GetQueueInfo(c.ns + ":default")
	if err != nil {
		return 0, 0
	}
	return info.Pending, info.Scheduled
}

// keys returns every Redis key of this namespace (one SCAN of the whole
// keyspace: slow on a big shared Redis, so use it sparingly).
func (c *cli) keys() []string {
	c.t.Helper()
	var ks []string
	iter := c.rdb.Scan(context.Background(), 0, "*"+c.ns+"*", 10000).Iterator()
	for iter.Next(context.Background()) {
		ks = append(ks, iter.Val())
	}
	require.NoError(c.t, iter.Err())
	return ks
}

func (c *cli) task(id string) tasks.Task {
	c.t.Helper()
	r := c.ok("status", id, "--json")
	var tk tasks.Task
	require.NoError(c.t, json.Unmarshal([]byte(r.stdout), &tk), r.stdout)
	require.Equal(c.t, 1, strings.Count(r.stdout, "\n"), "one JSON object and a newline")
	return tk
}

// sentence checks that stderr is one line from wahaq that mentions want,
// with no stack trace and no Go error dump.
func sentence(t *testing.T, stderr, want string) {
	t.Helper()
	assert.Equal(t, 1, strings.Count(stderr, "\n"), "stderr should be one line: %q", stderr)
	firstLine(t, stderr, want)
}

// firstLine checks that stderr starts with a line from wahaq that mentions
// want, and holds no stack trace.
func firstLine(t *testing.T, stderr, want string) {
	t.Helper()
	assert.True(t, strings.HasPrefix(stderr, "wahaq: "), "stderr should start with \"wahaq: \": %q", stderr)
	line, _, _ := strings.Cut(stderr, "\n")
	assert.Contains(t, line, want)
	for _, bad := range []string{"goroutine ", "panic", ".go:", "Usage:"} {
		assert.NotContains(t, stderr, bad)
	}
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

func TestCLIBadInputExits2AndEnqueuesNothing(t *testing.T) {
	c := newCLI(t)
	emptyFile := writeFile(t, "empty.txt", "\n# nothing here\n   \n# still nothing\n")
	badFile := writeFile(t, "bad.txt", "good-1\n# a comment\nbad name!\ngood-2\n")
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	const id = "0b8e4f6a-5d0e-4a7c-9a57-2f1f0b2f7d11"
	instFile := func(name, body string) string {
		return writeFile(t, name, "instances:\n  - name: eu\n    base_url: http://127.0.0.1:9/eu\n"+body)
	}
	infRate := instFile("inf.yaml", "    api_key_env: \"\"\n    rate: .inf\n")
	nanRate := instFile("nan.yaml", "    api_key_env: \"\"\n    rate: .nan\n")
	hugeRate := instFile("huge.yaml", "    api_key_env: \"\"\n    rate: 1e308\n")
	badTimeout := instFile("timeout.yaml", "    api_key_env: \"\"\n    timeout: forever\n")
	unsetKey := instFile("unset.yaml", "    api_key_env: WAHAQ_TEST_SURELY_UNSET_KEY\n")
	noKeyEnv := instFile("nokeyenv.yaml", "")
	twice := instFile("twice.yaml", "    api_key_env: \"\"\n  - name: us\n    base_url: HTTP://127.0.0.1:9/eu/\n    api_key_env: \"\"\n")

	cases := []struct {
		name string
		args []string
		want string // in the sentence on stderr
	}{
		{"enqueue without --session", []string{"enqueue"}, "--session is required"},
		{"enqueue bad session name", []string{"enqueue", "--session", "sales bot!"}, `session name "sales bot!" is not valid`},
		{"enqueue too long session name", []string{"enqueue", "--session", strings.Repeat("s", 55)}, "at most 54 characters"},
		{"enqueue unknown instance", []string{"enqueue", "--session", "a", "--instance", "nope"}, `unknown instance "nope"`},
		{"enqueue --at in the past", []string{"enqueue", "--session", "a", "--at", "2020-01-01T00:00:00Z"}, "is in the past"},
		{"enqueue --at and --in", []string{"enqueue", "--session", "a", "--at", future, "--in", "5m"}, "either --in or --at, not both"},
		{"enqueue bad --in", []string{"enqueue", "--session", "a", "--in", "soon"}, `--in "soon" is not a duration`},
		{"enqueue negative --in", []string{"enqueue", "--session", "a", "--in", "-5m"}, "negative"},
		{"enqueue bad --at", []string{"enqueue", "--session", "a", "--at", "tomorrow"}, "not an RFC 3339 time"},
		{"enqueue positional argument", []string{"enqueue", "sales-bot"}, "takes no arguments"},
		{"unknown flag", []string{"enqueue", "--session", "a", "--sesion", "b"}, "unknown flag: --sesion"},
		{"unknown command", []string{"enqeue", "--session", "a"}, `unknown command "enqeue"`},
		{"serve positional argument (cobra.NoArgs)", []string{"serve", "extra"}, `unknown command "extra" for "wahaq serve"`},
		{"flag needs an argument", []string{"enqueue", "--session"}, "flag needs an argument: --session"},
		{"invalid flag value", []string{"status", id, "--wait", "--timeout", "soon"}, `invalid argument "soon"`},
		{"completion with an extra argument", []string{"completion", "bash", "extra"}, `unknown command "extra"`},
		{"enqueue ISO --in with months", []string{"enqueue", "--session", "a", "--in", "P1M"}, `--in "P1M" is not a duration`},
		{"bad WAHAQ_MAX_RETRIES", []string{"enqueue", "--session", "a", "--max-retries=x"}, `"--max-retries" flag: "x" is not a whole number`},
		{"bulk with two sources", []string{"bulk", "--instance", "default", "--session", "a", "--all"}, "exactly one way"},
		{"bulk with no source", []string{"bulk", "--instance", "default"}, "exactly one way"},
		{"bulk without --instance", []string{"bulk", "--session", "a"}, "--instance is required"},
		{"bulk --status without --all", []string{"bulk", "--instance", "default", "--session", "a", "--status", "WORKING"}, "--status filters --all"},
		{"bulk --all with a bad status", []string{"bulk", "--instance", "default", "--all", "--status", "up-and-running"}, `status "UP-AND-RUNNING" is not a WAHA session status`},
		{"bulk bad --session among good", []string{"bulk", "--instance", "default", "--session", "a,b", "--session", "c d"}, "--session #3"},
		{"bulk empty sessions file", []string{"bulk", "--instance", "default", "--sessions-file", emptyFile}, "names no session"},
		{"bulk sessions file with a bad name", []string{"bulk", "--instance", "default", "--sessions-file", badFile}, "bad.txt line 3: invalid input: session name \"bad name!\""},
		{"bulk missing sessions file", []string{"bulk", "--instance", "default", "--sessions-file", filepath.Join(t.TempDir(), "nope.txt")}, "does not exist"},
		{"bulk unknown instance", []string{"bulk", "--instance", "nope", "--session", "a"}, `unknown instance "nope"`},
		{"bulk --at in the past", []string{"bulk", "--instance", "default", "--session", "a", "--at", "2020-01-01T00:00:00Z"}, "is in the past"},
		{"status malformed id", []string{"status", "not/an-id"}, `task id "not/an-id" is not valid`},
		{"status without id", []string{"status"}, "status needs a TASK_ID"},
		{"status --timeout without --wait", []string{"status", id, "--timeout", "5s"}, "--timeout only makes sense with --wait"},
		{"batch malformed id", []string{"batch", "a b"}, `batch id "a b" is not valid`},
		{"cancel malformed id", []string{"cancel", "x;y"}, `task id "x;y" is not valid`},
		{"batch list bad --limit", []string{"batch", "list", "--limit", "1001"}, "--limit must be from 1 to 1000"},
		{"cancel two ids", []string{"cancel", id, id}, "takes one TASK_ID, got 2"},
		{"dlq without subcommand", []string{"dlq"}, "dlq needs a subcommand"},
		{"dlq unknown subcommand", []string{"dlq", "drop"}, `unknown dlq subcommand "drop"`},
		{"dlq list bad --limit", []string{"dlq", "list", "--limit", "0"}, "--limit must be from 1 to 1000"},
		{"dlq list malformed --batch", []string{"dlq", "list", "--batch", "a b"}, `batch id "a b" is not valid`},
		{"batch tasks malformed id", []string{"batch", "tasks", "a b"}, `batch id "a b" is not valid`},
		{"batch tasks without id", []string{"batch", "tasks"}, "batch tasks needs a BATCH_ID"},
		{"batch tasks unknown --state", []string{"batch", "tasks", id, "--state", "failed"}, `state "failed" is not one of`},
		{"batch tasks unknown --outcome", []string{"batch", "tasks", id, "--outcome", "ok"}, `outcome "ok" is not one of`},
		{"batch tasks bad --limit", []string{"batch", "tasks", id, "--limit", "1001"}, "--limit must be from 1 to 1000"},
		{"batch tasks bad --cursor", []string{"batch", "tasks", id, "--cursor", "x"}, `cursor "x" is not one this listing returned`},
		{"dlq requeue neither ids nor --all", []string{"dlq", "requeue"}, "not both or neither"},
		{"dlq requeue ids and --all", []string{"dlq", "requeue", "--all", id}, "not both or neither"},
		{"dlq requeue bad --outcome", []string{"dlq", "requeue", "--all", "--outcome", "logged_out"}, `--outcome "logged_out" is not a dead-letter outcome`},
		{"dlq purge --all without --yes, not interactive", []string{"dlq", "purge", "--all"}, "add --yes to confirm"},
		{"worker with bad settings", []string{"worker", "--concurrency", "0", "--metrics-addr", ""}, "WAHAQ_CONCURRENCY must be at least 1"},
		{"worker with rate .inf", []string{"worker", "--instances", infRate, "--metrics-addr", ""}, `instance "eu": rate +Inf is not a number`},
		{"enqueue with rate .nan", []string{"enqueue", "--session", "a", "--instances", nanRate}, `instance "eu": rate NaN is not a number`},
		{"worker with rate 1e308", []string{"worker", "--instances", hugeRate, "--metrics-addr", ""}, "rate 1e+308 is outside"},
		{"worker with a bad timeout", []string{"worker", "--instances", badTimeout, "--metrics-addr", ""}, `timeout "forever" is not a duration`},
		{"worker with an unset api_key_env", []string{"worker", "--instances", unsetKey, "--metrics-addr", ""}, "names WAHAQ_TEST_SURELY_UNSET_KEY, which is unset or empty"},
		{"worker with no api_key_env", []string{"worker", "--instances", noKeyEnv, "--metrics-addr", ""}, `instance "eu" has no api_key_env`},
		{"worker with one server twice", []string{"worker", "--instances", twice, "--metrics-addr", ""}, `instances "eu" and "us" name the same WAHA server`},
		{"WAHA_BASE_URL with a password", []string{"enqueue", "--session", "a", "--waha-base-url", "ftp://u:hunter2@h"}, "WAHA_BASE_URL: ftp://h is not an http:// or https:// URL"},
	}
	require.GreaterOrEqual(t, len(cases), 12)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "dlq purge --all without --yes, not interactive" && isTTY(os.Stdin) {
				t.Skip("stdin is a terminal: wahaq would ask instead of refusing")
			}
			r := c.run(tc.args...)
			assert.Equal(t, exitUsage, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
			if tc.name == "unknown command" { // with "Did you mean this?"
				firstLine(t, r.stderr, tc.want)
			} else {
				sentence(t, r.stderr, tc.want)
			}
			assert.Empty(t, r.stdout)
			assert.NotContains(t, r.stderr, "hunter2")
			p, s := c.queued()
			assert.Zero(t, p+s, "a bad command line enqueued something")
		})
	}
	// One scan of the (shared, maybe large) keyspace for all the cases.
	assert.Empty(t, c.keys(), "a bad command line wrote to Redis")
}

func TestCLIEnqueueStatusCancel(t *testing.T) {
	c := newCLI(t)

	r := c.ok("enqueue", "--session", "sales-bot")
	id := strings.TrimSpace(r.stdout)
	assert.Equal(t, id+"\n", r.stdout, "plain output is the id alone")
	_, err := uuid.Parse(id)
	require.NoError(t, err, "the id is a UUID: %q", id)
	assert.Empty(t, r.stderr)

	tk := c.task(id)
	assert.Equal(t, tasks.StatePending, tk.State)
	assert.Equal(t, "sales-bot", tk.Session)
	assert.Equal(t, "default", tk.Instance)
	assert.Equal(t, 10, tk.MaxRetries)
	assert.Nil(t, tk.Outcome)
	assert.WithinDuration(t, time.Now(), tk.EnqueuedAt, time.Minute)
	p, _ := c.queued()
	assert.Equal(t, 1, p)

	// The human summary.
	r = c.ok("status", id)
	assert.Regexp(t, `(?m)^state:\s+pending$`, r.stdout)
	assert.Regexp(t, `(?m)^session:\s+sales-bot on default$`, r.stdout)

	// Enqueueing again returns the same task.
	r = c.ok("enqueue", "--session", "sales-bot")
	assert.Equal(t, id+"\n", r.stdout)
	assert.Contains(t, r.stderr, "already has a logout task")
	r = c.ok("enqueue", "--session", "sales-bot", "--json")
	var dup tasks.Task
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &dup))
	assert.Equal(t, id, dup.ID)
	assert.True(t, dup.Deduplicated)
	assert.Contains(t, r.stdout, `"deduplicated":true`)
	p, _ = c.queued()
	assert.Equal(t, 1, p, "deduplicated enqueues create nothing")

	// Cancel, twice.
	r = c.ok("cancel", id)
	assert.Contains(t, r.stdout, "task "+id+" canceled")
	assert.Equal(t, tasks.StateCanceled, c.task(id).State)
	c.ok("cancel", id)
	p, _ = c.queued()
	assert.Zero(t, p)

	// --wait on a canceled task: printed, exit 1 (documented).
	r = c.run("status", id, "--wait")
	assert.Equal(t, exitFailure, r.code)
	assert.Regexp(t, `(?m)^state:\s+canceled$`, r.stdout)
	sentence(t, r.stderr, "ended canceled")

	// A canceled session can be enqueued again: a new task.
	r = c.ok("enqueue", "--session", "sales-bot", "--json")
	var again tasks.Task
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &again))
	assert.NotEqual(t, id, again.ID)
	assert.False(t, again.Deduplicated)
	assert.NotContains(t, r.stdout, "deduplicated")

	// --wait --timeout on a task nobody works on.
	start := time.Now()
	r = c.run("status", again.ID, "--wait", "--timeout", "400ms")
	assert.Equal(t, exitFailure, r.code)
	sentence(t, r.stderr, "is still pending after 400ms")
	assert.Less(t, time.Since(start), 5*time.Second)
	assert.Regexp(t, `(?m)^state:\s+pending$`, r.stdout, "the task is printed all the same")

	// Scheduled.
	r = c.ok("enqueue", "--session", "later-bot", "--in", "1h", "--json")
	var later tasks.Task
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &later))
	assert.Equal(t, tasks.StateScheduled, later.State)
	require.NotNil(t, later.ScheduledFor)
	assert.WithinDuration(t, time.Now().Add(time.Hour), *later.ScheduledFor, time.Minute)
	assert.Equal(t, tasks.StateScheduled, c.task(later.ID).State)
	_, s := c.queued()
	assert.Equal(t, 1, s)

	// --in takes a day unit and ISO 8601 durations, as the HTTP API does.
	for i, tc := range []struct {
		in   string
		want time.Duration
	}{{"7d", 7 * 24 * time.Hour}, {"1d12h", 36 * time.Hour}, {"PT30M", 30 * time.Minute}, {"P1DT2H", 26 * time.Hour}} {
		r = c.ok("enqueue", "--session", fmt.Sprintf("iso-bot-%d", i), "--in", tc.in, "--json")
		var iso tasks.Task
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &iso))
		require.NotNil(t, iso.ScheduledFor, tc.in)
		assert.WithinDuration(t, time.Now().Add(tc.want), *iso.ScheduledFor, time.Minute, tc.in)
	}
	_, s = c.queued()
	assert.Equal(t, 5, s)

	// --at works too.
	at := time.Now().Add(2 * time.Hour).UTC().Truncate(time.Second)
	r = c.ok("enqueue", "--session", "at-bot", "--at", at.Format(time.RFC3339), "--json")
	var atTask tasks.Task
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &atTask))
	require.NotNil(t, atTask.ScheduledFor)
	assert.True(t, at.Equal(*atTask.ScheduledFor), "scheduled_for %s, want %s", atTask.ScheduledFor, at)

	// Unknown but well-formed ids: exit 1, not 2.
	unknown := uuid.NewString()
	r = c.run("status", unknown)
	assert.Equal(t, exitFailure, r.code)
	sentence(t, r.stderr, "task "+unknown+" not found")
	r = c.run("cancel", unknown)
	assert.Equal(t, exitFailure, r.code)
	sentence(t, r.stderr, "not found")
	r = c.run("batch", unknown)
	assert.Equal(t, exitFailure, r.code)
	sentence(t, r.stderr, "batch "+unknown+" not found")
}

func TestCLIBulkAndBatch(t *testing.T) {
	c := newCLI(t)
	c.ok("enqueue", "--session", "already")
	file := writeFile(t, "sessions.txt", "# teardown of the evening bots\nbot-1\n\n  bot-2   # trailing comment\nalready\nbot-1\n")

	r := c.ok("bulk", "--instance", "default", "--sessions-file", file)
	bid := strings.TrimSpace(r.stdout)
	_, err := uuid.Parse(bid)
	require.NoError(t, err, "the batch id is a UUID: %q", r.stdout)
	assert.Contains(t, r.stderr, "2 of 4 named sessions already had a logout task")

	r = c.ok("batch", bid, "--json")
	var b tasks.Batch
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &b))
	assert.Equal(t, int64(2), b.Total)
	assert.Equal(t, int64(2), b.Counts[tasks.StatePending])
	assert.Equal(t, int64(2), b.Deduplicated)
	assert.False(t, b.Done)
	p, _ := c.queued()
	assert.Equal(t, 3, p, "already + bot-1 + bot-2")

	r = c.ok("batch", bid)
	assert.Contains(t, r.stdout, "in progress, 0 of 2 tasks final")
	assert.Contains(t, r.stdout, "to go     2 (scheduled 0, pending 2, active 0, retrying 0)")

	// --json: the batch answer.
	r = c.ok("bulk", "--instance", "default", "--session", "bot-3,bot-4", "--session", "bot-5", "--in", "10m", "--json")
	var info tasks.BatchInfo
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &info))
	assert.Equal(t, int64(3), info.Total)
	assert.Equal(t, 3, info.Requested)
	_, s := c.queued()
	assert.Equal(t, 3, s)

	// --all: a discovery batch.
	r = c.ok("bulk", "--instance", "default", "--all", "--status", "working", "--json")
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &info))
	assert.True(t, info.Discovering)
	r = c.ok("batch", info.BatchID)
	assert.Contains(t, r.stdout, "listing the server's sessions")

	// batch list: all three batches, newest first, as the API lists them.
	r = c.ok("batch", "list", "--json")
	var list struct {
		Batches []tasks.Batch `json:"batches"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &list))
	var listed []string
	for _, lb := range list.Batches {
		listed = append(listed, lb.BatchID)
	}
	assert.ElementsMatch(t, []string{bid, info.BatchID, list.Batches[1].BatchID}, listed)
	assert.Equal(t, info.BatchID, listed[0], "the discovery batch is the newest")
	assert.Equal(t, bid, listed[2], "the first bulk is the oldest")
	r = c.ok("batch", "list", "--limit", "1")
	assert.Contains(t, r.stdout, "ID")
	assert.Contains(t, r.stdout, info.BatchID)
	assert.Contains(t, r.stdout, "listing sessions")
	assert.NotContains(t, r.stdout, bid)

	// --wait without a worker: plain progress lines (stdout is no
	// terminal), then the timeout.
	r = c.run("batch", bid, "--wait", "--timeout", "500ms")
	assert.Equal(t, exitFailure, r.code)
	assert.Contains(t, r.stdout, "batch "+bid+": 0/2 done (completed 0, dead 0, canceled 0), 2 to go")
	sentence(t, r.stderr, "is not done after 500ms (0 of 2 tasks final)")

	// A canceled task counts as done: cancel both, and --wait ends at once.
	// (bot-1 and bot-2 are the batch's tasks.)
	insp, err := tasks.NewInspector(tasks.Config{Redis: c.rdb, Namespace: c.ns})
	require.NoError(t, err)
	dl, err := insp.DeadLetters(context.Background(), "", 0, 10)
	require.NoError(t, err)
	assert.Zero(t, dl.Total)
	prod, err := tasks.NewProducer(tasks.Config{Redis: c.rdb, Namespace: c.ns})
	require.NoError(t, err)
	for _, sess := range []string{"bot-1", "bot-2"} {
		tk, err := prod.Enqueue(context.Background(), tasks.LogoutRequest{Session: sess})
		require.NoError(t, err)
		require.True(t, tk.Deduplicated)
		c.ok("cancel", tk.ID)
	}
	r = c.ok("batch", bid, "--wait")
	assert.Contains(t, r.stdout, "batch "+bid+": 2/2 done (completed 0, dead 0, canceled 2)\n")
	assert.Contains(t, r.stdout, "done, 2 of 2 tasks final")
	r = c.ok("batch", bid, "--wait", "--json")
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &b), "with --json only the batch is on stdout: %q", r.stdout)
	assert.True(t, b.Done)
	assert.Equal(t, int64(2), b.Counts[tasks.StateCanceled])
	assert.Contains(t, r.stderr, "2/2 done", "with --json the progress goes to stderr")
}

// TestCLIDeadLetters runs a worker in-process against a fake WAHA that
// refuses its key, so logouts land in the dead-letter queue, then lists,
// requeues and purges them with the CLI.
func TestCLIDeadLetters(t *testing.T) {
	c := newCLI(t)
	fake, err := wahafake.New(wahafake.Options{APIKey: "K"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = fake.Close() })
	for _, s := range []string{"s1", "s2", "s3"} {
		fake.AddSession(s, "WORKING")
	}
	w, err := worker.New(worker.Config{Redis: c.rdb, Namespace: c.ns,
		Instances: []worker.Instance{{Name: "default", BaseURL: fake.URL(), APIKey: "WRONG"}},
		RetryBase: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond})
	require.NoError(t, err)
	require.NoError(t, w.Start())
	t.Cleanup(w.Shutdown)

	r := c.ok("dlq", "list")
	assert.Equal(t, "the dead-letter queue is empty\n", r.stdout)

	var ids []string
	for _, s := range []string{"s1", "s2", "s3"} {
		ids = append(ids, strings.TrimSpace(c.ok("enqueue", "--session", s).stdout))
	}
	for _, id := range ids {
		r = c.run("status", id, "--wait", "--timeout", "20s", "--json")
		require.Equal(t, exitFailure, r.code, "a dead task exits 1: %s %s", r.stdout, r.stderr)
		var tk tasks.Task
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &tk))
		assert.Equal(t, tasks.StateDead, tk.State)
		require.NotNil(t, tk.Outcome)
		assert.Equal(t, tasks.OutcomeAuthFailed, *tk.Outcome)
		sentence(t, r.stderr, "ended dead (auth_failed)")
	}

	r = c.ok("dlq", "list")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	require.Len(t, lines, 5, r.stdout)
	assert.Regexp(t, `^ID\s+INSTANCE\s+SESSION\s+OUTCOME\s+ATTEMPTS\s+FINISHED_AT\s+LAST_ERROR$`, lines[0])
	// Dead letters are listed by time of death; tasks that died in the same
	// millisecond may come in any order, so match the rows as a set.
	listed := map[string]bool{}
	for _, line := range lines[1:4] {
		assert.Regexp(t, `^\S+\s+default\s+s\d\s+auth_failed\s+1\s+\d{4}-\d\d-\d\dT\S+Z\s+.*401`, line)
		listed[strings.Fields(line)[0]] = true
	}
	for _, id := range ids {
		assert.True(t, listed[id], "dead letter %s not listed:\n%s", id, r.stdout)
	}
	assert.Equal(t, "1-3 of 3 dead letters", lines[4])

	r = c.ok("dlq", "list", "--limit", "2", "--json")
	var page tasks.DeadLetterPage
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &page))
	assert.Len(t, page.Tasks, 2)
	assert.Equal(t, int64(3), page.Total)
	assert.Equal(t, int64(2), page.NextOffset)
	r = c.ok("dlq", "list", "--limit", "2", "--offset", "2")
	assert.Contains(t, r.stdout, "3-3 of 3 dead letters")

	// No dead letter is "rejected": nothing to requeue.
	r = c.ok("dlq", "requeue", "--all", "--outcome", "rejected")
	assert.Contains(t, r.stdout, "requeued 0, deduplicated 0, busy 0")

	// A task that is not dead cannot be requeued or purged.
	live := strings.TrimSpace(c.ok("enqueue", "--session", "live", "--in", "1h").stdout)
	r = c.run("dlq", "requeue", live)
	assert.Equal(t, exitUsage, r.code)
	sentence(t, r.stderr, "not in the dead-letter queue")
	r = c.run("dlq", "purge", uuid.NewString())
	assert.Equal(t, exitFailure, r.code)
	sentence(t, r.stderr, "not found")

	// Requeue one: it dies again (the key is still wrong), with the JSON of
	// the HTTP API.
	r = c.ok("dlq", "requeue", ids[0], "--json")
	var rq requeueResponse
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &rq))
	assert.Equal(t, 1, rq.Requeued)
	require.Len(t, rq.Results, 1)
	assert.Equal(t, tasks.RequeueResult{ID: ids[0], Status: tasks.Requeued}, rq.Results[0])
	r = c.run("status", ids[0], "--wait", "--timeout", "20s", "--json")
	assert.Equal(t, exitFailure, r.code)
	assert.Contains(t, r.stdout, `"state":"dead"`)
	// The attempt history survives the requeue: both 401s are in it.
	var requeued tasks.Task
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &requeued))
	require.Len(t, requeued.AttemptsLog, 2, r.stdout)
	for i, at := range requeued.AttemptsLog {
		// issue 22: they count on (both were numbered 1), and the second
		// says a requeue began there
		assert.Equal(t, i+1, at.Attempt)
		assert.Equal(t, i == 1, at.Requeued)
		assert.Equal(t, string(tasks.OutcomeAuthFailed), at.Outcome)
		assert.Equal(t, 401, at.HTTPStatus)
		require.NotNil(t, at.Error)
		assert.False(t, at.FinishedAt.Before(at.StartedAt))
	}
	assert.True(t, requeued.AttemptsLog[1].StartedAt.After(requeued.AttemptsLog[0].FinishedAt) ||
		requeued.AttemptsLog[1].StartedAt.Equal(requeued.AttemptsLog[0].FinishedAt))
	r = c.run("status", ids[0])
	assert.Regexp(t, `(?m)^history:\n  #1\s+\S+Z\s+\S+\s+HTTP 401\s+auth_failed\s+.*401.*\n  -- run again --\n  #2\s+.*HTTP 401\s+auth_failed`, r.stdout)

	// Purge one by id, then the rest with --all --yes.
	r = c.ok("dlq", "purge", ids[1])
	assert.Equal(t, "purged 1 dead letters\n", r.stdout)
	r = c.ok("dlq", "purge", "--all", "--yes", "--json")
	assert.JSONEq(t, `{"purged":2}`, r.stdout)
	r = c.ok("dlq", "list", "--json")
	assert.JSONEq(t, `{"tasks":[],"total":0,"next_offset":-1}`, r.stdout)
	r = c.run("status", ids[1])
	assert.Equal(t, exitFailure, r.code, "a purged task is gone")
}

func TestCLIRedisDownExits1WithASentence(t *testing.T) {
	port, err := redistest.FreePort()
	require.NoError(t, err)
	url := "redis://:s3cret-pw@127.0.0.1:" + strconv.Itoa(port) + "/0"
	for _, args := range [][]string{
		{"enqueue", "--session", "a"},
		{"dlq", "list"},
		{"worker", "--metrics-addr", ""},
	} {
		var out, errb bytes.Buffer
		code := run(append(args, "--redis-url", url, "--instances=", "--log-level", "error"), &out, &errb)
		assert.Equal(t, exitFailure, code, "%v", args)
		sentence(t, errb.String(), "does not answer")
		assert.NotContains(t, errb.String(), "s3cret-pw", "the password must not be printed")
		assert.Contains(t, errb.String(), "redis://:xxxxx@127.0.0.1:")
		assert.Empty(t, out.String())
	}
}

// `wahaq batch` shows what a discovery skipped, per reason, and --json
// carries the same counts.
func TestCLIBatchShowsSkipped(t *testing.T) {
	c := newCLI(t)
	fake := wahafake.NewT(t, wahafake.Options{})
	fake.InjectListEntries(wahafake.BadListEntries...)
	w, err := worker.New(worker.Config{Redis: c.rdb, Namespace: c.ns, Instances: []worker.Instance{{Name: "default", BaseURL: fake.URL()}}})
	require.NoError(t, err)
	require.NoError(t, w.Start())
	t.Cleanup(w.Shutdown)
	r := c.ok("bulk", "--instance", "default", "--all", "--json")
	var info tasks.BatchInfo
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &info))
	r = c.ok("batch", info.BatchID, "--wait", "--timeout", "20s")
	assert.Contains(t, r.stdout, "skipped   7 listing entries that are not sessions (not_object 2, no_name 2, bad_name 2, bad_status 1)")
	r = c.ok("batch", info.BatchID, "--json")
	var b tasks.Batch
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &b))
	assert.Equal(t, map[string]int64{"not_object": 2, "no_name": 2, "bad_name": 2, "bad_status": 1}, b.Skipped)
	assert.EqualValues(t, 1, b.Total, "the default session")
}
