package tracing_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/wahaq/wahaq/internal/api"
	"github.com/wahaq/wahaq/internal/config"
	"github.com/wahaq/wahaq/internal/schedule"
	"github.com/wahaq/wahaq/internal/store"
	"github.com/wahaq/wahaq/internal/tracing"
	"github.com/wahaq/wahaq/wahaclient/wahafake"
	"github.com/wahaq/wahaq/wahaqtest"
	"github.com/wahaq/wahaq/worker"
)

// traced is one trace as the recorder saw it.
type traced struct {
	spans  []sdktrace.ReadOnlySpan
	byName map[string][]sdktrace.ReadOnlySpan
	byID   map[trace.SpanID]sdktrace.ReadOnlySpan
}

// waitTrace waits until the trace id has attempts spans ended and returns
// the trace.
func waitTrace(t *testing.T, rec *tracetest.SpanRecorder, id string, attempts int) traced {
	t.Helper()
	var tr traced
	require.Eventually(t, func() bool {
		tr = traced{byName: map[string][]sdktrace.ReadOnlySpan{}, byID: map[trace.SpanID]sdktrace.ReadOnlySpan{}}
		for _, s := range rec.Ended() {
			if s.SpanContext().TraceID().String() == id {
				tr.spans = append(tr.spans, s)
				tr.byName[s.Name()] = append(tr.byName[s.Name()], s)
				tr.byID[s.SpanContext().SpanID()] = s
			}
		}
		return len(tr.byName["wahaq.attempt"]) == attempts
	}, 15*time.Second, 20*time.Millisecond, "trace %s", id)
	return tr
}

// one is the only span of that name in the trace.
func (tr traced) one(t *testing.T, name string) sdktrace.ReadOnlySpan {
	t.Helper()
	require.Len(t, tr.byName[name], 1, name)
	return tr.byName[name][0]
}

// checkAttempts asserts that every attempt is a child of parent, names a
// task whose record keeps this trace id, and has one WAHA call under it.
func (tr traced) checkAttempts(t *testing.T, env *wahaqtest.Env, parent sdktrace.ReadOnlySpan) map[string]int {
	t.Helper()
	perTask := map[string]int{}
	for _, a := range tr.byName["wahaq.attempt"] {
		require.Equal(t, parent.SpanContext().SpanID(), a.Parent().SpanID(), "each attempt is a child of %s", parent.Name())
		id := attrMap(a.Attributes())["task_id"].AsString()
		perTask[id]++
		task, err := env.Inspector.Task(context.Background(), id)
		require.NoError(t, err)
		require.NotNil(t, task.TraceID, "the console links the task to its trace")
		require.Equal(t, a.SpanContext().TraceID().String(), *task.TraceID)
	}
	calls := map[trace.SpanID]int{}
	for _, s := range tr.spans {
		if p, ok := tr.byID[s.Parent().SpanID()]; ok && p.Name() == "wahaq.attempt" {
			calls[p.SpanContext().SpanID()]++
		}
	}
	for _, a := range tr.byName["wahaq.attempt"] {
		require.Equal(t, 1, calls[a.SpanContext().SpanID()], "one WAHA call under each attempt")
	}
	return perTask
}

func post(t *testing.T, url, body string) map[string]any {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader([]byte(body)))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer tok")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Less(t, resp.StatusCode, 300)
	var out map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	return out
}

