package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/wahaq/wahaq/internal/asynqcompat"
	"github.com/wahaq/wahaq/internal/audit"
	"github.com/wahaq/wahaq/internal/base"
	"github.com/wahaq/wahaq/internal/preflight"
	"github.com/wahaq/wahaq/internal/redistest"
	"github.com/wahaq/wahaq/internal/store"
	"github.com/wahaq/wahaq/tasks"
	"github.com/wahaq/wahaq/wahaclient/wahafake"
	"github.com/wahaq/wahaq/wahaqtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// Distinctive tokens, so a leak into the logs is easy to find.
const (
	tokenA = "tokA-3f9c1e7b5d2a8e6f4c0b9a7d"
	tokenB = "tokB-8e2d6a4c0f1b3e5d7a9c2b4f"
)

type env struct {
	t    *testing.T
	h    http.Handler
	rdb  *redis.Client
	ns   string
	prod *tasks.Producer
	insp *tasks.Inspector
	logs *wahaqtest.LogBuffer
}

// newEnv builds the API on a fresh namespace of the test Redis, with two
// instances ("default" and "eu") and two tokens. When the test ends it
// checks that no token reached the log.
func newEnv(t *testing.T, mods ...func(*Config)) *env {
	t.Helper()
	return newEnvOn(t, redistest.Client(t), redistest.Namespace(t), mods...)
}

// newEnvOn is newEnv on a given Redis client and namespace (a redis-server
// the test started and breaks).
func newEnvOn(t *testing.T, rdb *redis.Client, ns string, mods ...func(*Config)) *env {
	t.Helper()
	tcfg := tasks.Config{Redis: rdb, Namespace: ns, Instances: []string{"default", "eu"}, CallbackAllow: []string{"127.0.0.1"}}
	prod, err := tasks.NewProducer(tcfg)
	require.NoError(t, err)
	insp, err := tasks.NewInspector(tcfg)
	require.NoError(t, err)
	logs := &wahaqtest.LogBuffer{}
	lg := zerolog.New(logs).Level(zerolog.DebugLevel)
	// The preflight's servers: a fake of the current line, and one that is
	// down.
	fake := wahafake.NewT(t, wahafake.Options{CurrentLine: true, APIKey: "api-test-key-1", Sessions: 1})
	cfg := Config{
		Producer: prod, Inspector: insp, Tokens: []string{tokenA, " " + tokenB + " "}, Logger: &lg,
		Audit:   audit.New(store.New(rdb, store.Options{Namespace: ns}), audit.Options{}),
		Ready:   func(ctx context.Context) error { return rdb.Ping(ctx).Err() },
		Metrics: promhttp.HandlerFor(prometheus.NewRegistry(), promhttp.HandlerOpts{}),
		Preflight: preflight.New([]preflight.Target{
			{Name: "default", BaseURL: fake.URL(), APIKey: "api-test-key-1", APIKeyEnv: "WAHA_API_KEY"},
			{Name: "eu", BaseURL: "http://127.0.0.1:9", NoKey: true},
		}, 0),
	}
	for _, m := range mods {
		m(&cfg)
	}
	h, err := New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		out := logs.String()
		assert.NotContains(t, out, tokenA, "a token reached the log")
		assert.NotContains(t, out, tokenB, "a token reached the log")
		assert.NotContains(t, out, tokenA[:12], "part of a token reached the log")
	})
	return &env{t: t, h: h, rdb: rdb, ns: ns, prod: prod, insp: insp, logs: logs}
}

// req builds an authenticated JSON request.
func (e *env) req(method, target, body string) *http.Request {
	var r *http.Request
	if body == "" {
		r = httptest.NewRequest(method, target, nil)
	} else {
		r = httptest.NewRequest(method, target, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
	}
	r.Header.Set("Authorization", "Bearer "+tokenA)
	// As a client that knows RFC 9457 does; TestProblemContentType covers
	// the others.
	r.Header.Set("Accept", "application/json, application/problem+json")
	return r
}

func (e *env) serve(r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	return w
}

func (e *env) do(method, target, body string) *httptest.ResponseRecorder {
	return e.serve(e.req(method, target, body))
}

// decodeJSON decodes an application/json answer.
func decodeJSON[T any](t *testing.T, w *httptest.ResponseRecorder) T {
	t.Helper()
	require.Equal(t, "application/json", w.Header().Get("Content-Type"), "body: %s", w.Body.String())
	var v T
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &v), w.Body.String())
	return v
}

// requireProblem checks a problem answer and returns it. Its Content-Type
// is application/problem+json for the requests of env.req (their Accept
// names it) and application/json for requests without Accept.
func requireProblem(t *testing.T, w *httptest.ResponseRecorder, status int) Problem {
	t.Helper()
	require.Equal(t, status, w.Code, "body: %s", w.Body.String())
	require.Contains(t, []string{problemJSON, plainJSON}, w.Header().Get("Content-Type"))
	require.Equal(t, "Accept", w.Header().Get("Vary"))
	var p Problem
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &p), w.Body.String())
	require.Equal(t, status, p.Status)
	require.Equal(t, "about:blank", p.Type)
	require.Equal(t, http.StatusText(status), p.Title)
	require.NotEmpty(t, p.Detail)
	return p
}

