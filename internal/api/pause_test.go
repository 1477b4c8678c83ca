package api

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/access"
	"github.com/wahaq/wahaq/internal/redistest"
	"github.com/wahaq/wahaq/tasks"
	"github.com/wahaq/wahaq/wahaclient"
	"github.com/wahaq/wahaq/wahaclient/wahafake"
)

// TestPauseResumeRoutes: pause and resume answer the batch's pause state;
// the batch reads paused with its time and actor; a done batch cannot be
// paused (409); a second pause or resume changes nothing.
func TestPauseResumeRoutes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	doc := loadDoc(t)
	ops := doc.operations()
	b, err := e.prod.EnqueueBatch(t.Context(), tasks.BatchRequest{Sessions: []string{"p1", "p2"}})
	require.NoError(t, err)

	steps := []struct {
		op, path     string
		code         int
		paused, chgd bool
	}{
		{op: "POST /v1/batches/{id}/pause", path: "/v1/batches/" + b.BatchID + "/pause", code: http.StatusOK, paused: true, chgd: true},
		{op: "POST /v1/batches/{id}/pause", path: "/v1/batches/" + b.BatchID + "/pause", code: http.StatusOK, paused: true},
		{op: "POST /v1/batches/{id}/resume", path: "/v1/batches/" + b.BatchID + "/resume", code: http.StatusOK, chgd: true},
		{op: "POST /v1/batches/{id}/resume", path: "/v1/batches/" + b.BatchID + "/resume", code: http.StatusOK},
	}
	for _, st := range steps {
		w := e.do(http.MethodPost, st.path, "")
		require.Equal(t, st.code, w.Code, w.Body.String())
		checkAnswer(t, doc, ops[st.op], w)
		var got tasks.BatchPause
		require.NoError(t, json.Unmarshal(w.Body.Bytes(), &got))
		require.Equal(t, st.paused, got.Paused)
		require.Equal(t, st.chgd, got.Changed)
		require.Equal(t, st.paused, got.Batch.Paused)
		if st.paused {
			require.Equal(t, "env-"+access.Hash(tokenA)[:8], got.Batch.PausedBy, "the token's name")
			require.NotNil(t, got.Batch.PausedAt)
		}
	}
	w := e.do(http.MethodPost, "/v1/batches/"+b.BatchID+"/pause", "")
	require.Equal(t, http.StatusOK, w.Code)
	w = e.do(http.MethodGet, "/v1/batches/"+b.BatchID, "")
	require.Equal(t, http.StatusOK, w.Code)
	require.Contains(t, w.Body.String(), `"paused":true`)

	_, err = e.prod.CancelBatch(t.Context(), b.BatchID)
	require.NoError(t, err)
	_, err = e.prod.ResumeBatch(t.Context(), b.BatchID)
	require.NoError(t, err)
	w = e.do(http.MethodPost, "/v1/batches/"+b.BatchID+"/pause", "")
	require.Equal(t, http.StatusConflict, w.Code)
	checkAnswer(t, doc, ops["POST /v1/batches/{id}/pause"], w)
	require.Contains(t, w.Body.String(), "is done")
}

