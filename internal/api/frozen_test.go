//go:build unix

package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/base"
	"github.com/wahaq/wahaq/internal/redistest"
	"github.com/wahaq/wahaq/internal/store"
	"github.com/wahaq/wahaq/tasks"
)

// frozenEnv is the API on a redis-server of the test's own, with the client
// options `wahaq serve` uses (config.NewRedis: 2 s dial/read/write, context
// deadlines honoured).
func frozenEnv(t *testing.T) (*env, *redistest.Server, *freezeAt) {
	t.Helper()
	srv := redistest.LaunchT(t, redistest.ServerConfig{})
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, DialTimeout: 2 * time.Second, ReadTimeout: 2 * time.Second,
		WriteTimeout: 2 * time.Second, ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = rdb.Close() })
	h := &freezeAt{srv: srv}
	rdb.AddHook(h)
	return newEnvOn(t, rdb, "frozen"), srv, h
}

// freezeAt freezes the server the moment a script call naming marker is
// about to be sent: the call reaches the frozen server's socket, so the
// server runs it once thawed, after the request has given up.
type freezeAt struct {
	srv    *redistest.Server
	marker atomic.Value // string; "" disarmed
	fired  atomic.Bool
}

func (h *freezeAt) arm(marker string) { h.fired.Store(false); h.marker.Store(marker) }

func (h *freezeAt) check(cmds []redis.Cmder) {
	m, _ := h.marker.Load().(string)
	if m == "" || h.fired.Load() {
		return
	}
	for _, c := range cmds {
		if n := c.Name(); (n == "evalsha" || n == "eval") && strings.Contains(fmt.Sprint(c.Args()...), m) {
			if h.fired.CompareAndSwap(false, true) {
				_ = h.srv.Freeze()
			}
			return
		}
	}
}

func (h *freezeAt) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *freezeAt) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.check([]redis.Cmder{cmd})
		return next(ctx, cmd)
	}
}

func (h *freezeAt) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.check(cmds)
		return next(ctx, cmds)
	}
}

// during freezes the server (SIGSTOP by PID) now, or, when h is armed, at
// the script call it names; sends the request; and thaws the server once the
// answer came. It returns the answer and how long it took.
func during(t *testing.T, e *env, srv *redistest.Server, h *freezeAt, r *http.Request) (*httptest.ResponseRecorder, time.Duration) {
	t.Helper()
	if m, _ := h.marker.Load().(string); m == "" {
		require.NoError(t, srv.Freeze())
	}
	thawed := false
	defer func() {
		if !thawed {
			_ = srv.Thaw()
		}
	}()
	start := time.Now()
	w := e.serve(r)
	took := time.Since(start)
	require.NoError(t, srv.Thaw())
	thawed = true
	// let the thawed server run what reached it while frozen
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, e.rdb.Ping(ctx).Err())
	return w, took
}