// queueSize is the size of an asynq queue, 0 when asynq does not know it.
func (e *env) queueSize(instance string) int {
	e.t.Helper()
	q := e.ns + ":" + instance
	known, err := e.rdb.SIsMember(context.Background(), "asynq:queues", q).Result()
	require.NoError(e.t, err)
	if !known {
		return 0
	}
	info, err := asynq.NewInspectorFromRedisClient(e.rdb).GetQueueInfo(q)
	require.NoError(e.t, err)
	return info.Size
}

func (e *env) scan(pattern string) []string {
	e.t.Helper()
	var out []string
	iter := e.rdb.Scan(context.Background(), 0, pattern, 10_000).Iterator()
	for iter.Next(context.Background()) {
		out = append(out, iter.Val())
	}
	require.NoError(e.t, iter.Err())
	return out
}

// requireNothingEnqueued checks that no queue holds a task and that no task
// record, batch or asynq key of the namespace exists.
func (e *env) requireNothingEnqueued() {
	e.t.Helper()
	for _, in := range []string{"default", "eu"} {
		require.Zero(e.t, e.queueSize(in), "queue %s", in)
	}
	// One SCAN covers both the task records (wahaq:{ns:default}:t:*) and
	// every other key of the namespace (batches, asynq messages).
	keys := e.scan("*{" + e.ns + ":*")
	records := slices.DeleteFunc(slices.Clone(keys), func(k string) bool {
		return !strings.HasPrefix(k, store.KeysFor(e.ns, "default").Record(""))
	})
	require.Empty(e.t, records, "task records")
	require.Empty(e.t, keys, "keys of the namespace")
}

