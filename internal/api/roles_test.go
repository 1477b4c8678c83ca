package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/access"
	"github.com/wahaq/wahaq/internal/audit"
	"github.com/wahaq/wahaq/tasks"
)

// roleTokens are the tokens file of the role tests: a token of every role,
// of every instance and limited to "eu".
func roleTokens() []access.Token {
	var out []access.Token
	for _, r := range access.Roles {
		for _, scope := range []string{"", "eu"} {
			line := fmt.Sprintf("tokens:\n  - {name: %s, sha256: %s, role: %s", roleTokenName(r, scope), access.Hash(roleToken(r, scope)), r)
			if scope != "" {
				line += ", instances: [" + scope + "]"
			}
			ts, err := access.ParseFile([]byte(line + "}\n"))
			if err != nil {
				panic(err)
			}
			out = append(out, ts...)
		}
	}
	return out
}

func roleTokenName(r access.Role, scope string) string {
	if scope == "" {
		return r.String() + "-all"
	}
	return r.String() + "-" + scope
}

// roleToken is the secret of a role test's token: distinctive, so a leak
// into a log or the audit log is easy to find.
func roleToken(r access.Role, scope string) string {
	return "secret-" + roleTokenName(r, scope) + "-7c1d9e"
}

// asToken is a request of env with the given token.
func (e *env) asToken(token, method, target, body string) *http.Request {
	r := e.req(method, target, body)
	r.Header.Set("Authorization", "Bearer "+token)
	return r
}

// roleCase is one call of a route: setup prepares what it touches on an
// instance and returns the target and body; done reports whether the call
// took effect (nil for reads).
type roleCase struct {
	name    string
	route   string // "METHOD pattern" of the route table
	need    access.Role
	setup   func(e *env, instance string) (target, body string, done func() bool)
	scopeOK bool // reads: the instance scope does not apply
}

var roleSeq atomic.Int64

func uniq(prefix string) string { return fmt.Sprintf("%s-%d", prefix, roleSeq.Add(1)) }

