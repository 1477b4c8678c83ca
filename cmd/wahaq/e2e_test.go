package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/redistest"
	"github.com/wahaq/wahaq/tasks"
	"github.com/wahaq/wahaq/wahaqtest"
)

// The end-to-end test drives real processes from the outside, as a shell
// script would: the wahaq and fakewaha binaries, a real Redis.

// binaries builds wahaq and fakewaha into a directory removed when the test
// ends.
func binaries(t *testing.T) (wahaq, fakewaha string) {
	t.Helper()
	goBin, err := exec.LookPath("go")
	require.NoError(t, err, "the end-to-end test builds the binaries with the go command, which must be on PATH")
	dir := t.TempDir()
	// One go build for both: the two links run in parallel.
	cmd := exec.Command(goBin, "build", "-o", dir+string(filepath.Separator),
		"github.com/wahaq/wahaq/cmd/wahaq", "github.com/wahaq/wahaq/cmd/fakewaha")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "go build:\n%s", out)
	return filepath.Join(dir, "wahaq"), filepath.Join(dir, "fakewaha")
}

// proc is a started process whose output is kept for failure reports.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *wahaqtest.LogBuffer
	done chan struct{}
	err  error
}

// start starts a long-running process and kills it when the test ends.
func start(t *testing.T, name string, env []string, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, cmd: exec.Command(bin, args...), out: &wahaqtest.LogBuffer{}, done: make(chan struct{})}
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	require.NoError(t, p.cmd.Start())
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("output of %s:\n%s", p.name, p.out.String())
		}
	})
	return p
}

// stop sends SIGTERM and waits for the process to exit.
func (p *proc) stop(t *testing.T, within time.Duration) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-p.done:
	case <-time.After(within):
		t.Fatalf("%s did not exit within %s of SIGTERM", p.name, within)
	}
}

// waitHTTP polls url until it answers want.
func waitHTTP(t *testing.T, url string, want int, within time.Duration) {
	t.Helper()
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		resp, err := http.Get(url)
		if !assert.NoError(c, err) {
			return
		}
		resp.Body.Close()
		assert.Equal(c, want, resp.StatusCode, url)
	}, within, 50*time.Millisecond)
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	port, err := redistest.FreePort()
	require.NoError(t, err)
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}