func TestBadInputEnqueuesNothing(t *testing.T) {
	t.Parallel()
	past := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	many := `{"sessions":[` + strings.TrimSuffix(strings.Repeat(`"s",`, 100_001), ",") + `]}`
	huge := `{"session":"a","instance":"` + strings.Repeat("x", DefaultMaxBodyBytes) + `"}`
	cases := []struct {
		name        string
		method      string
		path        string
		body        string
		contentType string // "" keeps application/json; "-" removes it
		status      int
		detail      string
	}{
		{"truncated JSON", "POST", "/v1/logouts", `{"session":`, "", 400, "ends in the middle"},
		{"syntax error", "POST", "/v1/logouts", `{"session": sales}`, "", 400, "not valid JSON"},
		{"unknown field", "POST", "/v1/logouts", `{"session":"a","sesion":"b"}`, "", 400, `unknown field "sesion"`},
		{"trailing object", "POST", "/v1/logouts", `{"session":"a"} {"session":"b"}`, "", 400, "after the JSON object"},
		{"trailing garbage", "POST", "/v1/logouts", `{"session":"a"}x`, "", 400, "after the JSON object"},
		{"body over 1 MiB", "POST", "/v1/logouts", huge, "", 400, "larger than 1048576 bytes"},
		{"empty body", "POST", "/v1/logouts", "", "-", 400, "empty"},
		{"array body", "POST", "/v1/logouts", `[{"session":"a"}]`, "", 400, "must be a JSON object"},
		{"missing session", "POST", "/v1/logouts", `{}`, "", 400, `"session"`},
		{"null session", "POST", "/v1/logouts", `{"session":null}`, "", 400, `"session"`},
		{"malformed session", "POST", "/v1/logouts", `{"session":"bad name!"}`, "", 400, `session name "bad name!" is not valid`},
		{"session too long", "POST", "/v1/logouts", `{"session":"` + strings.Repeat("a", 55) + `"}`, "", 400, "at most 54"},
		{"session not a string", "POST", "/v1/logouts", `{"session":5}`, "", 400, `field "session" must be a string`},
		{"unknown instance", "POST", "/v1/logouts", `{"instance":"nope","session":"a"}`, "", 400, `unknown instance "nope"`},
		{"malformed instance", "POST", "/v1/logouts", `{"instance":"a/b","session":"a"}`, "", 400, `instance name "a/b" is not valid`},
		{"at in the past", "POST", "/v1/logouts", `{"session":"a","at":"` + past + `"}`, "", 400, "in the past"},
		{"zero at", "POST", "/v1/logouts", `{"session":"a","at":"0001-01-01T00:00:00Z"}`, "", 400, "in the past"},
		{"at and in", "POST", "/v1/logouts", `{"session":"a","at":"` + future + `","in":"5m"}`, "", 400, `either "at" or "in", not both`},
		{"unparsable at", "POST", "/v1/logouts", `{"session":"a","at":"tomorrow"}`, "", 400, "RFC 3339"},
		{"unparsable in", "POST", "/v1/logouts", `{"session":"a","in":"5 minutes"}`, "", 400, "not a duration"},
		{"negative in", "POST", "/v1/logouts", `{"session":"a","in":"-5m"}`, "", 400, "negative"},
		{"in not a string", "POST", "/v1/logouts", `{"session":"a","in":300}`, "", 400, `field "in" must be a string`},
		{"wrong content type", "POST", "/v1/logouts", `{"session":"a"}`, "text/plain", 415, `"text/plain" is not supported`},
		{"latin1 charset", "POST", "/v1/logouts", `{"session":"a"}`, "application/json; charset=latin1", 415, "not supported"},
		{"batch empty sessions", "POST", "/v1/batches", `{"sessions":[]}`, "", 400, `"sessions" is empty`},
		{"batch neither sessions nor all", "POST", "/v1/batches", `{"instance":"eu"}`, "", 400, `give "sessions"`},
		{"batch over 100,000 sessions", "POST", "/v1/batches", many, "", 400, "100001 sessions; at most 100000"},
		{"batch all with sessions", "POST", "/v1/batches", `{"all":true,"sessions":["a"]}`, "", 400, "not both"},
		{"batch status without all", "POST", "/v1/batches", `{"sessions":["a"],"status":["WORKING"]}`, "", 400, `only with "all": true`},
		{"batch bad status", "POST", "/v1/batches", `{"all":true,"status":["work ing"]}`, "", 400, "not a WAHA session status"},
		{"batch one bad name", "POST", "/v1/batches", `{"sessions":["ok-1","no way","ok-2"]}`, "", 400, "sessions[1]"},
		{"batch unknown instance", "POST", "/v1/batches", `{"instance":"mars","all":true}`, "", 400, `unknown instance "mars"`},
		{"batch all at in the past", "POST", "/v1/batches", `{"all":true,"at":"` + past + `"}`, "", 400, "in the past"},
		{"batch unknown field", "POST", "/v1/batches", `{"sessions":["a"],"when":"now"}`, "", 400, `unknown field "when"`},
		{"batch sessions not an array", "POST", "/v1/batches", `{"sessions":"a,b"}`, "", 400, `field "sessions" must be an array of strings`},
		{"requeue neither ids nor all", "POST", "/v1/dlq/requeue", `{}`, "", 400, "either ids or all"},
		{"requeue unknown field", "POST", "/v1/dlq/requeue", `{"all":true,"force":true}`, "", 400, `unknown field "force"`},
		{"purge bad outcome", "DELETE", "/v1/dlq", `{"all":true,"outcome":"logged_out"}`, "", 400, "not a dead-letter outcome"},
		{"purge empty body", "DELETE", "/v1/dlq", "", "-", 400, "empty"},
		{"dlq limit 0", "GET", "/v1/dlq?limit=0", "", "-", 400, "limit"},
		{"dlq limit over 1000", "GET", "/v1/dlq?limit=1001", "", "-", 400, "from 1 to 1000"},
		{"dlq negative offset", "GET", "/v1/dlq?offset=-1", "", "-", 400, "offset"},
		{"dlq unknown instance", "GET", "/v1/dlq?instance=mars", "", "-", 400, `unknown instance "mars"`},
		{"dlq unknown parameter", "GET", "/v1/dlq?page=2", "", "-", 400, `unknown query parameter "page"`},
		{"duplicate key", "POST", "/v1/logouts", `{"session":"a","session":"b"}`, "", 400, `key "session" is given twice`},
		{"key in another case", "POST", "/v1/logouts", `{"SESSION":"x"}`, "", 400, `key "SESSION" is not a field; did you mean "session"?`},
		{"key in mixed case", "POST", "/v1/logouts", `{"session":"x","In":"5m"}`, "", 400, `key "In" is not a field; did you mean "in"?`},
		{"duplicate key after another error", "POST", "/v1/logouts", `{"session":"a","session":"b","in":"nonsense"}`, "", 400, `"session" is given twice`},
		{"batch duplicate key", "POST", "/v1/batches", `{"all":true,"instance":"eu","instance":"default"}`, "", 400, `key "instance" is given twice`},
		{"batch key in another case", "POST", "/v1/batches", `{"Sessions":["a"]}`, "", 400, `did you mean "sessions"?`},
		{"requeue duplicate key", "POST", "/v1/dlq/requeue", `{"all":true,"all":false}`, "", 400, `key "all" is given twice`},
		{"purge key in another case", "DELETE", "/v1/dlq", `{"ALL":true}`, "", 400, `did you mean "all"?`},
		{"in with unknown unit", "POST", "/v1/logouts", `{"session":"a","in":"P1M"}`, "", 400, `"in" "P1M" is not a duration`},
		{"negative ISO in", "POST", "/v1/logouts", `{"session":"a","in":"-PT5M"}`, "", 400, "negative"},
		{"malformed task id", "GET", "/v1/tasks/not.an.id", "", "-", 400, "task id"},
		{"malformed id on cancel", "DELETE", "/v1/tasks/not.an.id", "", "-", 400, "task id"},
	}
	require.GreaterOrEqual(t, len(cases), 20)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			r := e.req(tc.method, tc.path, tc.body)
			switch tc.contentType {
			case "":
			case "-":
				r.Header.Del("Content-Type")
			default:
				r.Header.Set("Content-Type", tc.contentType)
			}
			w := e.serve(r)
			p := requireProblem(t, w, tc.status)
			require.Contains(t, p.Detail, tc.detail)
			e.requireNothingEnqueued()
		})
	}
}

func TestLogoutLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t)

	w := e.do("POST", "/v1/logouts", `{"session":"sales-bot"}`)
	require.Equal(t, http.StatusAccepted, w.Code, w.Body.String())
	first := decodeJSON[map[string]any](t, w)
	id, _ := first["id"].(string)
	require.NotEmpty(t, id)
	require.Equal(t, "/v1/tasks/"+id, w.Header().Get("Location"))
	require.Equal(t, "pending", first["state"])
	require.Equal(t, "default", first["instance"])
	require.Equal(t, "sales-bot", first["session"])
	require.NotContains(t, first, "deduplicated", "a new task is not deduplicated")
	require.Equal(t, 1, e.queueSize("default"))

	// The same session again: the live task, 200, deduplicated.
	w = e.do("POST", "/v1/logouts", `{"session":"sales-bot","instance":""}`)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	again := decodeJSON[tasks.Task](t, w)
	require.Equal(t, id, again.ID)
	require.True(t, again.Deduplicated)
	require.Equal(t, "/v1/tasks/"+id, w.Header().Get("Location"))
	require.Equal(t, 1, e.queueSize("default"), "deduplication must not enqueue")

	w = e.do("GET", "/v1/tasks/"+id, "")
	require.Equal(t, http.StatusOK, w.Code)
	got := decodeJSON[tasks.Task](t, w)
	require.Equal(t, tasks.StatePending, got.State)
	require.Equal(t, "sales-bot", got.Session)
	require.False(t, got.Deduplicated)
	require.Nil(t, got.FinishedAt)

	w = e.do("DELETE", "/v1/tasks/"+id, "")
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	canceled := decodeJSON[tasks.Task](t, w)
	require.Equal(t, tasks.StateCanceled, canceled.State)
	require.NotNil(t, canceled.FinishedAt)
	require.Zero(t, e.queueSize("default"), "a canceled task leaves the queue")

	p := requireProblem(t, e.do("DELETE", "/v1/tasks/"+id, ""), http.StatusConflict)
	require.Contains(t, p.Detail, "is canceled")

	w = e.do("GET", "/v1/tasks/"+id, "")
	require.Equal(t, tasks.StateCanceled, decodeJSON[tasks.Task](t, w).State)

	// After the cancel the session can be enqueued anew.
	w = e.do("POST", "/v1/logouts", `{"session":"sales-bot"}`)
	require.Equal(t, http.StatusAccepted, w.Code)
	require.NotEqual(t, id, decodeJSON[tasks.Task](t, w).ID)
}

func TestCancelStartedTaskConflicts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	w := e.do("POST", "/v1/logouts", `{"session":"busy","instance":"eu"}`)
	require.Equal(t, http.StatusAccepted, w.Code)
	id := decodeJSON[tasks.Task](t, w).ID
	ok, err := e.store().Start(context.Background(), id, base.Payload{Instance: "eu", Session: "busy", MaxRetries: 10}, 1, 0, time.Minute)
	require.NoError(t, err)
	require.True(t, ok)
	p := requireProblem(t, e.do("DELETE", "/v1/tasks/"+id, ""), http.StatusConflict)
	require.Contains(t, p.Detail, "is active")
	require.Contains(t, p.Detail, "only a scheduled or pending task can be canceled")
}

func TestScheduled(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	before := time.Now()
	w := e.do("POST", "/v1/logouts", `{"session":"later","in":"30m"}`)
	require.Equal(t, http.StatusAccepted, w.Code, w.Body.String())
	tk := decodeJSON[tasks.Task](t, w)
	require.Equal(t, tasks.StateScheduled, tk.State)
	require.NotNil(t, tk.ScheduledFor)
	require.WithinDuration(t, before.Add(30*time.Minute), *tk.ScheduledFor, 5*time.Second)

	w = e.do("GET", "/v1/tasks/"+tk.ID, "")
	got := decodeJSON[tasks.Task](t, w)
	require.Equal(t, tasks.StateScheduled, got.State)
	require.NotNil(t, got.ScheduledFor)
	require.WithinDuration(t, *tk.ScheduledFor, *got.ScheduledFor, time.Millisecond)

	at := time.Now().Add(2 * time.Hour).UTC().Truncate(time.Second)
	w = e.do("POST", "/v1/logouts", `{"session":"at-two","at":"`+at.Format(time.RFC3339)+`","in":""}`)
	require.Equal(t, http.StatusAccepted, w.Code, w.Body.String())
	tk = decodeJSON[tasks.Task](t, w)
	require.Equal(t, tasks.StateScheduled, tk.State)
	require.True(t, at.Equal(*tk.ScheduledFor), "scheduled_for %v, want %v", tk.ScheduledFor, at)
}

