package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/base"
	"github.com/wahaq/wahaq/internal/store"
	"github.com/wahaq/wahaq/tasks"
	"github.com/wahaq/wahaq/wahaclient/wahafake"
)

// eventSecret is the webhook secret of the instance "default" in these
// tests; "eu" has none.
const eventSecret = "whk-5ecret-of-default"

func withEventSecret(c *Config) {
	c.EventSecrets = map[string]string{"default": eventSecret, "eu": ""}
}

// envelope is a session.status event as the current WAHA line writes it.
func envelope(id string, at time.Time, session, status string) []byte {
	b, _ := json.Marshal(map[string]any{"id": id, "timestamp": at.UnixMilli(), "event": "session.status", "session": session,
		"metadata": map[string]any{}, "me": nil, "engine": "NOWEB",
		"payload":     map[string]any{"name": session, "status": status, "statuses": []any{map[string]any{"status": status, "timestamp": at.UnixMilli()}}, "data": map[string]any{}},
		"environment": map[string]any{"version": "2026.7.1", "engine": "NOWEB", "tier": "PLUS", "browser": nil}})
	return b
}

func newEventID() string {
	b := make([]byte, 10)
	_, _ = rand.Read(b)
	return "evt_" + hex.EncodeToString(b)
}

// eventRequest is WAHA's POST of body, signed with key ("" unsigned), with
// no bearer token.
func eventRequest(instance string, body []byte, key string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/v1/waha/"+instance+"/events", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("X-Webhook-Request-Id", newEventID())
	r.Header.Set("X-Webhook-Timestamp", fmt.Sprint(time.Now().UnixMilli()))
	if key != "" {
		r.Header.Set("X-Webhook-Hmac", wahafake.Sign(key, body))
		r.Header.Set("X-Webhook-Hmac-Algorithm", "sha512")
	}
	return r
}

// signRequest signs a request's body for the OpenAPI tests: an event
// template gains a fresh id and timestamp first.
func signRequest(r *http.Request) *http.Request {
	body, _ := io.ReadAll(r.Body)
	var m map[string]any
	if json.Unmarshal(body, &m) == nil && m["event"] != nil {
		m["id"], m["timestamp"] = newEventID(), time.Now().UnixMilli()
		body, _ = json.Marshal(m)
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	r.Header.Set("X-Webhook-Hmac", wahafake.Sign(eventSecret, body))
	return r
}

// raw is a fixed body.
func raw(s string) func() []byte { return func() []byte { return []byte(s) } }

// runningLogout makes a logout of session that is running on "default".
func (e *env) runningLogout(session string) (string, base.Payload) {
	e.t.Helper()
	ctx := context.Background()
	task, err := e.prod.Enqueue(ctx, tasks.LogoutRequest{Session: session})
	require.NoError(e.t, err)
	p := base.Payload{Instance: "default", Session: session, MaxRetries: 10}
	ok, err := e.store().Start(ctx, task.ID, p, 1, 0, time.Minute)
	require.NoError(e.t, err)
	require.True(e.t, ok)
	return task.ID, p
}

// completedLogout makes a completed logout of session on "default" that
// awaits WAHA's events; WAHA answered STARTING.
func (e *env) completedLogout(session string) string {
	e.t.Helper()
	id, p := e.runningLogout(session)
	res := fmt.Sprintf(`{"status":"success","message":"Session logged out successfully","http_status":201,"session_after":{"name":%q,"status":"STARTING","me":null}}`, session)
	require.NoError(e.t, e.store().Finish(context.Background(), id, p, store.Finish{State: store.StateCompleted,
		Outcome: string(tasks.OutcomeLoggedOut), Result: []byte(res), ResultTTL: time.Hour, AwaitEvents: true}))
	return id
}

// keys is every key of the test's namespace with its type and value, to
// show that a refused event changed nothing.
func (e *env) keys() map[string]string {
	e.t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	iter := e.rdb.Scan(ctx, 0, "*"+e.ns+"*", 1000).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		out[k] = e.rdb.Dump(ctx, k).Val()
	}
	require.NoError(e.t, iter.Err())
	return out
}