func TestE2EDeadLetterThenRequeue(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binaries")
	}
	t0 := time.Now()
	step := func(what string) { t.Logf("%6.2fs %s", time.Since(t0).Seconds(), what) }
	wahaqBin, fakeBin := binaries(t)
	step("built")

	redisURL, ns := redistest.URL(t), redistest.Namespace(t)
	fakeAddr, metricsAddr := freeAddr(t), freeAddr(t)

	// Only what the test sets: the environment of whoever runs the tests
	// must not leak in.
	base := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(),
		"REDIS_URL=" + redisURL, "WAHAQ_NAMESPACE=" + ns, "WAHA_BASE_URL=http://" + fakeAddr,
		"WAHAQ_RETRY_BASE=50ms", "WAHAQ_RETRY_MAX=200ms", "WAHAQ_SHUTDOWN_GRACE=5s"}
	env := func(extra ...string) []string { return append(append([]string{}, base...), extra...) }

	// wahaq runs one short command and returns its exit code and output.
	wahaq := func(stdin string, args ...string) (int, string, string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, wahaqBin, args...)
		cmd.Env = env("WAHA_API_KEY=irrelevant-for-cli")
		cmd.Stdin = strings.NewReader(stdin)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else {
			require.NoError(t, err, "wahaq %v", args)
		}
		return code, out.String(), errb.String()
	}
	taskOf := func(stdout string) tasks.Task {
		t.Helper()
		var tk tasks.Task
		require.NoError(t, json.Unmarshal([]byte(stdout), &tk), stdout)
		return tk
	}

	start(t, "fakewaha", env(), fakeBin, "--addr", fakeAddr, "--api-key", "K")
	waitHTTP(t, "http://"+fakeAddr+"/api/sessions?x-api-key=K", http.StatusOK, 10*time.Second)

	step("fake up")
	// A worker with the wrong key: the logout answers 401.
	w1 := start(t, "worker (wrong key)", env("WAHA_API_KEY=WRONG"), wahaqBin, "worker", "--metrics-addr", metricsAddr)
	waitHTTP(t, "http://"+metricsAddr+"/readyz", http.StatusOK, 15*time.Second)

	step("worker up")
	code, out, errOut := wahaq("", "enqueue", "--session", "default", "--json")
	require.Equal(t, 0, code, errOut)
	tk := taskOf(out)
	id := tk.ID
	assert.Equal(t, "default", tk.Session)
	assert.Equal(t, tasks.StatePending, tk.State)

	code, out, errOut = wahaq("", "status", id, "--wait", "--timeout", "20s", "--json")
	assert.Equal(t, 1, code, "a dead task exits 1 with --wait: %s", errOut)
	assert.Contains(t, errOut, "ended dead (auth_failed)")
	tk = taskOf(out)
	assert.Equal(t, tasks.StateDead, tk.State)
	require.NotNil(t, tk.Outcome)
	assert.Equal(t, tasks.OutcomeAuthFailed, *tk.Outcome)
	assert.Equal(t, 1, tk.Attempts, "auth failures are not retried")
	assert.NotContains(t, out, "WRONG", "the key never shows")

	step("dead")
	code, out, errOut = wahaq("", "dlq", "list", "--json")
	require.Equal(t, 0, code, errOut)
	var page tasks.DeadLetterPage
	require.NoError(t, json.Unmarshal([]byte(out), &page))
	require.Equal(t, int64(1), page.Total)
	assert.Equal(t, id, page.Tasks[0].ID)

	// Fix the key: restart the worker.
	w1.stop(t, 15*time.Second)
	assert.NoError(t, w1.err, "the worker exits 0 on SIGTERM")
	step("worker stopped")
	start(t, "worker (right key)", env("WAHA_API_KEY=K"), wahaqBin, "worker", "--metrics-addr", metricsAddr)
	waitHTTP(t, "http://"+metricsAddr+"/readyz", http.StatusOK, 15*time.Second)

	step("worker 2 up")
	code, out, errOut = wahaq("", "dlq", "requeue", id)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "requeued 1, deduplicated 0, busy 0")

	code, out, errOut = wahaq("", "status", id, "--wait", "--timeout", "20s", "--json")
	require.Equal(t, 0, code, errOut)
	tk = taskOf(out)
	assert.Equal(t, tasks.StateCompleted, tk.State)
	require.NotNil(t, tk.Outcome)
	assert.Equal(t, tasks.OutcomeLoggedOut, *tk.Outcome)
	require.NotNil(t, tk.Result)
	assert.Equal(t, "success", tk.Result.Status)
	assert.Equal(t, id, tk.ID, "requeue keeps the id")

	step("completed")
	code, out, _ = wahaq("", "dlq", "list")
	assert.Equal(t, 0, code)
	assert.Equal(t, "the dead-letter queue is empty\n", out)

	// A bulk teardown from standard input, followed to the end.
	code, out, errOut = wahaq("# evening bots\nbot-1\n\nbot-2\n", "bulk", "--instance", "default", "--sessions-file", "-", "--wait")
	require.Equal(t, 0, code, errOut)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	bid := lines[0]
	require.NoError(t, tasks.ValidateBatchID(bid), out)
	assert.Contains(t, out, "batch "+bid+": 2/2 done (completed 2, dead 0, canceled 0)\n")
	assert.Contains(t, out, "completed 2 (not_found 2)", "the fake knows no bot-1 or bot-2")

	step("bulk done")
	// The worker's HTTP endpoints.
	st, body := get(t, "http://"+metricsAddr+"/metrics")
	assert.Equal(t, http.StatusOK, st)
	assert.Contains(t, body, `wahaq_tasks_total{instance="default",outcome="logged_out"} 1`)
	assert.Contains(t, body, `wahaq_tasks_total{instance="default",outcome="not_found"} 2`)
	assert.Contains(t, body, `wahaq_dead_letters{instance="default"} 0`)
	assert.Contains(t, body, `wahaq_callback_backlog{instance="default"} 0`)
	assert.Contains(t, body, `wahaq_queue_scrape_errors{instance="default"} 0`)
	assert.Contains(t, body, "go_goroutines")
	st, body = get(t, "http://"+metricsAddr+"/readyz")
	assert.Equal(t, http.StatusOK, st)
	assert.Equal(t, "ok\n", body)
	st, _ = get(t, "http://"+metricsAddr+"/healthz")
	assert.Equal(t, http.StatusOK, st)
}