func TestBatches(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	w := e.do("POST", "/v1/batches", `{"sessions":["b-1","b-2","b-3"]}`)
	require.Equal(t, http.StatusAccepted, w.Code, w.Body.String())
	info := decodeJSON[map[string]any](t, w)
	bid, _ := info["batch_id"].(string)
	require.NotEmpty(t, bid)
	require.Equal(t, map[string]any{"batch_id": bid, "total": 3.0, "requested": 3.0, "deduplicated": 0.0, "discovering": false}, info)
	require.Equal(t, "/v1/batches/"+bid, w.Header().Get("Location"))
	require.Equal(t, 3, e.queueSize("default"))

	w = e.do("GET", "/v1/batches/"+bid, "")
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	b := decodeJSON[tasks.Batch](t, w)
	require.Equal(t, bid, b.BatchID)
	require.EqualValues(t, 3, b.Total)
	require.EqualValues(t, 3, b.Counts[tasks.StatePending])
	require.EqualValues(t, 0, b.Counts[tasks.StateCompleted])
	require.False(t, b.Done)

	// Named twice, or already live: deduplicated, not part of the batch.
	w = e.do("POST", "/v1/batches", `{"sessions":["b-1","b-4","b-4"],"in":"1h"}`)
	require.Equal(t, http.StatusAccepted, w.Code, w.Body.String())
	info2 := decodeJSON[batchAccepted](t, w)
	require.Equal(t, batchAccepted{BatchID: info2.BatchID, Total: 1, Requested: 3, Deduplicated: 2}, info2)
	w = e.do("GET", "/v1/batches/"+info2.BatchID, "")
	b = decodeJSON[tasks.Batch](t, w)
	require.EqualValues(t, 1, b.Counts[tasks.StateScheduled])
	require.NotNil(t, b.ScheduledFor)

	// "all": a discovery batch, filled by the worker later.
	w = e.do("POST", "/v1/batches", `{"instance":"eu","all":true,"status":["working"]}`)
	require.Equal(t, http.StatusAccepted, w.Code, w.Body.String())
	disc := decodeJSON[batchAccepted](t, w)
	require.True(t, disc.Discovering)
	require.Zero(t, disc.Total)
	require.Equal(t, 1, e.queueSize("eu"), "the discovery task")
	w = e.do("GET", "/v1/batches/"+disc.BatchID, "")
	b = decodeJSON[tasks.Batch](t, w)
	require.Equal(t, "eu", b.Instance)
	require.True(t, b.Discovering)
	require.False(t, b.Done)
}

// TestListBatches: GET /v1/batches lists batches of every instance, made
// by this API or not, and checks its limit.
func TestListBatches(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	w := e.do("POST", "/v1/batches", `{"sessions":["lb-1","lb-2"]}`)
	require.Equal(t, http.StatusAccepted, w.Code, w.Body.String())
	viaAPI := decodeJSON[batchAccepted](t, w)
	time.Sleep(2 * time.Millisecond) // creation times are in ms: keep the order certain
	viaGo, err := e.prod.EnqueueDiscovery(context.Background(), tasks.DiscoveryRequest{Instance: "eu"})
	require.NoError(t, err)

	w = e.do("GET", "/v1/batches", "")
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	list := decodeJSON[batchList](t, w)
	require.Len(t, list.Batches, 2)
	require.Equal(t, viaGo.BatchID, list.Batches[0].BatchID, "newest first")
	require.Equal(t, "eu", list.Batches[0].Instance)
	require.Equal(t, viaAPI.BatchID, list.Batches[1].BatchID)
	require.EqualValues(t, 2, list.Batches[1].Total)

	w = e.do("GET", "/v1/batches?limit=1", "")
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	require.Len(t, decodeJSON[batchList](t, w).Batches, 1)
	for _, q := range []string{"limit=0", "limit=1001", "limit=x", "offset=3"} {
		requireProblem(t, e.do("GET", "/v1/batches?"+q, ""), http.StatusBadRequest)
	}
}

func TestNotFound(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, path := range []string{"/v1/tasks/0b6f3c1e-5f0e-4a44-9d55-0d8c3d1f8f20", "/v1/batches/0b6f3c1e-5f0e-4a44-9d55-0d8c3d1f8f20"} {
		p := requireProblem(t, e.do("GET", path, ""), http.StatusNotFound)
		require.Contains(t, p.Detail, "0b6f3c1e-5f0e-4a44-9d55-0d8c3d1f8f20")
	}
	p := requireProblem(t, e.do("DELETE", "/v1/tasks/0b6f3c1e-5f0e-4a44-9d55-0d8c3d1f8f20", ""), http.StatusNotFound)
	require.Contains(t, p.Detail, "no task")
	p = requireProblem(t, e.do("POST", "/v1/dlq/requeue", `{"ids":["0b6f3c1e-5f0e-4a44-9d55-0d8c3d1f8f20"]}`), http.StatusNotFound)
	require.Contains(t, p.Detail, "0b6f3c1e-5f0e-4a44-9d55-0d8c3d1f8f20")
}

// store is the engine under the env's producer, for steps only a worker takes.
func (e *env) store() *store.Store { return store.New(e.rdb, store.Options{Namespace: e.ns}) }

