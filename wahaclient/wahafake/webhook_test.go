package wahafake_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/wahaclient/wahafake"
)

// hookSink is a small real webhook receiver: it records every POST and
// answers the statuses of fail first, then 200.
type hookSink struct {
	mu   sync.Mutex
	reqs []hookReq
	fail []int
	srv  *httptest.Server
}

type hookReq struct {
	header http.Header
	body   []byte
}

func newHookSink(t *testing.T, fail ...int) *hookSink {
	t.Helper()
	k := &hookSink{fail: fail}
	k.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		k.mu.Lock()
		k.reqs = append(k.reqs, hookReq{header: r.Header.Clone(), body: b})
		st := http.StatusOK
		if len(k.fail) > 0 {
			st, k.fail = k.fail[0], k.fail[1:]
		}
		k.mu.Unlock()
		w.WriteHeader(st)
	}))
	t.Cleanup(k.srv.Close)
	return k
}

func (k *hookSink) got() []hookReq {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]hookReq(nil), k.reqs...)
}

type event struct {
	ID        string `json:"id"`
	Timestamp int64  `json:"timestamp"`
	Event     string `json:"event"`
	Session   string `json:"session"`
	Payload   struct {
		Name     string `json:"name"`
		Status   string `json:"status"`
		Statuses []struct {
			Status    string `json:"status"`
			Timestamp int64  `json:"timestamp"`
		} `json:"statuses"`
	} `json:"payload"`
}

func logoutOf(t *testing.T, srv *wahafake.Server, session string) {
	t.Helper()
	resp, err := httpPost(srv.URL()+"/api/sessions/"+session+"/logout", "")
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, resp.StatusCode)
}

func TestWebhookCurrentLine(t *testing.T) {
	t.Parallel()
	sink := newHookSink(t)
	srv := wahafake.NewT(t, wahafake.Options{Sessions: 1, Webhook: wahafake.Webhook{URL: sink.srv.URL, HMACKey: "whsecret"}})
	logoutOf(t, srv, "default") // STOPPED: nothing, as on a real server
	logoutOf(t, srv, "session-0001")
	require.Eventually(t, func() bool { return srv.WebhookStats().Delivered == 3 }, 10*time.Second, 5*time.Millisecond)
	reqs := sink.got()
	require.Len(t, reqs, 3)
	ulid := regexp.MustCompile(`^[0-9a-hjkmnp-tv-z]{26}$`)
	var statuses []string
	ids := map[string]bool{}
	var last int64
	for _, r := range reqs {
		require.Equal(t, wahafake.Sign("whsecret", r.body), r.header.Get("X-Webhook-Hmac"))
		require.Equal(t, "sha512", r.header.Get("X-Webhook-Hmac-Algorithm"))
		require.Regexp(t, ulid, r.header.Get("X-Webhook-Request-Id"))
		ts, err := strconv.ParseInt(r.header.Get("X-Webhook-Timestamp"), 10, 64)
		require.NoError(t, err)
		require.InDelta(t, time.Now().UnixMilli(), ts, float64(time.Minute.Milliseconds()))
		var ev event
		require.NoError(t, json.Unmarshal(r.body, &ev))
		require.True(t, strings.HasPrefix(ev.ID, "evt_") && ulid.MatchString(ev.ID[4:]), ev.ID)
		require.False(t, ids[ev.ID], "ids are unique")
		ids[ev.ID] = true
		require.Equal(t, "session.status", ev.Event)
		require.Equal(t, "session-0001", ev.Session)
		require.Equal(t, "session-0001", ev.Payload.Name)
		require.Greater(t, ev.Timestamp, last, "in order")
		last = ev.Timestamp
		require.Equal(t, ev.Payload.Status, ev.Payload.Statuses[len(ev.Payload.Statuses)-1].Status)
		statuses = append(statuses, ev.Payload.Status)
		var keys map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(r.body, &keys))
		for _, k := range []string{"id", "timestamp", "event", "session", "metadata", "me", "payload", "engine", "environment"} {
			require.Contains(t, keys, k)
		}
	}
	require.Equal(t, []string{"STOPPED", "STARTING", "SCAN_QR_CODE"}, statuses)
	require.Equal(t, wahafake.WebhookStats{Events: 3, Posts: 3, Delivered: 3}, srv.WebhookStats())
}

