package worker_test

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/tasks"
	"github.com/wahaq/wahaq/wahaclient/wahafake"
	"github.com/wahaq/wahaq/wahaqtest"
	"github.com/wahaq/wahaq/worker"
)

// delivery is one POST a receiver got.
type delivery struct {
	id, ts, sig string
	body        []byte
}

// receiver is a loopback callback receiver that answers the statuses of
// answers in turn (then 200) and keeps every delivery.
type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	got      []delivery
	answers  []int
	location string // where a 302 points
}

func newReceiver(t *testing.T, answers ...int) *receiver {
	r := &receiver{answers: answers}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, delivery{req.Header.Get("webhook-id"), req.Header.Get("webhook-timestamp"), req.Header.Get("webhook-signature"), b})
		code := http.StatusOK
		if len(r.answers) > 0 {
			code, r.answers = r.answers[0], r.answers[1:]
		}
		r.mu.Unlock()
		if code == http.StatusFound {
			r.mu.Lock()
			w.Header().Set("Location", r.location)
			r.mu.Unlock()
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) deliveries() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery(nil), r.got...)
}

// verify checks a delivery the Standard Webhooks way, written from the spec
// (github.com/standard-webhooks/standard-webhooks, spec/standard-webhooks.md):
// the key is the base64 after "whsec_"; the signed content is
// "<webhook-id>.<webhook-timestamp>.<body>"; webhook-signature is a
// space-separated list of "v1,<base64 HMAC-SHA256>"; the timestamp must be
// within five minutes.
func verify(t *testing.T, secret string, d delivery) {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	require.NoError(t, err)
	ts, err := strconv.ParseInt(d.ts, 10, 64)
	require.NoError(t, err)
	require.InDelta(t, time.Now().Unix(), ts, 300, "webhook-timestamp too far from now")
	require.NotEmpty(t, d.id)
	m := hmac.New(sha256.New, key)
	m.Write([]byte(d.id + "." + d.ts + "." + string(d.body)))
	want := m.Sum(nil)
	for _, s := range strings.Fields(d.sig) {
		v, b64, ok := strings.Cut(s, ",")
		if !ok || v != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(b64)
		if err == nil && hmac.Equal(got, want) {
			return
		}
	}
	t.Fatalf("no valid v1 signature in %q", d.sig)
}

func newSecret(t *testing.T) string {
	b := make([]byte, 32)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return "whsec_" + base64.StdEncoding.EncodeToString(b)
}

func callbackEnv(t *testing.T, secret string, fake wahafake.Options) *wahaqtest.Env {
	env, _ := callbackEnvMetrics(t, secret, fake)
	return env
}

// callbackEnvMetrics is callbackEnv with the worker's metrics on a registry
// of the test's.
func callbackEnvMetrics(t *testing.T, secret string, fake wahafake.Options) (*wahaqtest.Env, *prometheus.Registry) {
	reg := prometheus.NewRegistry()
	env := wahaqtest.Start(t, wahaqtest.Options{
		Fake:  fake,
		Tasks: func(c *tasks.Config) { c.CallbackAllow = []string{"127.0.0.1"} },
		Worker: func(c *worker.Config) {
			c.CallbackSecret = secret
			c.CallbackAllow = []string{"127.0.0.1"}
			c.CallbackRetryBase = 10 * time.Millisecond
			c.CallbackRetryMax = 20 * time.Millisecond
			c.Registerer = reg
		},
	})
	return env, reg
}

// requireSteps waits until wahaq_callback_deliveries_total reads want by
// result: the worker counts a step just after it records it, which is what
// the test saw.
func requireSteps(t *testing.T, reg *prometheus.Registry, want map[string]float64) {
	t.Helper()
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Equal(c, want, callbackSteps(t, reg))
	}, 5*time.Second, 10*time.Millisecond)
}

// callbackSteps reads wahaq_callback_deliveries_total by result.
func callbackSteps(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	require.NoError(t, err)
	out := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "wahaq_callback_deliveries_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" {
					out[l.GetValue()] += m.GetCounter().GetValue()
				}
			}
		}
	}
	return out
}

// waitCallback waits until the task's callback leaves pending and returns
// the task.
func waitCallback(t *testing.T, env *wahaqtest.Env, id string) *tasks.Task {
	t.Helper()
	var task *tasks.Task
	require.Eventually(t, func() bool {
		var err error
		task, err = env.Inspector.Task(context.Background(), id)
		return err == nil && task.Callback != nil && (task.Callback.State == "delivered" || task.Callback.State == "failed")
	}, 30*time.Second, 20*time.Millisecond)
	return task
}