// kill makes a task a dead letter the way a worker does: the record says
// dead, and asynq has archived the message.
func (e *env) kill(id, instance, session string, o tasks.Outcome) {
	e.t.Helper()
	ctx := context.Background()
	p := base.Payload{Instance: instance, Session: session, MaxRetries: 10}
	ok, err := e.store().Start(ctx, id, p, 1, 0, time.Minute)
	require.NoError(e.t, err)
	require.True(e.t, ok)
	require.NoError(e.t, e.store().Finish(ctx, id, p, store.Finish{State: store.StateDead, Outcome: string(o),
		LastError: "WAHA answered 401", ResultTTL: time.Hour}))
	q := e.ns + ":" + instance
	require.NoError(e.t, e.rdb.LRem(ctx, asynqcompat.PendingKey(q), 0, id).Err())
	require.NoError(e.t, e.rdb.HSet(ctx, asynqcompat.TaskKey(q, id), asynqcompat.FieldState, asynqcompat.StateArchived).Err())
	require.NoError(e.t, e.rdb.ZAdd(ctx, asynqcompat.ArchivedKey(q), redis.Z{Score: float64(time.Now().Unix()), Member: id}).Err())
}

func TestDeadLetters(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var ids []string
	for i, s := range []string{"dead-1", "dead-2", "dead-3"} {
		w := e.do("POST", "/v1/logouts", `{"session":"`+s+`"}`)
		require.Equal(t, http.StatusAccepted, w.Code)
		id := decodeJSON[tasks.Task](t, w).ID
		o := tasks.OutcomeAuthFailed
		if i == 2 {
			o = tasks.OutcomeRejected
		}
		e.kill(id, "default", s, o)
		ids = append(ids, id)
	}

	w := e.do("GET", "/v1/dlq", "")
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	page := decodeJSON[tasks.DeadLetterPage](t, w)
	require.EqualValues(t, 3, page.Total)
	require.Len(t, page.Tasks, 3)
	require.EqualValues(t, -1, page.NextOffset)
	require.Equal(t, tasks.StateDead, page.Tasks[0].State)

	w = e.do("GET", "/v1/dlq?instance=default&offset=1&limit=1", "")
	page = decodeJSON[tasks.DeadLetterPage](t, w)
	require.Len(t, page.Tasks, 1)
	require.EqualValues(t, 2, page.NextOffset)

	w = e.do("GET", "/v1/dlq?instance=eu", "")
	page = decodeJSON[tasks.DeadLetterPage](t, w)
	require.Zero(t, page.Total)
	require.NotNil(t, page.Tasks)

	// Requeue only the auth failures.
	w = e.do("POST", "/v1/dlq/requeue", `{"all":true,"outcome":"auth_failed"}`)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	rq := decodeJSON[requeueResponse](t, w)
	require.Equal(t, 2, rq.Requeued)
	require.ElementsMatch(t, []tasks.RequeueResult{{ID: ids[0], Status: tasks.Requeued}, {ID: ids[1], Status: tasks.Requeued}}, rq.Results)
	w = e.do("GET", "/v1/tasks/"+ids[0], "")
	require.Equal(t, tasks.StatePending, decodeJSON[tasks.Task](t, w).State)

	// Requeueing a task that is not dead is refused as a whole.
	p := requireProblem(t, e.do("POST", "/v1/dlq/requeue", `{"ids":["`+ids[0]+`","`+ids[2]+`"]}`), http.StatusBadRequest)
	require.Contains(t, p.Detail, "not in the dead-letter queue")
	w = e.do("GET", "/v1/tasks/"+ids[2], "")
	require.Equal(t, tasks.StateDead, decodeJSON[tasks.Task](t, w).State)

	w = e.do("DELETE", "/v1/dlq", `{"ids":["`+ids[2]+`"]}`)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	require.Equal(t, map[string]any{"purged": 1.0}, decodeJSON[map[string]any](t, w))
	requireProblem(t, e.do("GET", "/v1/tasks/"+ids[2], ""), http.StatusNotFound)

	w = e.do("DELETE", "/v1/dlq", `{"all":true}`)
	require.Equal(t, map[string]any{"purged": 0.0}, decodeJSON[map[string]any](t, w))
	w = e.do("GET", "/v1/dlq", "")
	require.Zero(t, decodeJSON[tasks.DeadLetterPage](t, w).Total)
}