func TestEventRecordedOnceHoweverOftenDelivered(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withEventSecret)
	id := e.completedLogout("sales-bot")
	body := envelope(newEventID(), time.Now(), "sales-bot", "SCAN_QR_CODE")

	// the same event, ten times at once and five times after
	var wg sync.WaitGroup
	answers := make([]eventAnswer, 10)
	for i := range answers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := e.serve(eventRequest("default", body, eventSecret))
			require.Equal(t, http.StatusOK, w.Code, w.Body.String())
			answers[i] = decodeJSON[eventAnswer](t, w)
		}()
	}
	wg.Wait()
	first := 0
	for _, a := range answers {
		if !a.Duplicate {
			first++
			require.Equal(t, eventAnswer{Recorded: true, Confirmed: true, TaskID: id}, a)
		} else {
			require.False(t, a.Confirmed)
		}
	}
	require.Equal(t, 1, first, "recorded once")
	before := e.keys()
	for range 5 {
		w := e.serve(eventRequest("default", body, eventSecret))
		require.Equal(t, http.StatusOK, w.Code)
		require.True(t, decodeJSON[eventAnswer](t, w).Duplicate)
	}
	require.Equal(t, before, e.keys(), "a duplicate writes nothing")

	task, err := e.insp.Task(context.Background(), id)
	require.NoError(t, err)
	require.NotNil(t, task.Confirmed)
	require.Equal(t, "SCAN_QR_CODE", task.Confirmed.Status)
	counts, err := e.insp.Confirmations(context.Background(), "default")
	require.NoError(t, err)
	require.Equal(t, tasks.ConfirmCounts{Confirmed: 1}, counts["default"])

	// the task model over HTTP: confirmed, and session_after follows the event
	w := e.do(http.MethodGet, "/v1/tasks/"+id, "")
	require.Equal(t, http.StatusOK, w.Code)
	var got struct {
		Confirmed struct{ Status string } `json:"confirmed"`
		Result    struct {
			SessionAfter struct{ Name, Status string } `json:"session_after"`
		} `json:"result"`
	}
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &got))
	require.Equal(t, "SCAN_QR_CODE", got.Confirmed.Status)
	require.Equal(t, "SCAN_QR_CODE", got.Result.SessionAfter.Status, "the answer said STARTING; the event came later")
	require.Equal(t, "sales-bot", got.Result.SessionAfter.Name)
}

func TestEventWhileTheLogoutRuns(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withEventSecret)
	id, _ := e.runningLogout("bot")
	w := e.serve(eventRequest("default", envelope(newEventID(), time.Now(), "bot", "STOPPED"), eventSecret))
	require.Equal(t, http.StatusOK, w.Code)
	require.Equal(t, eventAnswer{Recorded: true, Confirmed: true, TaskID: id}, decodeJSON[eventAnswer](t, w))
	// an event of a session with no logout is answered, recorded nowhere
	before := e.keys()
	eid := newEventID()
	w = e.serve(eventRequest("default", envelope(eid, time.Now(), "other", "STOPPED"), eventSecret))
	require.Equal(t, http.StatusOK, w.Code)
	require.Equal(t, eventAnswer{Ignored: "no_logout"}, decodeJSON[eventAnswer](t, w))
	after := e.keys()
	delete(after, e.store().Keys("default").Event(eid)) // only its id is remembered
	require.Equal(t, before, after)
}