// TestPreviewRoute: "dry_run": true answers the preview (200, the Preview
// schema), enqueues nothing and calls no logout; without a WAHA client for
// the instance it answers 501, and WAHA's refusal 502.
func TestPreviewRoute(t *testing.T) {
	t.Parallel()
	fake := wahafake.NewT(t, wahafake.Options{APIKey: "preview-key", Sessions: 3})
	good, err := wahaclient.New(wahaclient.Config{BaseURL: fake.URL(), APIKey: "preview-key", Redact: []string{"preview-key"}})
	require.NoError(t, err)
	bad, err := wahaclient.New(wahaclient.Config{BaseURL: fake.URL(), APIKey: "wrong-key", Redact: []string{"wrong-key"}})
	require.NoError(t, err)
	rdb, ns := redistest.Client(t), redistest.Namespace(t)
	prod, err := tasks.NewProducer(tasks.Config{Redis: rdb, Namespace: ns, Instances: []string{"default", "eu", "off"},
		WAHA: map[string]tasks.SessionLister{"default": good, "eu": bad}})
	require.NoError(t, err)
	e := newEnvOn(t, rdb, ns, func(c *Config) { c.Producer = prod })
	doc := loadDoc(t)
	op := doc.operations()["POST /v1/batches"]

	tests := []struct {
		name, body, contains string
		code                 int
	}{
		{name: "all", body: `{"all":true,"dry_run":true}`, code: http.StatusOK, contains: `"would_enqueue":4`},
		{name: "all WORKING", body: `{"all":true,"status":["WORKING"],"dry_run":true}`, code: http.StatusOK, contains: `"status_filter":1`},
		{name: "named", body: `{"sessions":["session-0001","nope"],"dry_run":true}`, code: http.StatusOK, contains: `"not_on_server_names":["nope"]`},
		{name: "bad status", body: `{"all":true,"status":["NOT A STATUS"],"dry_run":true}`, code: http.StatusBadRequest},
		{name: "WAHA refuses", body: `{"instance":"eu","all":true,"dry_run":true}`, code: http.StatusBadGateway, contains: "401"},
		{name: "no WAHA client", body: `{"instance":"off","all":true,"dry_run":true}`, code: http.StatusNotImplemented},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := e.do(http.MethodPost, "/v1/batches", tc.body)
			require.Equal(t, tc.code, w.Code, w.Body.String())
			checkAnswer(t, doc, op, w)
			require.Contains(t, w.Body.String(), tc.contains)
			require.NotContains(t, w.Body.String(), "wrong-key")
		})
	}
	require.Zero(t, fake.Stats().TotalLogoutCalls)
	bs, err := e.insp.RecentBatches(t.Context(), 0)
	require.NoError(t, err)
	require.Empty(t, bs, "a preview writes no batch")
}

// TestPreviewRoles: a preview needs the role its batch would need: an
// enqueue token previews named sessions but not "all" (403 naming
// operate), an operate token previews both, a read token neither, and a
// token scoped to another instance is refused.
func TestPreviewRoles(t *testing.T) {
	t.Parallel()
	fake := wahafake.NewT(t, wahafake.Options{APIKey: "preview-key", Sessions: 2})
	lister, err := wahaclient.New(wahaclient.Config{BaseURL: fake.URL(), APIKey: "preview-key"})
	require.NoError(t, err)
	rdb, ns := redistest.Client(t), redistest.Namespace(t)
	prod, err := tasks.NewProducer(tasks.Config{Redis: rdb, Namespace: ns, Instances: []string{"default", "eu"},
		WAHA: map[string]tasks.SessionLister{"default": lister}})
	require.NoError(t, err)
	e := newEnvOn(t, rdb, ns, func(c *Config) { c.Producer = prod; c.NamedTokens = roleTokens() })
	named, all := `{"sessions":["session-0001"],"dry_run":true}`, `{"all":true,"dry_run":true}`
	tests := []struct {
		role  access.Role
		scope string
		body  string
		code  int
	}{
		{role: access.RoleRead, body: named, code: http.StatusForbidden},
		{role: access.RoleEnqueue, body: named, code: http.StatusOK},
		{role: access.RoleEnqueue, body: all, code: http.StatusForbidden},
		{role: access.RoleOperate, body: all, code: http.StatusOK},
		{role: access.RoleOperate, scope: "eu", body: all, code: http.StatusForbidden},
	}
	for _, tc := range tests {
		w := e.serve(e.asToken(roleToken(tc.role, tc.scope), http.MethodPost, "/v1/batches", tc.body))
		require.Equal(t, tc.code, w.Code, "%s %s %s: %s", tc.role, tc.scope, tc.body, w.Body.String())
		if tc.code == http.StatusForbidden && tc.role == access.RoleEnqueue {
			require.Contains(t, w.Body.String(), "operate")
		}
	}
	require.Zero(t, fake.Stats().TotalLogoutCalls)
}