// TestFrozenRedis: a Redis frozen mid-request answers 503 problem+json with
// Retry-After within 5 s; what the timed-out request wrote (nothing, or
// what the frozen server ran once thawed) is found by a retry of the same
// request with the same Idempotency-Key: one task, one batch.
func TestFrozenRedis(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, path, body string
		// count is how many tasks and batches the namespace holds.
		check func(t *testing.T, e *env, first, retry *httptest.ResponseRecorder)
	}{
		{"POST /v1/logouts", "/v1/logouts", `{"session":"frozen-1"}`, func(t *testing.T, e *env, _, retry *httptest.ResponseRecorder) {
			got := decodeJSON[tasks.Task](t, retry)
			require.Equal(t, "frozen-1", got.Session)
			recs := frozenRecords(t, e)
			require.Len(t, recs, 1, "one task")
			require.Contains(t, recs, got.ID, "the retry found the task the first request wrote")
		}},
		{"POST /v1/batches", "/v1/batches", `{"sessions":["frozen-a","frozen-b","frozen-c"]}`, func(t *testing.T, e *env, first, retry *httptest.ResponseRecorder) {
			got := decodeJSON[batchAccepted](t, retry)
			require.EqualValues(t, 3, got.Total+int64(got.Deduplicated))
			recs := frozenRecords(t, e)
			require.Len(t, recs, 3, "one task per session")
			batches := map[string]bool{}
			for _, b := range recs {
				batches[b] = true
			}
			require.Len(t, batches, 1, "the tasks are in one batch")
			var fb struct {
				BatchID string `json:"batch_id"`
			}
			_ = json.Unmarshal(first.Body.Bytes(), &fb)
			if fb.BatchID != "" {
				// the first answer named its batch: that one holds the
				// tasks; the retry's answer counts them as deduplicated
				require.Contains(t, batches, fb.BatchID)
				if got.BatchID != fb.BatchID {
					require.Equal(t, 3, got.Deduplicated)
				}
			}
			k := store.KeysFor("frozen", "default")
			for b := range batches {
				n, err := e.rdb.HGet(context.Background(), k.Batch(b), "total").Int()
				require.NoError(t, err)
				require.Equal(t, 3, n, "its total is true")
			}
			// The retry resumed the first batch: it answers that batch,
			// holding every session, none deduplicated.
			require.Contains(t, batches, got.BatchID, "the retry answers the batch that holds the tasks")
			if fb.BatchID != "" {
				require.Equal(t, fb.BatchID, got.BatchID, "the retry answers the first batch")
			}
			require.EqualValues(t, 3, got.Total, "its total is the number of sessions")
			require.Zero(t, got.Deduplicated)
			frozenRunBatch(t, e, got.BatchID, recs)
		}},
	}
	for _, tc := range cases {
		for _, at := range []string{"first command", "enqueue write"} {
			t.Run(tc.name+", frozen at the "+at, func(t *testing.T) {
				t.Parallel()
				frozenRetry(t, tc.path, tc.body, at == "enqueue write", tc.check)
			})
		}
	}
}

// frozenRetry runs one case of TestFrozenRedis: freeze, request, thaw,
// retry.
func frozenRetry(t *testing.T, path, body string, atWrite bool, check func(t *testing.T, e *env, first, retry *httptest.ResponseRecorder)) {
	{
		{
			e, srv, h := frozenEnv(t)
			if atWrite {
				// load the scripts (a frozen EVALSHA of an unknown script
				// would fail NOSCRIPT once thawed and write nothing), then
				// freeze as the enqueue script goes out
				w := e.do("POST", "/v1/logouts", `{"session":"warm-up"}`)
				require.Equal(t, http.StatusAccepted, w.Code, w.Body.String())
				w = e.do("POST", "/v1/batches", `{"sessions":["warm-up-b"]}`)
				require.Equal(t, http.StatusAccepted, w.Code, w.Body.String())
				h.arm("frozen-")
			}
			req := func() *http.Request {
				r := e.req("POST", path, body)
				r.Header.Set(idempotencyHeader, "frozen-retry-1")
				return r
			}
			first, took := during(t, e, srv, h, req())
			h.arm("")
			t.Logf("%s while Redis was frozen (at the enqueue write: %v): %d after %s: %s", path, atWrite, first.Code, took.Round(time.Millisecond), first.Body.String())
			require.LessOrEqual(t, took, 5*time.Second, "answered within 5 s")
			requireProblem(t, first, http.StatusServiceUnavailable)
			require.Equal(t, problemJSON, first.Header().Get("Content-Type"))
			require.NotEmpty(t, first.Header().Get("Retry-After"))
			require.True(t, strings.Contains(first.Body.String(), "redis is unavailable") ||
				strings.Contains(first.Body.String(), "batch_id"), first.Body.String())

			var retry *httptest.ResponseRecorder
			require.Eventually(t, func() bool {
				retry = e.serve(req())
				return retry.Code != http.StatusConflict // the first request's key, still held, is released in a moment
			}, 10*time.Second, 100*time.Millisecond)
			require.Contains(t, []int{http.StatusCreated, http.StatusOK, http.StatusAccepted}, retry.Code, retry.Body.String())
			t.Logf("retry: %d %s", retry.Code, retry.Body.String())
			check(t, e, first, retry)
		}
	}
}