func TestEventRefused(t *testing.T) {
	t.Parallel()
	// bodies are made when the subtest runs: parallel subtests may start
	// long after the table is built
	good := func() []byte { return envelope(newEventID(), time.Now(), "sales-bot", "SCAN_QR_CODE") }
	at := func(d time.Duration, id, status string) func() []byte {
		return func() []byte { return envelope(id, time.Now().Add(d), "sales-bot", status) }
	}
	tests := []struct {
		name     string
		instance string
		body     func() []byte
		prepare  func(r *http.Request)
		status   int
	}{
		{name: "missing signature", instance: "default", body: good, prepare: func(r *http.Request) { r.Header.Del("X-Webhook-Hmac") }, status: 401},
		{name: "wrong signature", instance: "default", body: good, prepare: func(r *http.Request) {
			r.Header.Set("X-Webhook-Hmac", wahafake.Sign("another-secret", []byte("x")))
		}, status: 401},
		{name: "signature not hex", instance: "default", body: good, prepare: func(r *http.Request) { r.Header.Set("X-Webhook-Hmac", "zz") }, status: 401},
		{name: "signature of another body", instance: "default", body: good, prepare: func(r *http.Request) {
			r.Header.Set("X-Webhook-Hmac", wahafake.Sign(eventSecret, good()))
		}, status: 401},
		{name: "another algorithm", instance: "default", body: good, prepare: func(r *http.Request) { r.Header.Set("X-Webhook-Hmac-Algorithm", "sha256") }, status: 401},
		{name: "unknown instance", instance: "nosuch", body: good, status: 401},
		{name: "instance without a secret", instance: "eu", body: good, status: 401},
		{name: "WAHA 2024.10 Core: unsigned, no id, no timestamp", instance: "default",
			body:    raw(`{"event":"session.status","session":"sales-bot","me":null,"payload":{"name":"sales-bot","status":"SCAN_QR_CODE"},"engine":"NOWEB"}`),
			prepare: func(r *http.Request) { r.Header.Del("X-Webhook-Hmac") }, status: 401},
		{name: "signed, no timestamp", instance: "default",
			body: raw(`{"id":"evt_1","event":"session.status","session":"sales-bot","payload":{"name":"sales-bot","status":"SCAN_QR_CODE"}}`), status: 400},
		{name: "stale", instance: "default", body: at(-MaxEventAge-time.Minute, newEventID(), "SCAN_QR_CODE"), status: 400},
		{name: "from the future", instance: "default", body: at(MaxEventAge+time.Minute, newEventID(), "SCAN_QR_CODE"), status: 400},
		{name: "no id", instance: "default", body: at(0, "", "SCAN_QR_CODE"), status: 400},
		{name: "bad status", instance: "default", body: at(0, newEventID(), "SCAN:QR"), status: 400},
		{name: "bad session name", instance: "default", body: func() []byte { return envelope(newEventID(), time.Now(), "../etc", "SCAN_QR_CODE") }, status: 400},
		{name: "not JSON", instance: "default", body: raw(`nope`), status: 400},
		{name: "too big", instance: "default", body: raw(strings.Repeat(" ", MaxEventBytes+1)), status: 413},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, withEventSecret)
			id := e.completedLogout("sales-bot")
			before := e.keys()
			r := eventRequest(tc.instance, tc.body(), eventSecret)
			if tc.prepare != nil {
				tc.prepare(r)
			}
			w := e.serve(r)
			require.Equal(t, tc.status, w.Code, w.Body.String())
			var p Problem
			require.NoError(t, json.Unmarshal(w.Body.Bytes(), &p))
			require.NotEmpty(t, p.Detail)
			if tc.status == 401 {
				require.Equal(t, eventRefused, p.Detail, "the same for every refusal: the route tells nothing")
			}
			require.Equal(t, before, e.keys(), "recorded nowhere")
			task, err := e.insp.Task(context.Background(), id)
			require.NoError(t, err)
			require.Nil(t, task.Confirmed)
			require.NotContains(t, e.logs.String(), eventSecret)
		})
	}
}

func TestEventNotSessionStatusIgnored(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withEventSecret)
	e.completedLogout("a")
	before := e.keys()
	body := []byte(fmt.Sprintf(`{"id":%q,"timestamp":%d,"event":"message","session":"a","payload":{"body":"hi"}}`, newEventID(), time.Now().UnixMilli()))
	w := e.serve(eventRequest("default", body, eventSecret))
	require.Equal(t, http.StatusOK, w.Code)
	require.Equal(t, eventAnswer{Ignored: "event"}, decodeJSON[eventAnswer](t, w))
	require.Equal(t, before, e.keys())
}