func TestAuth(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cases := []struct {
		name      string
		header    string // "" sends no Authorization header
		status    int
		challenge string
		detail    string
	}{
		{"missing", "", 401, `Bearer realm="wahaq"`, "missing bearer token"},
		{"wrong token", "Bearer nope", 401, `error="invalid_token"`, "not valid"},
		{"wrong token of equal length", "Bearer " + strings.Repeat("x", len(tokenA)), 401, `error="invalid_token"`, "not valid"},
		{"prefix of a token", "Bearer " + tokenA[:len(tokenA)-1], 401, `error="invalid_token"`, "not valid"},
		{"token plus extra", "Bearer " + tokenA + "x", 401, `error="invalid_token"`, "not valid"},
		{"basic scheme", "Basic " + tokenA, 401, `error="invalid_request"`, "Bearer scheme"},
		{"bare token", tokenA, 401, `error="invalid_request"`, "Bearer scheme"},
		{"empty bearer", "Bearer ", 401, `error="invalid_request"`, "empty"},
		{"first token", "Bearer " + tokenA, 404, "", ""},
		{"second token, trimmed in config", "Bearer " + tokenB, 404, "", ""},
		{"scheme is case-insensitive", "bearer " + tokenA, 404, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest("GET", "/v1/tasks/0b6f3c1e-5f0e-4a44-9d55-0d8c3d1f8f20", nil)
			if tc.header != "" {
				r.Header.Set("Authorization", tc.header)
			}
			w := e.serve(r)
			p := requireProblem(t, w, tc.status)
			if tc.status == 401 {
				require.True(t, strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Bearer "), w.Header().Get("WWW-Authenticate"))
				require.Contains(t, w.Header().Get("WWW-Authenticate"), tc.challenge)
				require.Contains(t, p.Detail, tc.detail)
				require.NotContains(t, w.Body.String(), tokenA)
			} else {
				require.Empty(t, w.Header().Get("WWW-Authenticate"))
			}
		})
	}

	// Writes are refused without a token and enqueue nothing.
	r := httptest.NewRequest("POST", "/v1/logouts", strings.NewReader(`{"session":"a"}`))
	requireProblem(t, e.serve(r), http.StatusUnauthorized)
	require.Zero(t, e.queueSize("default"))

	// Open routes.
	for _, path := range []string{"/healthz", "/readyz", "/openapi.json", "/metrics"} {
		w := e.serve(httptest.NewRequest("GET", path, nil))
		require.Equal(t, http.StatusOK, w.Code, path)
	}
	w := e.serve(httptest.NewRequest("GET", "/healthz", nil))
	require.JSONEq(t, `{"status":"ok"}`, w.Body.String())
	w = e.serve(httptest.NewRequest("GET", "/readyz", nil))
	require.JSONEq(t, `{"status":"ready"}`, w.Body.String())
	w = e.serve(httptest.NewRequest("GET", "/openapi.json", nil))
	require.Equal(t, "application/json", w.Header().Get("Content-Type"))
	require.Equal(t, OpenAPI, w.Body.Bytes())

	// The log shows 401s, but neither the tokens nor the headers.
	logs := e.logs.String()
	require.Contains(t, logs, `"status":401`)
	require.NotContains(t, logs, "Bearer")
}

func TestRoutingProblems(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := requireProblem(t, e.do("GET", "/v1/nothing", ""), http.StatusNotFound)
	require.Contains(t, p.Detail, "no route for GET /v1/nothing")

	w := e.do("PUT", "/v1/logouts", `{"session":"a"}`)
	p = requireProblem(t, w, http.StatusMethodNotAllowed)
	require.Contains(t, p.Detail, "PUT")
	require.Contains(t, w.Header().Get("Allow"), "POST")

	w = e.do("PATCH", "/v1/tasks/abc", "")
	requireProblem(t, w, http.StatusMethodNotAllowed)
	require.Contains(t, w.Header().Get("Allow"), "DELETE")
	require.Contains(t, w.Header().Get("Allow"), "GET")
	e.requireNothingEnqueued()
}

func TestNewConfig(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	ns := redistest.Namespace(t)
	tcfg := tasks.Config{Redis: rdb, Namespace: ns}
	prod, err := tasks.NewProducer(tcfg)
	require.NoError(t, err)
	insp, err := tasks.NewInspector(tcfg)
	require.NoError(t, err)

	_, err = New(Config{Inspector: insp, Tokens: []string{"t"}})
	require.ErrorContains(t, err, "Producer")
	_, err = New(Config{Producer: prod, Tokens: []string{"t"}})
	require.ErrorContains(t, err, "Inspector")
	_, err = New(Config{Producer: prod, Inspector: insp})
	require.ErrorContains(t, err, "WAHAQ_API_TOKENS")
	_, err = New(Config{Producer: prod, Inspector: insp, Tokens: []string{" ", ""}})
	require.ErrorContains(t, err, "--insecure-no-auth")

	// Insecure: served without a token, with a loud warning.
	var logs wahaqtest.LogBuffer
	lg := zerolog.New(&logs)
	h, err := New(Config{Producer: prod, Inspector: insp, InsecureNoAuth: true, Logger: &lg})
	require.NoError(t, err)
	require.Contains(t, logs.String(), `"level":"warn"`)
	require.Contains(t, logs.String(), "WITHOUT AUTHENTICATION")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("POST", "/v1/logouts", strings.NewReader(`{"session":"open"}`)))
	require.Equal(t, http.StatusAccepted, w.Code, w.Body.String())
	// Without Metrics, /metrics is not served.
	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	require.Equal(t, http.StatusNotFound, w.Code)

	// Tokens given with InsecureNoAuth: the tokens are enforced.
	h, err = New(Config{Producer: prod, Inspector: insp, InsecureNoAuth: true, Tokens: []string{"t"}})
	require.NoError(t, err)
	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/v1/dlq", nil))
	require.Equal(t, http.StatusUnauthorized, w.Code)
}