// roleCases name the role each route needs independently of the route
// table, so a wrong row fails the test.
func roleCases() []roleCase {
	ctx := context.Background()
	task := func(e *env, in string) *tasks.Task {
		t, err := e.prod.Enqueue(ctx, tasks.LogoutRequest{Instance: in, Session: uniq("s"), When: tasks.When{In: time.Hour}})
		require.NoError(e.t, err)
		return t
	}
	batch := func(e *env, in string) string {
		b, err := e.prod.EnqueueBatch(ctx, tasks.BatchRequest{Instance: in, Sessions: []string{uniq("b"), uniq("b")}, When: tasks.When{In: time.Hour}})
		require.NoError(e.t, err)
		return b.BatchID
	}
	dead := func(e *env, in string) string {
		t := task(e, in)
		e.kill(t.ID, in, t.Session, tasks.OutcomeAuthFailed)
		return t.ID
	}
	state := func(e *env, id string) tasks.State {
		t, err := e.insp.Task(ctx, id)
		if err != nil {
			return "gone"
		}
		return t.State
	}
	hasTask := func(e *env, in, session string) func() bool {
		return func() bool {
			for _, id := range e.scan("wahaq:{" + e.ns + ":" + in + "}:d:" + session) {
				_ = id
				return true
			}
			return false
		}
	}
	read := func(path string) func(e *env, in string) (string, string, func() bool) {
		return func(e *env, in string) (string, string, func() bool) {
			switch {
			case strings.Contains(path, "/v1/tasks/{id}"):
				path = strings.ReplaceAll(path, "{id}", task(e, in).ID)
			case strings.Contains(path, "{id}"):
				path = strings.ReplaceAll(path, "{id}", batch(e, in))
			}
			return path, "", nil
		}
	}
	subscribe := func(e *env, in string) string {
		sub, err := e.prod.Subscribe(ctx, tasks.SubscriptionRequest{URL: "http://127.0.0.1:9/" + uniq("sub"), Instances: []string{in}})
		require.NoError(e.t, err)
		return sub.ID
	}
	subscribed := func(e *env, url string) bool {
		subs, err := e.insp.Subscriptions(ctx)
		require.NoError(e.t, err)
		for _, sub := range subs {
			if sub.URL == url {
				return true
			}
		}
		return false
	}
	return []roleCase{
		{name: "subscribe", route: "POST /v1/subscriptions", need: access.RoleOperate,
			setup: func(e *env, in string) (string, string, func() bool) {
				u := "http://127.0.0.1:9/" + uniq("sub")
				return "/v1/subscriptions", fmt.Sprintf(`{"url":%q,"instances":[%q]}`, u, in), func() bool { return subscribed(e, u) }
			}},
		{name: "list subscriptions", route: "GET /v1/subscriptions", need: access.RoleRead, scopeOK: true, setup: read("/v1/subscriptions")},
		{name: "get subscription", route: "GET /v1/subscriptions/{id}", need: access.RoleRead, scopeOK: true,
			setup: func(e *env, in string) (string, string, func() bool) {
				return "/v1/subscriptions/" + subscribe(e, in), "", nil
			}},
		{name: "unsubscribe", route: "DELETE /v1/subscriptions/{id}", need: access.RoleOperate,
			setup: func(e *env, in string) (string, string, func() bool) {
				id := subscribe(e, in)
				return "/v1/subscriptions/" + id, "", func() bool {
					_, err := e.insp.Subscription(ctx, id)
					return err != nil
				}
			}},
		{name: "enqueue a logout", route: "POST /v1/logouts", need: access.RoleEnqueue,
			setup: func(e *env, in string) (string, string, func() bool) {
				s := uniq("one")
				return "/v1/logouts", fmt.Sprintf(`{"instance":%q,"session":%q}`, in, s), hasTask(e, in, s)
			}},
		{name: "batch of named sessions", route: "POST /v1/batches", need: access.RoleEnqueue,
			setup: func(e *env, in string) (string, string, func() bool) {
				s := uniq("named")
				return "/v1/batches", fmt.Sprintf(`{"instance":%q,"sessions":[%q]}`, in, s), hasTask(e, in, s)
			}},
		{name: "all batch", route: "POST /v1/batches", need: access.RoleOperate,
			setup: func(e *env, in string) (string, string, func() bool) {
				before := len(e.scan("wahaq:{" + e.ns + ":" + in + "}:b:*"))
				return "/v1/batches", fmt.Sprintf(`{"instance":%q,"all":true}`, in), func() bool {
					return len(e.scan("wahaq:{"+e.ns+":"+in+"}:b:*")) > before
				}
			}},
		{name: "list batches", route: "GET /v1/batches", need: access.RoleRead, scopeOK: true, setup: read("/v1/batches")},
		{name: "get batch", route: "GET /v1/batches/{id}", need: access.RoleRead, scopeOK: true, setup: read("/v1/batches/{id}")},
		{name: "batch tasks", route: "GET /v1/batches/{id}/tasks", need: access.RoleRead, scopeOK: true, setup: read("/v1/batches/{id}/tasks")},
		{name: "cancel batch", route: "DELETE /v1/batches/{id}", need: access.RoleOperate,
			setup: func(e *env, in string) (string, string, func() bool) {
				id := batch(e, in)
				return "/v1/batches/" + id, "", func() bool {
					b, err := e.insp.Batch(ctx, id)
					require.NoError(e.t, err)
					return b.Counts[tasks.StateCanceled] > 0
				}
			}},
		{name: "pause batch", route: "POST /v1/batches/{id}/pause", need: access.RoleOperate,
			setup: func(e *env, in string) (string, string, func() bool) {
				id := batch(e, in)
				return "/v1/batches/" + id + "/pause", "", func() bool {
					b, err := e.insp.Batch(ctx, id)
					require.NoError(e.t, err)
					return b.Paused
				}
			}},
		{name: "resume batch", route: "POST /v1/batches/{id}/resume", need: access.RoleOperate,
			setup: func(e *env, in string) (string, string, func() bool) {
				id := batch(e, in)
				_, err := e.prod.PauseBatch(ctx, id)
				require.NoError(e.t, err)
				return "/v1/batches/" + id + "/resume", "", func() bool {
					b, err := e.insp.Batch(ctx, id)
					require.NoError(e.t, err)
					return !b.Paused
				}
			}},
		{name: "get task", route: "GET /v1/tasks/{id}", need: access.RoleRead, scopeOK: true, setup: read("/v1/tasks/{id}")},
		{name: "cancel task", route: "DELETE /v1/tasks/{id}", need: access.RoleOperate,
			setup: func(e *env, in string) (string, string, func() bool) {
				id := task(e, in).ID
				return "/v1/tasks/" + id, "", func() bool { return state(e, id) == tasks.StateCanceled }
			}},
		{name: "dead letters", route: "GET /v1/dlq", need: access.RoleRead, scopeOK: true, setup: read("/v1/dlq")},
		{name: "requeue by id", route: "POST /v1/dlq/requeue", need: access.RoleOperate,
			setup: func(e *env, in string) (string, string, func() bool) {
				id := dead(e, in)
				return "/v1/dlq/requeue", fmt.Sprintf(`{"ids":[%q]}`, id), func() bool { return state(e, id) != tasks.StateDead }
			}},
		{name: "requeue all of an instance", route: "POST /v1/dlq/requeue", need: access.RoleOperate,
			setup: func(e *env, in string) (string, string, func() bool) {
				id := dead(e, in)
				return "/v1/dlq/requeue", fmt.Sprintf(`{"all":true,"instance":%q}`, in), func() bool { return state(e, id) != tasks.StateDead }
			}},
		{name: "purge by id", route: "DELETE /v1/dlq", need: access.RoleAdmin,
			setup: func(e *env, in string) (string, string, func() bool) {
				id := dead(e, in)
				return "/v1/dlq", fmt.Sprintf(`{"ids":[%q]}`, id), func() bool { return state(e, id) == "gone" }
			}},
		{name: "purge all of an instance", route: "DELETE /v1/dlq", need: access.RoleAdmin,
			setup: func(e *env, in string) (string, string, func() bool) {
				id := dead(e, in)
				return "/v1/dlq", fmt.Sprintf(`{"all":true,"instance":%q}`, in), func() bool { return state(e, id) == "gone" }
			}},
		{name: "audit log", route: "GET /v1/audit", need: access.RoleAdmin, scopeOK: true, setup: read("/v1/audit")},
		{name: "preflight of a server", route: "GET /v1/instances/{name}/check", need: access.RoleRead, scopeOK: true,
			setup: func(_ *env, in string) (string, string, func() bool) {
				return "/v1/instances/" + in + "/check", "", nil
			}},
	}
}

