package worker_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/store"
	"github.com/wahaq/wahaq/tasks"
	"github.com/wahaq/wahaq/wahaclient"
	"github.com/wahaq/wahaq/wahaclient/wahafake"
	"github.com/wahaq/wahaq/wahaqtest"
	"github.com/wahaq/wahaq/worker"
)

// A listing with entries that are not sessions: they are counted in the
// batch per reason and never fail the rest, which is enqueued chunk by
// chunk (1,500 sessions: two chunks).
func TestDiscoverySkipsBadEntriesAndEnqueuesInChunks(t *testing.T) {
	t.Parallel()
	env := wahaqtest.Start(t, wahaqtest.Options{})
	ctx := context.Background()
	env.Fake.GenerateSessions("gen", 1500, wahafake.StatusStopped)
	env.Fake.InjectListEntries(wahafake.BadListEntries...)

	info, err := env.Producer.EnqueueDiscovery(ctx, tasks.DiscoveryRequest{})
	require.NoError(t, err)
	b := env.WaitBatch(t, info.BatchID, wait)
	require.Empty(t, b.Error)
	require.False(t, b.Interrupted)
	require.EqualValues(t, 1501, b.Total, "1,500 generated sessions and default")
	require.EqualValues(t, 1501, b.Outcomes[tasks.OutcomeLoggedOut])
	require.Equal(t, map[string]int64{wahaclient.SkipNotObject: 2, wahaclient.SkipNoName: 2, wahaclient.SkipBadName: 2,
		wahaclient.SkipBadStatus: 1}, b.Skipped)
	require.Zero(t, b.Deduplicated)
	require.Equal(t, 1501, env.Fake.TotalLogoutCalls())
	require.Zero(t, env.Fake.LogoutCalls("../etc"))
}

// hostileList serves GET /api/sessions with answer(n) for the n-th call
// (1-based) and logs everything out.
func hostileList(t *testing.T, answer func(n int64, w http.ResponseWriter)) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.URL.Path == "/api/sessions" {
			answer(calls.Add(1), w)
			return
		}
		name := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/api/sessions/"), "/logout")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"name":%q,"status":"STOPPED","me":null}`, name)
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

// listingOf writes a listing of n sessions s-0..s-(n-1); cut > 0 breaks the
// connection off after that many entries (the body is shorter than its
// Content-Length, so the server closes the connection).
func listingOf(w http.ResponseWriter, n, cut int) {
	w.Header().Set("Content-Type", "application/json")
	var sb strings.Builder
	sb.WriteString("[")
	for i := 0; i < n; i++ {
		if i > 0 {
			sb.WriteString(",")
		}
		fmt.Fprintf(&sb, `{"name":"s-%d","status":"WORKING","config":null,"me":null}`, i)
		if i+1 == cut {
			sb.WriteString(`,{"name":"s-`)
			w.Header().Set("Content-Length", strconv.Itoa(2*sb.Len()))
			_, _ = w.Write([]byte(sb.String()))
			return
		}
	}
	sb.WriteString("]")
	_, _ = w.Write([]byte(sb.String()))
}

// Discovery goes through the logout's chain and policy: WAHA's answer is
// classified once, a transient failure is retried with backoff (a listing
// that broke off part way starts over without counting anything twice), a
// permanent one closes the batch with the reason, retries are bounded, and
// the validation check runs before the listing.
func TestDiscoveryPolicy(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		answer   func(n int64, w http.ResponseWriter)
		validate int // status of the validation service; 0 = none
		calls    int64
		total    int64
		error    string // "" = listed everything
		interr   bool
	}{
		{name: "401 closes at once", answer: func(_ int64, w http.ResponseWriter) {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"message":"Unauthorized","statusCode":401}`))
		}, calls: 1, error: "discovery failed: waha list sessions: 401"},
		{name: "not an array closes at once", answer: func(_ int64, w http.ResponseWriter) {
			_, _ = w.Write([]byte(`{"sessions":[]}`))
		}, calls: 1, error: "not a JSON array"},
		{name: "503 is retried", answer: func(n int64, w http.ResponseWriter) {
			if n <= 2 {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			listingOf(w, 3, 0)
		}, calls: 3, total: 3},
		{name: "a listing cut off starts over", answer: func(n int64, w http.ResponseWriter) {
			if n == 1 {
				listingOf(w, 2500, 1200) // one chunk enqueued, then the break
				return
			}
			listingOf(w, 2500, 0)
		}, calls: 2, total: 2500},
		{name: "retries are bounded", answer: func(_ int64, w http.ResponseWriter) {
			w.WriteHeader(http.StatusBadGateway)
		}, calls: 6, error: "discovery failed: waha list sessions: 502"}, // 1 + the discovery's 5 retries
		{name: "validation refuses before the listing", answer: func(int64, http.ResponseWriter) {},
			validate: http.StatusForbidden, calls: 0, error: "discovery failed: waha validate: 403"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv, calls := hostileList(t, tc.answer)
			var validation string
			if tc.validate != 0 {
				v := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(tc.validate) }))
				t.Cleanup(v.Close)
				validation = v.URL
			}
			logs := &wahaqtest.LogBuffer{}
			env := wahaqtest.Start(t, wahaqtest.Options{Worker: func(c *worker.Config) {
				c.Instances[0].BaseURL = srv.URL
				c.Validation.URL = validation
				l := zerolog.New(logs)
				c.Logger = &l
			}})
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("worker log:\n%s", logs)
				}
			})
			ctx := context.Background()
			info, err := env.Producer.EnqueueDiscovery(ctx, tasks.DiscoveryRequest{})
			require.NoError(t, err)
			t.Cleanup(func() {
				if t.Failed() {
					k := store.KeysFor(env.Namespace, "default")
					h := env.Redis.HGetAll(ctx, k.AsynqTask(info.BatchID)).Val()
					delete(h, "msg")
					t.Logf("asynq holds the discovery task as %v, retry at %v, pending %v, now %d", h, env.Redis.ZScore(ctx, k.Retry(), info.BatchID).Val(),
						env.Redis.LRange(ctx, k.Pending(), 0, -1).Val(), time.Now().Unix())
				}
			})
			b := env.WaitBatch(t, info.BatchID, 40*time.Second)
			require.Equal(t, tc.calls, calls.Load())
			require.Equal(t, tc.total, b.Total)
			require.Equal(t, tc.interr, b.Interrupted)
			require.Zero(t, b.Deduplicated, "sessions enqueued by an earlier run are not deduplicated onto themselves")
			if tc.error == "" {
				require.Empty(t, b.Error)
				require.EqualValues(t, tc.total, b.Outcomes[tasks.OutcomeLoggedOut])
				return
			}
			require.Contains(t, b.Error, tc.error)
		})
	}
}