// TestOneTracePerBatch: a batch request is one trace. Through the HTTP API,
// a batch of the fake's sessions, the first answered 503 once, is the API
// request, the batch enqueue, one attempt per task plus the retry (all
// children of the enqueue) and one WAHA call under each attempt; an "all" batch adds the discovery between the
// enqueue and the attempts, with its session listing under it; a schedule
// tick is the root of its batch's trace. Not parallel: it installs the
// global tracer provider.
func TestOneTracePerBatch(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tracing.Install(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)))
	start := func(t *testing.T) (*wahaqtest.Env, string) {
		env := wahaqtest.Start(t, wahaqtest.Options{Fake: wahafake.Options{Sessions: 2},
			Worker: func(c *worker.Config) { c.Trace = true }})
		h, err := api.New(api.Config{Producer: env.Producer, Inspector: env.Inspector, Tokens: []string{"tok"}})
		require.NoError(t, err)
		srv := httptest.NewServer(otelhttp.NewHandler(h, "wahaq.api"))
		t.Cleanup(srv.Close)
		return env, srv.URL
	}

	t.Run("sessions", func(t *testing.T) {
		env, url := start(t)
		sessions := env.Fake.Sessions()
		env.Fake.Script(sessions[0], wahafake.Fault{Status: 503, Times: 1})
		body, _ := json.Marshal(map[string]any{"sessions": sessions})
		bid, _ := post(t, url+"/v1/batches", string(body))["batch_id"].(string)
		require.NotEmpty(t, bid)
		require.True(t, env.WaitBatch(t, bid, 20*time.Second).Done)

		var traceID string
		for _, s := range rec.Ended() {
			if s.Name() == "wahaq.enqueue_batch" && attrMap(s.Attributes())["batch_id"].AsString() == bid {
				traceID = s.SpanContext().TraceID().String()
			}
		}
		require.NotEmpty(t, traceID, "the batch request has a span")
		tr := waitTrace(t, rec, traceID, len(sessions)+1)
		apiSpan, enq := tr.one(t, "wahaq.api"), tr.one(t, "wahaq.enqueue_batch")
		require.False(t, apiSpan.Parent().IsValid(), "the API request is the root")
		require.Equal(t, apiSpan.SpanContext().SpanID(), enq.Parent().SpanID())
		require.EqualValues(t, len(sessions), attrMap(enq.Attributes())["total"].AsInt64())
		perTask := tr.checkAttempts(t, env, enq)
		require.Len(t, perTask, len(sessions), "every task of the batch is in the one trace")
		retried := 0
		for _, n := range perTask {
			if n == 2 {
				retried++
			}
		}
		require.Equal(t, 1, retried, "the 503 made one task retry, inside the same trace")
	})

	t.Run("discovery", func(t *testing.T) {
		env, url := start(t)
		bid, _ := post(t, url+"/v1/batches", `{"all":true}`)["batch_id"].(string)
		require.NotEmpty(t, bid)
		b := env.WaitBatch(t, bid, 20*time.Second)
		require.EqualValues(t, len(env.Fake.Sessions()), b.Total)

		var traceID string
		for _, s := range rec.Ended() {
			if s.Name() == "wahaq.enqueue_discovery" && attrMap(s.Attributes())["batch_id"].AsString() == bid {
				traceID = s.SpanContext().TraceID().String()
			}
		}
		require.NotEmpty(t, traceID)
		tr := waitTrace(t, rec, traceID, int(b.Total))
		apiSpan, enq, disc := tr.one(t, "wahaq.api"), tr.one(t, "wahaq.enqueue_discovery"), tr.one(t, "wahaq.discover")
		require.Equal(t, apiSpan.SpanContext().SpanID(), enq.Parent().SpanID())
		require.Equal(t, enq.SpanContext().SpanID(), disc.Parent().SpanID(), "the worker's discovery joins the request's trace")
		require.Equal(t, b.Total, attrMap(disc.Attributes())["enqueued"].AsInt64())
		listed := 0
		for _, s := range tr.spans {
			if s.Parent().SpanID() == disc.SpanContext().SpanID() && s.Name() != "wahaq.attempt" {
				listed++ // otelhttp's call listing the sessions
			}
		}
		require.Equal(t, 1, listed, "the session listing is a child of the discovery")
		require.Len(t, tr.checkAttempts(t, env, disc), int(b.Total))
	})

	t.Run("schedule", func(t *testing.T) {
		env, _ := start(t)
		sessions := env.Fake.Sessions()
		f, err := config.ParseFile([]byte("schedules:\n  - name: nightly\n    instance: "+env.Instance+
			"\n    cron: \"* * * * *\"\n    sessions: ["+sessions[0]+"]\n"), func(string) string { return "" })
		require.NoError(t, err)
		r := schedule.New(env.Producer, store.New(env.Redis, store.Options{Namespace: env.Namespace}), f.Schedules, zerolog.Nop(), nil)
		now := time.Now()
		require.Equal(t, 1, r.Check(context.Background(), now.Add(-time.Minute), now))

		var traceID, bid string
		for _, s := range rec.Ended() {
			if s.Name() == "wahaq.schedule" && attrMap(s.Attributes())["schedule"].AsString() == "nightly" &&
				attrMap(s.Attributes())["instance"].AsString() == env.Instance {
				traceID = s.SpanContext().TraceID().String()
				bid = attrMap(s.Attributes())["batch_id"].AsString()
			}
		}
		require.NotEmpty(t, traceID, "the tick has a span")
		require.True(t, env.WaitBatch(t, bid, 20*time.Second).Done)
		tr := waitTrace(t, rec, traceID, 1)
		tick, enq := tr.one(t, "wahaq.schedule"), tr.one(t, "wahaq.enqueue_batch")
		require.False(t, tick.Parent().IsValid(), "the tick is the root")
		require.Equal(t, tick.SpanContext().SpanID(), enq.Parent().SpanID())
		require.Len(t, tr.checkAttempts(t, env, enq), 1)
	})
}