func TestCallbackDeliveredOncePerFinalTaskAndBatch(t *testing.T) {
	t.Parallel()
	secret := newSecret(t)
	env := callbackEnv(t, secret, wahafake.Options{APIKey: "k"})
	env.Fake.AddSession("cb-a", wahafake.StatusWorking)
	rcv := newReceiver(t)
	ctx := context.Background()

	done, err := env.Producer.Enqueue(ctx, tasks.LogoutRequest{Session: "cb-a", CallbackURL: rcv.URL + "/hook?x=1"})
	require.NoError(t, err)
	require.Equal(t, "waiting", done.Callback.State)
	// a scheduled task canceled: canceled is final too
	canceled, err := env.Producer.Enqueue(ctx, tasks.LogoutRequest{Session: "cb-b", When: tasks.When{In: time.Hour}, CallbackURL: rcv.URL})
	require.NoError(t, err)
	_, err = env.Producer.Cancel(ctx, canceled.ID)
	require.NoError(t, err)
	b, err := env.Producer.EnqueueBatch(ctx, tasks.BatchRequest{Sessions: []string{"cb-c", "cb-d"}, CallbackURL: rcv.URL})
	require.NoError(t, err)

	final := waitCallback(t, env, done.ID)
	require.Equal(t, tasks.StateCompleted, final.State)
	require.Equal(t, "delivered", final.Callback.State)
	require.Equal(t, 1, final.Callback.Attempts)
	require.Equal(t, http.StatusOK, final.Callback.LastStatus)
	waitCallback(t, env, canceled.ID)
	require.Eventually(t, func() bool {
		bb, err := env.Inspector.Batch(ctx, b.BatchID)
		return err == nil && bb.Callback != nil && bb.Callback.State == "delivered"
	}, 30*time.Second, 20*time.Millisecond)

	got := rcv.deliveries()
	require.Len(t, got, 3, "one delivery per final task and per batch")
	seen := map[string]map[string]any{}
	for _, d := range got {
		verify(t, secret, d)
		var m map[string]any
		require.NoError(t, json.Unmarshal(d.body, &m))
		if id, ok := m["id"].(string); ok {
			seen[id] = m
		} else {
			seen[m["batch_id"].(string)] = m
		}
	}
	require.Equal(t, "completed", seen[done.ID]["state"])
	require.Equal(t, "logged_out", seen[done.ID]["outcome"])
	require.Equal(t, "success", seen[done.ID]["result"].(map[string]any)["status"])
	require.Equal(t, "canceled", seen[canceled.ID]["state"])
	require.Equal(t, true, seen[b.BatchID]["done"])
	require.EqualValues(t, 2, seen[b.BatchID]["total"])
}

func TestCallbackRetriedUntilTheReceiverAnswers(t *testing.T) {
	t.Parallel()
	secret := newSecret(t)
	env, reg := callbackEnvMetrics(t, secret, wahafake.Options{APIKey: "k"})
	// two failures: a third in a row would open the receiver's breaker
	// (worker.ReceiverFailures) for worker.ReceiverOpen
	rcv := newReceiver(t, 500, 503)
	task, err := env.Producer.Enqueue(context.Background(), tasks.LogoutRequest{Session: "cb-retry", CallbackURL: rcv.URL})
	require.NoError(t, err)
	final := waitCallback(t, env, task.ID)
	require.Equal(t, "delivered", final.Callback.State)
	require.Equal(t, 3, final.Callback.Attempts)
	got := rcv.deliveries()
	require.Len(t, got, 3, "a 500 and a 503, then delivered on the third try")
	for _, d := range got {
		verify(t, secret, d)
		require.Equal(t, got[0].id, d.id, "webhook-id is the same on every retry")
	}
	requireSteps(t, reg, map[string]float64{"retry": 2, "delivered": 1})
}

func TestCallbackRedirectNotFollowed(t *testing.T) {
	t.Parallel()
	secret := newSecret(t)
	env, reg := callbackEnvMetrics(t, secret, wahafake.Options{APIKey: "k"})
	elsewhere := newReceiver(t)
	rcv := newReceiver(t, http.StatusFound)
	rcv.mu.Lock()
	rcv.location = elsewhere.URL
	rcv.mu.Unlock()
	task, err := env.Producer.Enqueue(context.Background(), tasks.LogoutRequest{Session: "cb-redirect", CallbackURL: rcv.URL})
	require.NoError(t, err)
	final := waitCallback(t, env, task.ID)
	require.Equal(t, "failed", final.Callback.State)
	require.Equal(t, http.StatusFound, final.Callback.LastStatus)
	require.Contains(t, *final.Callback.LastError, "redirect")
	require.Len(t, rcv.deliveries(), 1)
	require.Empty(t, elsewhere.deliveries(), "the redirect was followed")
	requireSteps(t, reg, map[string]float64{"failed": 1})
}

func TestCallbackOutsideAllowListRefused(t *testing.T) {
	t.Parallel()
	env := callbackEnv(t, newSecret(t), wahafake.Options{APIKey: "k"})
	ctx := context.Background()
	for _, u := range []string{"http://example.com/hook", "http://127.0.0.2:8080/x", "ftp://127.0.0.1/x", "http://user:pw@127.0.0.1/x", "http://localhost/x"} {
		_, err := env.Producer.Enqueue(ctx, tasks.LogoutRequest{Session: "cb-refused", CallbackURL: u})
		require.ErrorIs(t, err, tasks.ErrInvalidInput, u)
		_, err = env.Producer.EnqueueBatch(ctx, tasks.BatchRequest{Sessions: []string{"cb-refused"}, CallbackURL: u})
		require.ErrorIs(t, err, tasks.ErrInvalidInput, u)
	}
	keys, err := env.Redis.Keys(ctx, "*"+env.Namespace+"*").Result()
	require.NoError(t, err)
	require.Empty(t, keys, "a refused callback_url enqueued something")
}
