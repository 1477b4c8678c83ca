package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/redistest"
	"github.com/wahaq/wahaq/internal/store"
	"github.com/wahaq/wahaq/tasks"
)

// Batches always end, shown with real processes: a bulk killed with -9 mid
// enqueue, and a bulk that Redis refuses part way (out of memory).

var batchLine = regexp.MustCompile(`batch ([0-9a-f-]{36}): enqueueing`)

func sessionsFile(t *testing.T, n int) string {
	t.Helper()
	var sb strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&sb, "session-%06d\n", i)
	}
	p := filepath.Join(t.TempDir(), "sessions.txt")
	require.NoError(t, os.WriteFile(p, []byte(sb.String()), 0o600))
	return p
}

// runWahaq runs one short wahaq command.
func runWahaq(t *testing.T, bin string, env []string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
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

func batchJSON(t *testing.T, bin string, env []string, id string) tasks.Batch {
	t.Helper()
	code, out, errOut := runWahaq(t, bin, env, "batch", id, "--json")
	require.Equal(t, 0, code, errOut)
	var b tasks.Batch
	require.NoError(t, json.Unmarshal([]byte(out), &b), out)
	return b
}

// cancelAndCheck cancels the rest of an interrupted batch and checks it then
// reads done with everything it holds canceled.
func cancelAndCheck(t *testing.T, bin string, env []string, rdb redis.UniversalClient, k store.Keys, id string, total int64) {
	t.Helper()
	code, out, errOut := runWahaq(t, bin, env, "batch", "cancel", id, "--json")
	require.Equal(t, 0, code, errOut)
	var c tasks.BatchCancel
	require.NoError(t, json.Unmarshal([]byte(out), &c), out)
	require.Equal(t, tasks.BatchCancel{BatchID: id, Canceled: total}, c)
	b := batchJSON(t, bin, env, id)
	require.True(t, b.Done, "%+v", b)
	require.Equal(t, total, b.Counts[tasks.StateCanceled])
	require.Zero(t, rdb.LLen(context.Background(), k.Pending()).Val())
}

func TestBulkKilledMidEnqueueEnds(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binaries")
	}
	t.Parallel()
	bin, _ := binaries(t)
	rdb, ns := redistest.Client(t), redistest.Namespace(t)
	k := store.KeysFor(ns, "default")
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "REDIS_URL=" + redistest.URL(t), "WAHAQ_NAMESPACE=" + ns}
	ctx := context.Background()

	cmd := exec.Command(bin, "bulk", "--instance", "default", "--sessions-file", sessionsFile(t, 100_000))
	cmd.Env = env
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	killed := false
	t.Cleanup(func() {
		if !killed {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	// The batch id comes first, before any task is written.
	line, err := bufio.NewReader(stderr).ReadString('\n')
	require.NoError(t, err)
	m := batchLine.FindStringSubmatch(line)
	require.NotNil(t, m, "first stderr line: %q", line)
	id := m[1]
	// Kill it once some, not all, logouts are in.
	require.Eventually(t, func() bool {
		n, _ := rdb.HGet(ctx, k.Batch(id), "total").Int64()
		return n > 0
	}, 30*time.Second, 2*time.Millisecond)
	require.NoError(t, cmd.Process.Kill())
	_ = cmd.Wait()
	killed = true
	require.NotZero(t, rdb.HExists(ctx, k.Batch(id), "open").Val(), "the bulk finished before the kill; nothing to show")

	// Once the producer's lease ends, reading the batch closes it with the
	// number of tasks it really holds.
	var b tasks.Batch
	require.Eventually(t, func() bool {
		b = batchJSON(t, bin, env, id)
		return b.Interrupted
	}, store.DefaultBatchLease+30*time.Second, 500*time.Millisecond)
	held := rdb.LLen(ctx, k.BatchTasks(id)).Val()
	require.Equal(t, held, b.Total)
	require.Equal(t, held, rdb.LLen(ctx, k.Pending()).Val())
	require.Less(t, b.Total, int64(100_000))
	require.False(t, b.Done)
	t.Logf("killed after %d of 100000 logouts", b.Total)
	cancelAndCheck(t, bin, env, rdb, k, id, b.Total)
}

func TestBulkRedisOutOfMemoryEnds(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binaries")
	}
	t.Parallel()
	bin, _ := binaries(t)
	srv := redistest.LaunchT(t, redistest.ServerConfig{Args: func(port int, dir string) []string {
		return append(redistest.DefaultArgs(port, dir), "--maxmemory", "15mb", "--maxmemory-policy", "noeviction")
	}})
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { _ = rdb.Close() })
	k := store.KeysFor("wahaq", "default")
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "REDIS_URL=redis://" + srv.Addr}
	ctx := context.Background()

	code, _, errOut := runWahaq(t, bin, env, "bulk", "--instance", "default", "--sessions-file", sessionsFile(t, 50_000))
	require.Equal(t, 1, code, errOut)
	m := batchLine.FindStringSubmatch(errOut)
	require.NotNil(t, m, errOut)
	id := m[1]
	got := regexp.MustCompile(`batch ` + id + ` interrupted after (\d+) logouts were enqueued: .*OOM`).FindStringSubmatch(errOut)
	require.NotNil(t, got, errOut)
	n, err := strconv.ParseInt(got[1], 10, 64)
	require.NoError(t, err)
	require.Contains(t, errOut, "wahaq batch cancel "+id)

	// The count is the batch's true total, and the batch is closed.
	held := rdb.LLen(ctx, k.BatchTasks(id)).Val()
	require.Equal(t, held, n)
	require.Positive(t, n)
	require.Less(t, n, int64(50_000))
	b := batchJSON(t, bin, env, id)
	require.Equal(t, n, b.Total)
	require.True(t, b.Interrupted)
	require.Zero(t, rdb.HExists(ctx, k.Batch(id), "open").Val())
	t.Logf("Redis full after %d of 50000 logouts", n)
	cancelAndCheck(t, bin, env, rdb, k, id, n)
}