// TestLongPollOutlastsRequestTimeout: ?wait= is not cut by the request
// timeout (WAHAQ_REQUEST_TIMEOUT), which bounds the Redis work only.
func TestLongPollOutlastsRequestTimeout(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.RequestTimeout = 300 * time.Millisecond })
	t.Cleanup(func() { _ = e.insp.Close() }) // its subscription for waiters
	w := e.do("POST", "/v1/logouts", `{"session":"poll-1"}`)
	require.Equal(t, http.StatusAccepted, w.Code, w.Body.String())
	id := decodeJSON[tasks.Task](t, w).ID
	start := time.Now()
	w = e.do("GET", "/v1/tasks/"+id+"?wait=1s", "")
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	require.GreaterOrEqual(t, time.Since(start), time.Second, "it waited the whole second")
	require.Equal(t, tasks.StatePending, decodeJSON[tasks.Task](t, w).State)
}

// frozenRecords returns the records of sessions frozen-*, id -> batch id,
// and checks that asynq holds each once.
func frozenRecords(t *testing.T, e *env) map[string]string {
	t.Helper()
	ctx := context.Background()
	k := store.KeysFor("frozen", "default")
	out := map[string]string{}
	all := e.scan("wahaq:{frozen:default}:t:*")
	for _, key := range all {
		rec := e.rdb.HGetAll(ctx, key).Val()
		if strings.HasPrefix(rec[store.FieldSession], "frozen-") {
			id := strings.TrimPrefix(key, "wahaq:{frozen:default}:t:")
			out[id] = rec[store.FieldBatch]
			require.Equal(t, int64(1), e.rdb.Exists(ctx, k.AsynqTask(id)).Val(), "asynq task of %s", id)
		}
	}
	pending, err := e.rdb.LRange(ctx, k.Pending(), 0, -1).Result()
	require.NoError(t, err)
	require.ElementsMatch(t, pending, dedupe(pending), "no id queued twice")
	require.Len(t, pending, len(all), "every record queued once")
	return out
}

func dedupe(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

// frozenRunBatch checks that the batch reads done only once its tasks have
// run: it finishes them one by one as a worker would (start, then complete).
func frozenRunBatch(t *testing.T, e *env, bid string, recs map[string]string) {
	t.Helper()
	ctx := context.Background()
	st := store.New(e.rdb, store.Options{Namespace: "frozen"})
	read := func() tasks.Batch {
		w := e.do("GET", "/v1/batches/"+bid, "")
		require.Equal(t, http.StatusOK, w.Code, w.Body.String())
		return decodeJSON[tasks.Batch](t, w)
	}
	b := read()
	require.False(t, b.Done, "not done while its tasks wait")
	require.False(t, b.Interrupted, "the resumed batch is no longer interrupted")
	require.EqualValues(t, 3, b.Total)
	left := len(recs)
	for id, batch := range recs {
		require.Equal(t, bid, batch)
		p := base.Payload{Instance: "default", Session: e.rdb.HGet(ctx, store.KeysFor("frozen", "default").Record(id), store.FieldSession).Val(),
			BatchID: bid, MaxRetries: 3}
		ok, err := st.Start(ctx, id, p, 1, 0, time.Minute)
		require.NoError(t, err)
		require.True(t, ok)
		require.NoError(t, st.Finish(ctx, id, p, store.Finish{State: store.StateCompleted, Outcome: string(tasks.OutcomeLoggedOut), ResultTTL: time.Hour}))
		left--
		require.Equal(t, left == 0, read().Done, "done only after its last task (%d left)", left)
	}
	require.EqualValues(t, 3, read().Outcomes[tasks.OutcomeLoggedOut])
}
