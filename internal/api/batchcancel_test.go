package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/base"
	"github.com/wahaq/wahaq/internal/redistest"
	"github.com/wahaq/wahaq/internal/store"
	"github.com/wahaq/wahaq/tasks"
)

// TestDeleteBatch: DELETE /v1/batches/{id} cancels the tasks that have not
// started and counts the others; an unknown batch is a 404.
func TestDeleteBatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	w := e.do("POST", "/v1/batches", `{"sessions":["c-1","c-2","c-3","c-4"]}`)
	require.Equal(t, http.StatusAccepted, w.Code, w.Body.String())
	bid := decodeJSON[batchAccepted](t, w).BatchID
	k := store.KeysFor(e.ns, "default")
	ids, err := e.rdb.LRange(ctx, k.BatchTasks(bid), 0, -1).Result()
	require.NoError(t, err)
	require.Len(t, ids, 4)
	// a worker has started the first task
	st := e.store()
	ok, err := st.Start(ctx, ids[0], base.Payload{Instance: "default", Session: "c-1", BatchID: bid, MaxRetries: tasks.DefaultMaxRetries}, 1, 0, time.Minute)
	require.NoError(t, err)
	require.True(t, ok)

	w = e.do("DELETE", "/v1/batches/"+bid, "")
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	require.Equal(t, map[string]any{"batch_id": bid, "canceled": 3.0, "already_started": 1.0, "already_final": 0.0},
		decodeJSON[map[string]any](t, w))
	for i, id := range ids {
		want := tasks.StateCanceled
		if i == 0 {
			want = tasks.StateActive
		}
		task, err := e.insp.Task(ctx, id)
		require.NoError(t, err)
		require.Equal(t, want, task.State, "task %d", i)
	}
	require.Equal(t, 1, e.queueSize("default"), "only the started task is left in asynq")
	b := decodeJSON[tasks.Batch](t, e.do("GET", "/v1/batches/"+bid, ""))
	require.EqualValues(t, 3, b.Counts[tasks.StateCanceled])
	require.EqualValues(t, 1, b.Counts[tasks.StateActive])
	require.False(t, b.Done)

	// again: nothing left to cancel
	w = e.do("DELETE", "/v1/batches/"+bid, "")
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	require.Equal(t, map[string]any{"batch_id": bid, "canceled": 0.0, "already_started": 1.0, "already_final": 3.0},
		decodeJSON[map[string]any](t, w))

	unknown := "0b6f3c1e-5f0e-4a44-9d55-0d8c3d1f8f20"
	p := requireProblem(t, e.do("DELETE", "/v1/batches/"+unknown, ""), http.StatusNotFound)
	require.Contains(t, p.Detail, unknown)
	p = requireProblem(t, e.do("DELETE", "/v1/batches/not%20an%20id", ""), http.StatusBadRequest)
	require.NotEmpty(t, p.Detail)
}

// TestBatchFailsOnFullRedis: a batch whose enqueue runs Redis out of memory
// (maxmemory, noeviction) part way answers 503 with Retry-After and the
// problem's batch_id and enqueued members; the batch is closed, marked
// interrupted, holds exactly the enqueued logouts, and can be canceled.
func TestBatchFailsOnFullRedis(t *testing.T) {
	t.Parallel()
	srv := redistest.LaunchT(t, redistest.ServerConfig{})
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	used, err := rdb.Info(ctx, "memory").Result()
	require.NoError(t, err)
	var mem int64
	for _, l := range strings.Split(used, "\r\n") {
		if v, ok := strings.CutPrefix(l, "used_memory:"); ok {
			_, err := fmt.Sscan(v, &mem)
			require.NoError(t, err)
		}
	}
	require.Positive(t, mem)
	// room for a few thousand tasks, not for 20,000
	require.NoError(t, rdb.ConfigSet(ctx, "maxmemory-policy", "noeviction").Err())
	require.NoError(t, rdb.ConfigSet(ctx, "maxmemory", fmt.Sprint(mem+3<<20)).Err())
	e := newEnvOn(t, rdb, "oom")

	sessions := make([]string, 20_000)
	for i := range sessions {
		sessions[i] = fmt.Sprintf("%q", fmt.Sprintf("oom-%05d", i))
	}
	w := e.do("POST", "/v1/batches", `{"sessions":[`+strings.Join(sessions, ",")+`]}`)
	p := requireProblem(t, w, http.StatusServiceUnavailable)
	require.Equal(t, "2", w.Header().Get("Retry-After"))
	require.Contains(t, p.Detail, "not every logout could be enqueued")
	var bp struct {
		BatchID  string `json:"batch_id"`
		Enqueued int64  `json:"enqueued"`
	}
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &bp))
	require.NotEmpty(t, bp.BatchID)
	t.Logf("Redis full after %d of %d logouts of batch %s", bp.Enqueued, len(sessions), bp.BatchID)
	require.Positive(t, bp.Enqueued, "some logouts went in before Redis was full")
	require.Less(t, bp.Enqueued, int64(len(sessions)))
	require.Equal(t, "/v1/batches/"+bp.BatchID, w.Header().Get("Location"))

	require.NoError(t, rdb.ConfigSet(ctx, "maxmemory", "0").Err())
	b := decodeJSON[tasks.Batch](t, e.do("GET", "/v1/batches/"+bp.BatchID, ""))
	require.Equal(t, bp.Enqueued, b.Total, "the answer's count is the batch's true total")
	require.True(t, b.Interrupted)
	require.False(t, b.Done)
	require.EqualValues(t, bp.Enqueued, e.queueSize("default"), "and what asynq holds")

	w = e.do("DELETE", "/v1/batches/"+bp.BatchID, "")
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	c := decodeJSON[tasks.BatchCancel](t, w)
	require.Equal(t, bp.Enqueued, c.Canceled)
	b = decodeJSON[tasks.Batch](t, e.do("GET", "/v1/batches/"+bp.BatchID, ""))
	require.True(t, b.Done)
}
