package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"syscall"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/redistest"
	"github.com/wahaq/wahaq/tasks"
	"github.com/wahaq/wahaq/wahaclient/wahafake"
)

// previewEntries is the size of the listing the preview's memory test
// reads.
const previewEntries = 100_000

// maxPreviewGrowth bounds how much more the peak RSS of `wahaq bulk --all
// --dry-run` is for a listing of previewEntries sessions than for one of
// 1,000: the preview streams the listing and holds one chunk of names, so
// its memory does not grow with the listing. Measured: 1 to 6 MiB of growth
// (the garbage collector's slack); a preview that kept the decoded entries
// grew by 45 MiB.
const maxPreviewGrowth = 16 << 20

// TestPreview100kPeakRSS runs the preview of an "all" batch (`wahaq bulk
// --all --dry-run`, a real process built without -race) on a fake WAHA
// listing 1,000 and then 100,000 sessions: its peak RSS (the rusage of the
// exited process) grows by less than maxPreviewGrowth, it answers the right
// counts, and the fake's counters show no logout call and Redis no batch.
func TestPreview100kPeakRSS(t *testing.T) {
	if testing.Short() {
		t.Skip("a 100,000-session listing through a wahaq process; skipped with -short")
	}
	wahaqBin, _ := binaries(t)
	srv, err := redistest.Launch(redistest.ServerConfig{})
	require.NoError(t, err)
	t.Cleanup(srv.Kill)
	fake := wahafake.NewT(t, wahafake.Options{APIKey: "preview-rss-key"})
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "REDIS_URL=redis://" + srv.Addr + "/0",
		"WAHAQ_NAMESPACE=rss", "WAHA_BASE_URL=" + fake.URL(), "WAHA_API_KEY=preview-rss-key"}
	preview := func(n int) (*tasks.Preview, int64) {
		fake.GenerateSessions("gen", n, wahafake.StatusWorking)
		cmd := exec.Command(wahaqBin, "bulk", "--instance", "default", "--all", "--status", "WORKING", "--dry-run", "--json")
		cmd.Env = env
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		require.NoError(t, cmd.Run(), "stderr: %s", errOut.String())
		var pv tasks.Preview
		require.NoError(t, json.Unmarshal(out.Bytes(), &pv), out.String())
		ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
		require.True(t, ok, "needs rusage (Linux)")
		return &pv, ru.Maxrss << 10 // KiB on Linux
	}
	small, base := preview(1000)
	require.EqualValues(t, 1000, small.WouldEnqueue)
	big, peak := preview(previewEntries)
	require.EqualValues(t, previewEntries+1, big.Listed, "every generated session and default")
	require.EqualValues(t, previewEntries, big.WouldEnqueue)
	require.EqualValues(t, 1, big.Skipped[tasks.SkipStatusFilter], "default is STOPPED")
	require.Len(t, big.Names, tasks.PreviewNames)
	require.Zero(t, fake.Stats().TotalLogoutCalls, "a preview calls no logout")
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { _ = rdb.Close() })
	keys, err := rdb.Keys(t.Context(), "*").Result()
	require.NoError(t, err)
	require.Empty(t, keys, "a preview writes nothing to Redis")
	growth := peak - base
	t.Logf("preview peak RSS: %.1f MiB for 1,000 sessions, %.1f MiB for %d: growth %.1f MiB (bound %d MiB)",
		float64(base)/(1<<20), float64(peak)/(1<<20), previewEntries, float64(growth)/(1<<20), maxPreviewGrowth>>20)
	require.Less(t, growth, int64(maxPreviewGrowth))
}
