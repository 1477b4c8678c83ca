package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
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

// TestIdempotencyScopeIsTheToken is issue 23's M5 and M6: the scope is the
// token however the scheme is written ("bearer T" made a new task where
// "Bearer T" had used the key), and the key names in Redis carry no plain
// hash of the token or the header, only a hash keyed with the server key:
// replicas sharing the key share the scope, another key gives another.
func TestIdempotencyScopeIsTheToken(t *testing.T) {
	t.Parallel()
	rdb, ns := redistest.Client(t), redistest.Namespace(t)
	serverKey := []byte("server-key-0123456789abcdef0123456789")
	e := newEnvOn(t, rdb, ns, func(c *Config) { c.ScopeKey = serverKey })
	replica := newEnvOn(t, rdb, ns, func(c *Config) { c.ScopeKey = serverKey })
	other := newEnvOn(t, rdb, ns, func(c *Config) { c.ScopeKey = []byte("another-key-0123456789abcdef01234567") })
	post := func(on *env, auth, body string) *httptest.ResponseRecorder {
		r := on.req("POST", "/v1/logouts", body)
		r.Header.Set("Authorization", auth)
		r.Header.Set("Idempotency-Key", "scope-42")
		return on.serve(r)
	}
	w := post(e, "Bearer "+tokenA, `{"session":"scope-a"}`)
	require.Equal(t, http.StatusAccepted, w.Code, w.Body.String())
	first := decodeJSON[tasks.Task](t, w).ID
	for _, auth := range []string{"bearer " + tokenA, "BEARER  " + tokenA + " "} {
		requireProblem(t, post(e, auth, `{"session":"scope-b"}`), http.StatusUnprocessableEntity)
		w := post(replica, auth, `{"session":"scope-a"}`)
		require.Equal(t, "true", w.Header().Get("Idempotent-Replayed"), "%q on a replica", auth)
		require.Equal(t, first, decodeJSON[tasks.Task](t, w).ID)
	}
	w = post(other, "Bearer "+tokenA, `{"session":"scope-b"}`)
	require.Equal(t, http.StatusAccepted, w.Code, "a server with another key has another scope")

	keys := e.scan("wahaq:" + ns + ":idem:*")
	require.NotEmpty(t, keys)
	for _, plain := range []string{"Bearer " + tokenA, "bearer " + tokenA, tokenA} {
		sum := sha256.Sum256([]byte(plain))
		for _, k := range keys {
			require.NotContains(t, k, hex.EncodeToString(sum[:6]), "a plain hash of %q names a key", plain)
			require.NotContains(t, k, tokenA[:8])
		}
	}
}

// TestIdempotencyRefusedNotKeptAndBounded is issue 23's M7: a refused
// request with a key keeps nothing in Redis (3,000 refused keys made
// 2.7 MB), and a token past its limit of live keys gets 429 and runs
// nothing.
func TestIdempotencyRefusedNotKeptAndBounded(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.ScopeKey = []byte("bound-key-0123456789abcdef0123456789") })
	for i := range 20 {
		r := e.req("POST", "/v1/logouts", `{"session":"bad name!"}`)
		r.Header.Set("Idempotency-Key", "refused-"+strconv.Itoa(i))
		requireProblem(t, e.serve(r), http.StatusBadRequest)
	}
	require.Empty(t, e.scan("wahaq:"+e.ns+":idem:*"), "refused requests left idempotency keys")

	r := e.req("POST", "/v1/logouts", `{"session":"bound-a"}`)
	r.Header.Set("Idempotency-Key", "bound-0")
	require.Equal(t, http.StatusAccepted, e.serve(r).Code)
	zset := e.scan("wahaq:" + e.ns + ":idem:{*}")
	require.Len(t, zset, 1, "the token's list of live keys")
	// Fill the token's list to the limit, as 10,000 earlier keys would.
	end := float64(time.Now().Add(time.Hour).UnixMilli())
	members := make([]redis.Z, tasks.MaxIdempotencyKeys)
	for i := range members {
		members[i] = redis.Z{Score: end, Member: "filler-" + strconv.Itoa(i)}
	}
	require.NoError(t, e.rdb.ZAdd(context.Background(), zset[0], members...).Err())
	r = e.req("POST", "/v1/logouts", `{"session":"bound-b"}`)
	r.Header.Set("Idempotency-Key", "bound-1")
	w := e.serve(r)
	p := requireProblem(t, w, http.StatusTooManyRequests)
	require.Contains(t, p.Detail, "Idempotency-Key")
	require.NotEmpty(t, w.Header().Get("Retry-After"))
	require.Len(t, e.scan(store.KeysFor(e.ns, "default").Record("*")), 1, "the refused request ran")
	// A key already answered still replays.
	r = e.req("POST", "/v1/logouts", `{"session":"bound-a"}`)
	r.Header.Set("Idempotency-Key", "bound-0")
	require.Equal(t, "true", e.serve(r).Header().Get("Idempotent-Replayed"))
}