func TestWebhookRetriesAndDuplicates(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		fail       []int
		attempts   int
		duplicates int
		posts      int
		delivered  int
		failed     int
	}{
		{name: "retried until 2xx", fail: []int{500, 503}, posts: 3, delivered: 1},
		{name: "gives up after its attempts", fail: []int{500, 500, 500, 500}, attempts: 3, posts: 3, failed: 1},
		{name: "duplicates", duplicates: 2, posts: 3, delivered: 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sink := newHookSink(t, tc.fail...)
			srv := wahafake.NewT(t, wahafake.Options{})
			srv.AddSession("a", wahafake.StatusWorking)
			srv.SetLogoutLatency(0)
			// deliver the STOPPED event only: the deprecated route deletes
			require.NoError(t, srv.SetWebhook(wahafake.Webhook{URL: sink.srv.URL, Attempts: tc.attempts, Backoff: time.Millisecond, Duplicates: tc.duplicates}))
			resp, err := http.Post(srv.URL()+"/api/sessions/logout", "application/json", strings.NewReader(`{"name":"a"}`))
			require.NoError(t, err)
			resp.Body.Close()
			require.Eventually(t, func() bool {
				st := srv.WebhookStats()
				return st.Delivered+st.Failed == 1+tc.duplicates
			}, 10*time.Second, 5*time.Millisecond)
			st := srv.WebhookStats()
			require.Equal(t, wahafake.WebhookStats{Events: 1, Posts: tc.posts, Delivered: tc.delivered, Failed: tc.failed}, st)
			reqs := sink.got()
			require.Len(t, reqs, tc.posts)
			for _, r := range reqs[1:] {
				require.Equal(t, string(reqs[0].body), string(r.body), "the same event each time")
			}
			require.Empty(t, reqs[0].header.Get("X-Webhook-Hmac"), "unsigned without a key")
		})
	}
}

func TestWebhookCoreVariant(t *testing.T) {
	t.Parallel()
	sink := newHookSink(t, 500)
	srv := wahafake.NewT(t, wahafake.Options{Core: true})
	srv.AddSession("default", wahafake.StatusWorking)
	// through the control API, as a shell script would
	resp, err := http.Post(srv.URL()+"/_fake/webhook", "application/json",
		strings.NewReader(`{"url":"`+sink.srv.URL+`","hmac_key":"ignored","core":true}`))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	logoutOf(t, srv, "default")
	require.Eventually(t, func() bool { st := srv.WebhookStats(); return st.Delivered+st.Failed == 3 }, 10*time.Second, 5*time.Millisecond)
	reqs := sink.got()
	require.Len(t, reqs, 3, "once each, even the one answered 500")
	require.Equal(t, "WAHA/2024.10.8", reqs[0].header.Get("User-Agent"))
	for _, h := range []string{"X-Webhook-Hmac", "X-Webhook-Request-Id", "X-Webhook-Timestamp"} {
		require.Empty(t, reqs[0].header.Get(h), h)
	}
	var keys map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(reqs[0].body, &keys))
	require.NotContains(t, keys, "id")
	require.NotContains(t, keys, "timestamp")
	require.JSONEq(t, `{"name":"default","status":"STOPPED"}`, string(keys["payload"]))

	resp, err = http.Get(srv.URL() + "/_fake/webhook")
	require.NoError(t, err)
	var st wahafake.WebhookStats
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&st))
	resp.Body.Close()
	require.Equal(t, wahafake.WebhookStats{Events: 3, Posts: 3, Delivered: 2, Failed: 1}, st)
}

func TestWebhookBadConfig(t *testing.T) {
	t.Parallel()
	srv := wahafake.NewT(t, wahafake.Options{})
	require.Error(t, srv.SetWebhook(wahafake.Webhook{URL: "ftp://x"}))
	require.Error(t, srv.SetWebhook(wahafake.Webhook{URL: "http://127.0.0.1:1", Attempts: -1}))
	resp, err := http.Post(srv.URL()+"/_fake/webhook", "application/json", strings.NewReader(`{"url":"nope"}`))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	_, err = wahafake.New(wahafake.Options{Webhook: wahafake.Webhook{URL: "x"}})
	require.Error(t, err)
}