func TestEventRateLimit(t *testing.T) {
	t.Parallel()
	var results sync.Map
	e := newEnv(t, withEventSecret, func(c *Config) {
		c.EventRate = 1
		c.OnEvent = func(in, res string) {
			n, _ := results.LoadOrStore(in+"/"+res, new(atomic.Int64))
			n.(*atomic.Int64).Add(1)
		}
	})
	w := e.serve(eventRequest("default", envelope(newEventID(), time.Now(), "a", "STOPPED"), eventSecret))
	require.Equal(t, http.StatusOK, w.Code)
	w = e.serve(eventRequest("default", envelope(newEventID(), time.Now(), "a", "STOPPED"), eventSecret))
	require.Equal(t, http.StatusTooManyRequests, w.Code)
	require.Equal(t, "1", w.Header().Get("Retry-After"))
	w = e.serve(eventRequest("nosuch", envelope(newEventID(), time.Now(), "a", "STOPPED"), eventSecret))
	require.Equal(t, http.StatusUnauthorized, w.Code)
	count := func(k string) int64 {
		n, ok := results.Load(k)
		if !ok {
			return 0
		}
		return n.(*atomic.Int64).Load()
	}
	require.Equal(t, int64(1), count("default/unmatched"))
	require.Equal(t, int64(1), count("default/limited"))
	require.Equal(t, int64(1), count("/refused"), "an unknown instance is not a label")
}

// TestEventFloodLeavesServeResponsive sends 1,000 signed events a second
// for 10 s over real HTTP (paced, bounded loops) while a prober asks
// /healthz: every event is answered (200, or 429 past the rate), and every
// probe is answered 200. Structural, not a timing target: the probes'
// latencies are logged for the report.
//
// Not parallel: it runs before the package's parallel tests, alone, so its
// load disturbs no other test and no other test its figures.
func TestEventFloodLeavesServeResponsive(t *testing.T) {
	if testing.Short() {
		t.Skip("10 s of load")
	}
	e := newEnv(t, withEventSecret)
	e.completedLogout("flood-0")
	srv := httptest.NewServer(e.h)
	defer srv.Close()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

	const senders, perSender, seconds = 20, 50, 10 // 20 x 50/s = 1,000/s
	var ok, limited, other atomic.Int64
	stop := make(chan struct{})
	var probes []time.Duration
	var probeErr error
	probed := make(chan struct{})
	go func() {
		defer close(probed)
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			start := time.Now()
			resp, err := client.Get(srv.URL + "/healthz")
			if err == nil && resp.StatusCode != http.StatusOK {
				err = fmt.Errorf("healthz answered %d", resp.StatusCode)
			}
			if resp != nil {
				resp.Body.Close()
			}
			if err != nil {
				probeErr = err
				return
			}
			probes = append(probes, time.Since(start))
		}
	}()
	var wg sync.WaitGroup
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(time.Second / perSender)
			defer tick.Stop()
			for i := range perSender * seconds {
				<-tick.C
				body := envelope(newEventID(), time.Now(), fmt.Sprintf("flood-%d", (s*7+i)%50), "SCAN_QR_CODE")
				req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/waha/default/events", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("X-Webhook-Hmac", wahafake.Sign(eventSecret, body))
				resp, err := client.Do(req)
				if err != nil {
					other.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				switch resp.StatusCode {
				case http.StatusOK:
					ok.Add(1)
				case http.StatusTooManyRequests:
					limited.Add(1)
				default:
					other.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-probed
	require.NoError(t, probeErr)
	require.Zero(t, other.Load(), "every event answered 200 or 429")
	require.Equal(t, int64(senders*perSender*seconds), ok.Load()+limited.Load())
	require.Positive(t, ok.Load())
	require.NotEmpty(t, probes)
	var worst time.Duration
	for _, p := range probes {
		worst = max(worst, p)
	}
	t.Logf("events: %d accepted, %d limited (429); /healthz: %d probes, slowest %s", ok.Load(), limited.Load(), len(probes), worst)
}