// TestRolesTable calls every route with a token of every role, of every
// instance and limited to "eu", on an instance in and out of its scope: a
// token below the route's role or out of its scope gets 403 with a detail
// naming the role or the instances, and nothing is done; the others get
// what the route does.
func TestRolesTable(t *testing.T) {
	t.Parallel()
	// Every route of the table is called.
	covered := map[string]bool{}
	for _, c := range roleCases() {
		covered[c.route] = true
	}
	for _, rt := range routes {
		if !rt.open {
			require.True(t, covered[rt.method+" "+rt.pattern], "%s %s has no case in the role table test", rt.method, rt.pattern)
		}
	}
	for _, role := range access.Roles {
		for _, scope := range []string{"", "eu"} {
			t.Run(roleTokenName(role, scope), func(t *testing.T) {
				t.Parallel()
				e := newEnv(t, func(c *Config) { c.NamedTokens = roleTokens() })
				tok := roleToken(role, scope)
				for _, c := range roleCases() {
					for _, in := range []string{"eu", "default"} {
						target, body, done := c.setup(e, in)
						method, _, _ := strings.Cut(c.route, " ")
						w := e.serve(e.asToken(tok, method, target, body))
						inScope := c.scopeOK || scope == "" || in == scope
						what := fmt.Sprintf("%s as %s on %s: %d %s", c.name, roleTokenName(role, scope), in, w.Code, w.Body.String())
						switch {
						case !role.Allows(c.need):
							p := requireProblem(t, w, http.StatusForbidden)
							require.Contains(t, p.Detail, "needs role", what)
							require.Contains(t, p.Detail, "role "+c.need.String(), what)
							require.Contains(t, p.Detail, roleTokenName(role, scope), what)
						case !inScope:
							p := requireProblem(t, w, http.StatusForbidden)
							require.Contains(t, p.Detail, "may touch only the instances eu", what)
						default:
							require.Less(t, w.Code, 300, what)
						}
						if done != nil {
							require.Equal(t, role.Allows(c.need) && inScope, done(), "took effect: %s", what)
						}
						require.NotContains(t, w.Body.String(), tok)
					}
				}
				require.NotContains(t, e.logs.String(), tok, "a token reached the log")
				require.Contains(t, e.logs.String(), `"token":"`+roleTokenName(role, scope)+`"`, "the log names the token")
			})
		}
	}
}

