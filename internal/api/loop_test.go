package api

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/redistest"
	"github.com/wahaq/wahaq/internal/store"
	"github.com/wahaq/wahaq/tasks"
)

// TestIdempotencyKeyTimeoutAndRetry: the first try's client gives up (its
// request context is canceled, as when n8n times out) yet the logout is
// enqueued and its answer kept; the retry with the same key and body gets
// the same answer, even after the task finished, and there is one task.
// Another body with the key is 422; another token has its own keys.
func TestIdempotencyKeyTimeoutAndRetry(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	body := `{"session":"idem-a"}`

	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the client is already gone when the server works
	first := e.req("POST", "/v1/logouts", body).WithContext(ctx)
	first.Header.Set("Idempotency-Key", `"n8n-exec-42"`)
	w1 := e.serve(first)
	require.Equal(t, http.StatusAccepted, w1.Code, w1.Body.String())
	t1 := decodeJSON[tasks.Task](t, w1)

	// the task ends before the retry
	_, err := e.prod.Cancel(context.Background(), t1.ID)
	require.NoError(t, err)

	retry := e.req("POST", "/v1/logouts", body)
	retry.Header.Set("Idempotency-Key", "n8n-exec-42")
	w2 := e.serve(retry)
	require.Equal(t, http.StatusAccepted, w2.Code)
	require.Equal(t, "true", w2.Header().Get("Idempotent-Replayed"))
	require.Equal(t, w1.Header().Get("Location"), w2.Header().Get("Location"))
	t2 := decodeJSON[tasks.Task](t, w2)
	require.Equal(t, t1.ID, t2.ID)
	require.Len(t, e.scan(store.KeysFor(e.ns, "default").Record("*")), 1, "the retry enqueued a second task")

	other := e.req("POST", "/v1/logouts", `{"session":"idem-b"}`)
	other.Header.Set("Idempotency-Key", "n8n-exec-42")
	requireProblem(t, e.serve(other), http.StatusUnprocessableEntity)

	// another token: its own key space, so a new task
	b := e.req("POST", "/v1/logouts", body)
	b.Header.Set("Authorization", "Bearer "+tokenB)
	b.Header.Set("Idempotency-Key", "n8n-exec-42")
	w3 := e.serve(b)
	require.Equal(t, http.StatusAccepted, w3.Code, w3.Body.String())
	require.NotEqual(t, t1.ID, decodeJSON[tasks.Task](t, w3).ID)
	for _, k := range e.scan("wahaq:" + e.ns + ":idem:*") {
		require.NotContains(t, k, tokenA)
		require.NotContains(t, k, tokenB)
	}
}

// TestCallbackURLOutsideAllowListIs400: nothing is enqueued.
func TestCallbackURLOutsideAllowListIs400(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, c := range []struct{ path, body string }{
		{"/v1/logouts", `{"session":"cb-x","callback_url":"http://169.254.169.254/latest"}`},
		{"/v1/batches", `{"sessions":["cb-x"],"callback_url":"http://evil.example/hook"}`},
		{"/v1/batches", `{"all":true,"callback_url":"http://evil.example/hook"}`},
	} {
		p := requireProblem(t, e.do("POST", c.path, c.body), http.StatusBadRequest)
		require.True(t, strings.Contains(p.Detail, "callback"), p.Detail)
	}
	e.requireNothingEnqueued()
}

// TestCallbackAllowIPPortIsThatPortOnly is issue 23's S2 at the API: with
// WAHAQ_CALLBACK_ALLOW=127.0.0.1:17091 a callback_url on another port of
// that address, however it is written, is 400 and enqueues nothing.
func TestCallbackAllowIPPortIsThatPortOnly(t *testing.T) {
	t.Parallel()
	rdb, ns := redistest.Client(t), redistest.Namespace(t)
	p, err := tasks.NewProducer(tasks.Config{Redis: rdb, Namespace: ns, Instances: []string{"default", "eu"},
		CallbackAllow: []string{"127.0.0.1:17091"}})
	require.NoError(t, err)
	e := newEnvOn(t, rdb, ns, func(c *Config) { c.Producer = p })
	for _, u := range []string{
		"http://127.0.0.1:16391/redis",
		"http://[::ffff:127.0.0.1]:17093/hook",
		"http://[::ffff:7f00:1]:16391/redis",
		"http://2130706433:16391/redis",
		"http://2130706433:17091/hook", // the allowed port, in a legacy notation
		"http://0x7f000001:16391/redis",
		"http://localhost:17091/hook",
	} {
		for _, c := range []struct{ path, body string }{
			{"/v1/logouts", `{"session":"cb-x","callback_url":"` + u + `"}`},
			{"/v1/batches", `{"sessions":["cb-x"],"callback_url":"` + u + `"}`},
		} {
			p := requireProblem(t, e.do("POST", c.path, c.body), http.StatusBadRequest)
			require.Contains(t, p.Detail, "callback_url", "%s %s", c.path, u)
		}
	}
	e.requireNothingEnqueued()
	for _, u := range []string{"http://127.0.0.1:17091/hook", "http://[::ffff:127.0.0.1]:17091/hook"} {
		w := e.do("POST", "/v1/logouts", `{"session":"cb-ok","callback_url":"`+u+`"}`)
		require.Contains(t, []int{http.StatusAccepted, http.StatusOK}, w.Code, w.Body.String())
	}
}
