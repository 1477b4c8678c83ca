package tracing_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/wahaq/wahaq/internal/api"
	"github.com/wahaq/wahaq/internal/tracing"
	"github.com/wahaq/wahaq/tasks"
	"github.com/wahaq/wahaq/wahaclient/wahafake"
	"github.com/wahaq/wahaq/wahaqtest"
	"github.com/wahaq/wahaq/worker"
)

func TestEnabled(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		env  map[string]string
		on   bool
		fail bool
	}{
		{map[string]string{}, false, false},
		{map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"}, false, false},
		{map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, true, false},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, true, false},
		{map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, true, false},
		{map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, false, true},
	} {
		on, err := tracing.Enabled(func(k string) string { return c.env[k] })
		require.Equal(t, c.fail, err != nil, "%v", c.env)
		require.Equal(t, c.on, on, "%v", c.env)
	}
	require.Equal(t, "https://jaeger/trace/abc", tracing.URL("https://jaeger/trace/{trace_id}", "abc"))
	require.Empty(t, tracing.URL("", "abc"))
	require.Empty(t, tracing.URL("https://jaeger/trace/{trace_id}", ""))
}

// TestOneTracePerLogout: a logout through the HTTP API that WAHA answers 503
// once, then 200, is one trace: the API request, the enqueue, two attempts
// and their two WAHA calls, each with the right parent. Not parallel: it
// installs the global tracer provider.
func TestOneTracePerLogout(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	tracing.Install(tp)

	env := wahaqtest.Start(t, wahaqtest.Options{Fake: wahafake.Options{Sessions: 1},
		Worker: func(c *worker.Config) { c.Trace = true }})
	sessions := env.Fake.Sessions()
	require.NotEmpty(t, sessions)
	session := sessions[0]
	env.Fake.Script(session, wahafake.Fault{Status: 503, Times: 1})
	h, err := api.New(api.Config{Producer: env.Producer, Inspector: env.Inspector, Tokens: []string{"tok"}})
	require.NoError(t, err)
	srv := httptest.NewServer(otelhttp.NewHandler(h, "wahaq.api"))
	t.Cleanup(srv.Close)

	body, _ := json.Marshal(map[string]string{"session": session})
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/v1/logouts", bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer tok")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	var task tasks.Task
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&task))
	resp.Body.Close()
	require.Less(t, resp.StatusCode, 300)
	require.NotNil(t, task.TraceID)

	done := env.WaitTask(t, task.ID, 20*time.Second)
	require.Equal(t, tasks.OutcomeLoggedOut, *done.Outcome)
	require.NotNil(t, done.TraceID)
	require.Equal(t, *task.TraceID, *done.TraceID)
	require.Len(t, done.AttemptsLog, 2)
	require.Equal(t, 503, done.AttemptsLog[0].HTTPStatus)
	require.Equal(t, "retrying", done.AttemptsLog[0].Outcome)

	// The attempt span ends after the task's record is written.
	var spans []sdktrace.ReadOnlySpan
	require.Eventually(t, func() bool {
		spans = spans[:0]
		for _, s := range rec.Ended() {
			if s.SpanContext().TraceID().String() == *task.TraceID {
				spans = append(spans, s)
			}
		}
		return count(spans, "wahaq.attempt") == 2
	}, 10*time.Second, 20*time.Millisecond)

	byName := map[string][]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		byName[s.Name()] = append(byName[s.Name()], s)
	}
	require.Len(t, byName["wahaq.api"], 1)
	require.Len(t, byName["wahaq.enqueue"], 1)
	apiSpan, enq := byName["wahaq.api"][0], byName["wahaq.enqueue"][0]
	require.False(t, apiSpan.Parent().IsValid(), "the API request is the root")
	require.Equal(t, apiSpan.SpanContext().SpanID(), enq.Parent().SpanID())
	attempts := byName["wahaq.attempt"]
	outcomes := map[int]string{}
	for _, a := range attempts {
		require.Equal(t, enq.SpanContext().SpanID(), a.Parent().SpanID(), "each attempt is a child of the enqueue")
		attrs := attrMap(a.Attributes())
		require.Equal(t, task.ID, attrs["task_id"].AsString())
		require.Equal(t, session, attrs["session"].AsString())
		require.Equal(t, env.Instance, attrs["instance"].AsString())
		outcomes[int(attrs["attempt"].AsInt64())] = attrs["outcome"].AsString()
	}
	require.Equal(t, map[int]string{1: "retrying", 2: "logged_out"}, outcomes)
	var calls int
	for _, s := range spans {
		if s.Name() == "wahaq.api" || s.Name() == "wahaq.enqueue" || s.Name() == "wahaq.attempt" {
			continue
		}
		// otelhttp's client span of the call to WAHA.
		var parent sdktrace.ReadOnlySpan
		for _, a := range attempts {
			if a.SpanContext().SpanID() == s.Parent().SpanID() {
				parent = a
			}
		}
		require.NotNil(t, parent, "WAHA call %q is a child of an attempt", s.Name())
		calls++
	}
	require.Equal(t, 2, calls, "two WAHA calls")
}

func count(spans []sdktrace.ReadOnlySpan, name string) int {
	n := 0
	for _, s := range spans {
		if s.Name() == name {
			n++
		}
	}
	return n
}

func attrMap(kvs []attribute.KeyValue) map[string]attribute.Value {
	m := map[string]attribute.Value{}
	for _, kv := range kvs {
		m[string(kv.Key)] = kv.Value
	}
	return m
}