// TestScopedAllNeedsInstance: a scoped token may not requeue or purge
// "all" without naming an instance of its scope.
func TestScopedAllNeedsInstance(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.NamedTokens = roleTokens() })
	for _, method := range []string{"POST /v1/dlq/requeue", "DELETE /v1/dlq"} {
		m, path, _ := strings.Cut(method, " ")
		p := requireProblem(t, e.serve(e.asToken(roleToken(access.RoleAdmin, "eu"), m, path, `{"all":true}`)), http.StatusForbidden)
		require.Contains(t, p.Detail, `name one with "instance"`)
	}
	// An empty instance is the default one, out of this token's scope.
	p := requireProblem(t, e.serve(e.asToken(roleToken(access.RoleEnqueue, "eu"), "POST", "/v1/logouts", `{"session":"x"}`)), http.StatusForbidden)
	require.Contains(t, p.Detail, `not "default"`)
	e.requireNothingEnqueued()
}

// auditEntries reads the whole audit log of e, newest first.
func (e *env) auditEntries() []audit.Entry {
	e.t.Helper()
	w := e.do("GET", "/v1/audit?limit=1000", "")
	require.Equal(e.t, http.StatusOK, w.Code, w.Body.String())
	var p audit.Page
	require.NoError(e.t, json.Unmarshal(w.Body.Bytes(), &p))
	return p.Entries
}

// TestAuditEntries: a purge, a batch cancel and a refused call each leave
// one entry with the right actor, action, target, outcome and counts; reads
// leave none; no token value ever appears in the audit log.
func TestAuditEntries(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.NamedTokens = roleTokens() })
	ctx := context.Background()
	op := roleToken(access.RoleOperate, "")
	b, err := e.prod.EnqueueBatch(ctx, tasks.BatchRequest{Sessions: []string{"a1", "a2"}, When: tasks.When{In: time.Hour}})
	require.NoError(t, err)
	d, err := e.prod.Enqueue(ctx, tasks.LogoutRequest{Session: "dead-one"})
	require.NoError(t, err)
	e.kill(d.ID, "default", "dead-one", tasks.OutcomeAuthFailed)

	r := e.asToken(op, "DELETE", "/v1/batches/"+b.BatchID, "")
	r.Header.Set("X-Request-Id", "req-cancel-1")
	r.RemoteAddr = "192.0.2.7:4242"
	w := e.serve(r)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	require.Equal(t, "req-cancel-1", w.Header().Get("X-Request-Id"))
	// The operator may not purge: refused, recorded, nothing done.
	requireProblem(t, e.serve(e.asToken(op, "DELETE", "/v1/dlq", fmt.Sprintf(`{"ids":[%q]}`, d.ID))), http.StatusForbidden)
	// A read is not recorded.
	require.Equal(t, http.StatusOK, e.serve(e.asToken(op, "GET", "/v1/dlq", "")).Code)
	// The admin purges (tokenA: an admin of WAHAQ_API_TOKENS).
	w = e.do("DELETE", "/v1/dlq", fmt.Sprintf(`{"ids":[%q]}`, d.ID))
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())

	got := e.auditEntries()
	require.Len(t, got, 3, "one entry per state-changing call, none for reads: %+v", got)
	purge, refused, cancel := got[0], got[1], got[2]

	require.Equal(t, "batch.cancel", cancel.Action)
	require.Equal(t, "operate-all", cancel.Actor)
	require.Equal(t, "operate", cancel.Role)
	require.Equal(t, audit.ViaHTTP, cancel.Via)
	require.Equal(t, audit.OutcomeOK, cancel.Outcome)
	require.Equal(t, b.BatchID, cancel.Target.Batch)
	require.Equal(t, map[string]int64{"canceled": 2, "already_started": 0, "already_final": 0}, cancel.Result)
	require.Equal(t, "req-cancel-1", cancel.RequestID)
	require.Equal(t, "192.0.2.7:4242", cancel.Remote)

	require.Equal(t, "dlq.purge", refused.Action)
	require.Equal(t, "operate-all", refused.Actor)
	require.Equal(t, audit.OutcomeRefused, refused.Outcome)
	require.Equal(t, http.StatusForbidden, refused.Status)
	require.Contains(t, refused.Detail, "needs role admin")
	require.NotEmpty(t, refused.RequestID)

	require.Equal(t, "dlq.purge", purge.Action)
	require.Equal(t, "env-"+access.Hash(tokenA)[:8], purge.Actor)
	require.Equal(t, "admin", purge.Role)
	require.Equal(t, d.ID, purge.Target.Task)
	require.Equal(t, map[string]int64{"purged": 1}, purge.Result)

	// Filters.
	w = e.do("GET", "/v1/audit?actor=operate-all&action=dlq.purge", "")
	require.Equal(t, http.StatusOK, w.Code)
	var p audit.Page
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &p))
	require.Len(t, p.Entries, 1)
	require.Equal(t, audit.OutcomeRefused, p.Entries[0].Outcome)
	require.EqualValues(t, 3, p.Retention.Entries)
	require.NotNil(t, p.Retention.Oldest)
	requireProblem(t, e.do("GET", "/v1/audit?since=yesterday", ""), http.StatusBadRequest)
	requireProblem(t, e.do("GET", "/v1/audit?who=me", ""), http.StatusBadRequest)

	// No token, whole or in part, in the stored log.
	raw, err := e.rdb.XRange(ctx, e.store().AuditKey(), "-", "+").Result()
	require.NoError(t, err)
	require.Len(t, raw, 3)
	all := fmt.Sprint(raw)
	for _, tok := range []string{tokenA, tokenB, op, access.Hash(tokenA), access.Hash(op)} {
		require.NotContains(t, all, tok)
	}
}