func TestReadyz(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) {
		c.Ready = func(context.Context) error { return errors.New("dial tcp 10.1.2.3:6379: connection refused") }
	})
	w := e.serve(httptest.NewRequest("GET", "/readyz", nil))
	p := requireProblem(t, w, http.StatusServiceUnavailable)
	require.Contains(t, p.Detail, "not ready")
	require.NotContains(t, p.Detail, "10.1.2.3", "internals stay in the log")
	require.Contains(t, e.logs.String(), "10.1.2.3")
	// Liveness does not depend on readiness.
	w = e.serve(httptest.NewRequest("GET", "/healthz", nil))
	require.Equal(t, http.StatusOK, w.Code)
}

// TestInternalErrors points the API at a Redis that does not answer: every
// call is a 500 with a generic detail, and the cause goes to the log only.
func TestInternalErrors(t *testing.T) {
	t.Parallel()
	port, err := redistest.FreePort()
	require.NoError(t, err)
	rdb := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port), MaxRetries: -1, DialerRetries: 1, DialTimeout: time.Second})
	t.Cleanup(func() { _ = rdb.Close() })
	tcfg := tasks.Config{Redis: rdb, Namespace: "unreachable"}
	prod, err := tasks.NewProducer(tcfg)
	require.NoError(t, err)
	insp, err := tasks.NewInspector(tcfg)
	require.NoError(t, err)
	var logs wahaqtest.LogBuffer
	lg := zerolog.New(&logs)
	h, err := New(Config{Producer: prod, Inspector: insp, Tokens: []string{tokenA}, Logger: &lg})
	require.NoError(t, err)
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/v1/logouts", `{"session":"a"}`},
		{"POST", "/v1/batches", `{"sessions":["a"]}`},
		{"GET", "/v1/tasks/abc", ""},
		{"GET", "/v1/batches/abc", ""},
		{"DELETE", "/v1/tasks/abc", ""},
		{"GET", "/v1/dlq", ""},
		{"POST", "/v1/dlq/requeue", `{"all":true}`},
		{"DELETE", "/v1/dlq", `{"all":true}`},
		{"DELETE", "/v1/batches/abc", ""},
	} {
		r := httptest.NewRequest(c.method, c.path, strings.NewReader(c.body))
		r.Header.Set("Authorization", "Bearer "+tokenA)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		// Redis unreachable is a 503 a client may retry, not a 500.
		p := requireProblem(t, w, http.StatusServiceUnavailable)
		require.Contains(t, p.Detail, "redis is unavailable", "%s %s", c.method, c.path)
		require.Equal(t, "2", w.Header().Get("Retry-After"), "%s %s", c.method, c.path)
		require.NotContains(t, w.Body.String(), "127.0.0.1")
	}
	out := logs.String()
	require.Contains(t, out, "connection refused")
	require.Contains(t, out, `"level":"error"`)
	require.NotContains(t, out, tokenA)
}

func TestRequestLog(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.do("GET", "/v1/tasks/0b6f3c1e-5f0e-4a44-9d55-0d8c3d1f8f20", "")
	e.do("GET", "/v1/unknown", "")
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(e.logs.String()), "\n") {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &m), l)
		if m["message"] == "http request" {
			lines = append(lines, m)
		}
	}
	require.Len(t, lines, 2)
	require.Equal(t, "info", lines[0]["level"])
	require.Equal(t, "GET", lines[0]["method"])
	require.Equal(t, "/v1/tasks/{id}", lines[0]["path"], "the pattern, not the raw path")
	require.EqualValues(t, 404, lines[0]["status"])
	require.Contains(t, lines[0], "duration")
	require.Equal(t, "unmatched", lines[1]["path"])
	require.EqualValues(t, 404, lines[1]["status"])
}

// TestOverHTTP runs a few calls through a real HTTP server, where
// MaxBytesReader and the client's view of headers are real.
func TestOverHTTP(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.MaxBodyBytes = 64 })
	srv := httptest.NewServer(e.h)
	t.Cleanup(srv.Close)
	client := srv.Client()
	t.Cleanup(client.CloseIdleConnections)

	post := func(body string) *http.Response {
		r, err := http.NewRequest("POST", srv.URL+"/v1/logouts", strings.NewReader(body))
		require.NoError(t, err)
		r.Header.Set("Authorization", "Bearer "+tokenB)
		r.Header.Set("Content-Type", "application/json; charset=utf-8")
		r.Header.Set("Accept", "application/problem+json")
		resp, err := client.Do(r)
		require.NoError(t, err)
		t.Cleanup(func() { _ = resp.Body.Close() })
		return resp
	}
	resp := post(`{"session":"over-http"}`)
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	require.True(t, strings.HasPrefix(resp.Header.Get("Location"), "/v1/tasks/"))

	resp = post(`{"session":"big","instance":"` + strings.Repeat("x", 100) + `"}`)
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	require.Equal(t, "application/problem+json", resp.Header.Get("Content-Type"))
	var p Problem
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&p))
	require.Equal(t, "request body is larger than 64 bytes", p.Detail)
	require.Equal(t, 1, e.queueSize("default"))
}