// TestAuditOfFailedAndReplayed: a failed call (409: the task started) is
// recorded as failed with its detail; an idempotent replay is recorded as
// such; a callback URL is kept without its query.
func TestAuditOfFailedAndReplayed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.req("POST", "/v1/logouts", `{"session":"rep","in":"1h"}`)
	r.Header.Set("Idempotency-Key", "k1")
	require.Equal(t, http.StatusAccepted, e.serve(r).Code)
	r = e.req("POST", "/v1/logouts", `{"session":"rep","in":"1h"}`)
	r.Header.Set("Idempotency-Key", "k1")
	require.Equal(t, http.StatusAccepted, e.serve(r).Code)
	requireProblem(t, e.do("DELETE", "/v1/tasks/0b6f3c1e-5f0e-4a44-9d55-0d8c3d1f8f20", ""), http.StatusNotFound)
	requireProblem(t, e.do("POST", "/v1/logouts", `{"session":"x","callback_url":"https://hooks.example/x?sig=SECRETSIG"}`), http.StatusBadRequest)

	got := e.auditEntries()
	require.Len(t, got, 4)
	require.Equal(t, audit.OutcomeFailed, got[0].Outcome)
	require.Equal(t, "https://hooks.example/x", got[0].Params["callback_url"])
	require.Equal(t, audit.OutcomeFailed, got[1].Outcome)
	require.Equal(t, http.StatusNotFound, got[1].Status)
	require.Contains(t, got[1].Detail, "no task")
	require.Equal(t, true, got[2].Params["idempotent_replay"])
	require.Equal(t, map[string]int64{"enqueued": 1, "deduplicated": 0}, got[3].Result)
	require.Equal(t, "default", got[3].Target.Instance)
	require.NotEmpty(t, got[3].Target.Task)
	raw, err := e.rdb.XRange(context.Background(), e.store().AuditKey(), "-", "+").Result()
	require.NoError(t, err)
	require.NotContains(t, fmt.Sprint(raw), "SECRETSIG")
}
