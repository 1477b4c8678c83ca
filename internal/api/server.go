// Package api is wahaq's HTTP API, served by `wahaq serve`.
//
// It is a thin JSON layer over the tasks package: every call validates its
// input completely before it touches Redis, so a bad request enqueues
// nothing, and every error is an RFC 9457 problem whose detail says what is
// wrong: application/problem+json to a client whose Accept names that type,
// application/json (the same body) to every other client.
//
// # Routes
//
//	POST   /v1/logouts        enqueue one logout
//	POST   /v1/batches        enqueue a bulk teardown (named sessions or "all")
//	GET    /v1/batches/{id}   a batch's counts
//	DELETE /v1/batches/{id}   cancel every task of a batch that has not started
//	GET    /v1/batches/{id}/tasks  a batch's tasks, by state and outcome, paged
//	GET    /v1/tasks/{id}     a task
//	DELETE /v1/tasks/{id}     cancel a task that has not started
//	GET    /v1/dlq            dead letters (of one instance or batch), paged
//	POST   /v1/dlq/requeue    put dead letters back in the queue
//	DELETE /v1/dlq            purge dead letters
//	GET    /v1/audit          the audit log (when Config.Audit is set)
//	POST   /v1/waha/{instance}/events  WAHA's session.status webhooks (HMAC-signed; events.go)
//	GET    /healthz           liveness (always 200 while serving)
//	GET    /readyz            readiness (Config.Ready, e.g. a Redis PING)
//	GET    /metrics           Prometheus metrics (when Config.Metrics is set)
//	GET    /openapi.json      the OpenAPI 3.1 document of all of the above
//
// # Authentication
//
// Every /v1 route needs "Authorization: Bearer <token>" with one of
// Config.Tokens (admins) or Config.NamedTokens (the tokens file: a name, a
// role, optionally instances); a missing or wrong token answers 401 with a
// "WWW-Authenticate: Bearer" challenge. Tokens are compared in constant time
// (SHA-256 of both sides, then crypto/subtle against every configured token,
// in internal/access) and never logged: logs and the audit log name a token
// by its name. The route table (routes) names the role each route needs; a
// token below it, or limited to instances and touching another, answers 403
// naming the role or the instances, and nothing is done. Reads are not
// limited by instance: a scope bounds what a token may change. Handlers and
// middleware find the token with Caller (access.FromContext).
//
// # Audit
//
// A route with an action in the table appends one audit entry per call,
// refused and failed calls included (not 401s: there is no actor to name),
// once it has been answered: the token's name, the action, the target and
// counts the handler noted, the status, the X-Request-Id and the remote
// address. /healthz, /readyz, /metrics and /openapi.json are open:
// probes and Prometheus scrapers carry no token, and the document describes
// only the public HTTP API the README already documents. Keep the port off the public
// internet or put /metrics behind the network policy if that matters.
// Unknown routes (404) and wrong methods (405) are answered without
// authentication too; they reveal no more than /openapi.json.
// POST /v1/waha/{instance}/events takes no bearer token either: WAHA cannot
// send one; it is authenticated by WAHA's HMAC-SHA512 signature under the
// instance's secret instead (events.go), and must stay outside bearer auth.
//
// # Choices
//
//   - POST /v1/logouts answers 202 Accepted with the new task. When the
//     session already has a scheduled, pending, active or retrying logout,
//     nothing new is created and the answer is 200 OK with the existing task
//     and "deduplicated": true. Both carry Location: /v1/tasks/{id}.
//   - POST /v1/batches answers 202 with {"batch_id", "total", "requested",
//     "deduplicated", "discovering"} and Location: /v1/batches/{id}.
//   - Request bodies are JSON objects, at most Config.MaxBodyBytes (1 MiB)
//     long; unknown fields, keys given twice or in another case than their
//     field (encoding/json would take the last one, or match "SESSION" to
//     "session"), trailing data, oversized bodies and bodies nested more
//     than 32 levels deep (checked before anything walks them) answer 400.
//   - "in" is a Go duration, the same with a day unit ("7d"), or ISO 8601
//     ("PT30M"); see internal/duration.
//     Content-Type must be application/json or absent (415 otherwise).
//     Note that 1 MiB bounds the size of one batch of named sessions too:
//     100,000 sessions fit only when names are short; split bigger requests
//     or use "all".
//   - An empty string for "instance", "at" or "in" means "not given"
//     (templating tools such as n8n send empty strings for unset fields).
//   - A request the tasks package calls invalid (tasks.ErrInvalidInput)
//     answers 400, an unknown id 404, canceling a started task 409 (statusOf
//     is the one place that maps them); Redis unreachable (or out of
//     memory) 503 with Retry-After, within Config.RequestTimeout; anything
//     else is logged and answered 500 with a generic detail. A batch created
//     but not filled answers with its "batch_id" and "enqueued" count as
//     extension members.
//   - The server itself (timeouts, header limits) is built in cmd with
//     internal/httpserver; a handler that waits longer than the write
//     timeout calls httpserver.ExtendWrite.
package api

import (
	"context"
	"crypto/rand"
	_ "embed"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/wahaq/wahaq/internal/access"
	"github.com/wahaq/wahaq/internal/audit"
	"github.com/wahaq/wahaq/internal/httpserver"
	"github.com/wahaq/wahaq/internal/preflight"
	"github.com/wahaq/wahaq/tasks"
)

// OpenAPI is the OpenAPI 3.1 document of the API, served at /openapi.json.
//
//go:embed openapi.json
var OpenAPI []byte

// DefaultMaxBodyBytes bounds request bodies: 1 MiB.
const DefaultMaxBodyBytes = 1 << 20

// Config configures the API handler.
type Config struct {
	// Producer enqueues logouts. Required.
	Producer *tasks.Producer
	// Inspector reads tasks and batches and manages dead letters. Required.
	Inspector *tasks.Inspector
	// Tokens are accepted bearer tokens (WAHAQ_API_TOKENS), each an admin
	// of every instance. Empty entries are ignored. New refuses no tokens at
	// all (here and in NamedTokens) unless InsecureNoAuth.
	Tokens []string
	// NamedTokens are the tokens of the tokens file (WAHAQ_API_TOKENS_FILE),
	// each with a name, a role and optionally the instances it may touch.
	// Defaults to none. A token given twice (here or in Tokens) is an error.
	NamedTokens []access.Token
	// Audit receives one entry per state-changing call, refused and failed
	// ones included, and serves GET /v1/audit. Defaults to nil: no audit log
	// and no /v1/audit route.
	Audit *audit.Log
	// InsecureNoAuth (--insecure-no-auth) serves the API without
	// authentication when Tokens is empty, and logs a loud warning. When
	// Tokens are given they are enforced regardless.
	InsecureNoAuth bool
	// Ready is the /readyz check (a Redis PING). Nil means always ready.
	Ready func(ctx context.Context) error
	// Metrics is served at /metrics, without authentication, when non-nil.
	Metrics http.Handler
	// Logger receives one info line per request and the errors behind 500s.
	// Default: no logging.
	Logger *zerolog.Logger
	// MaxBodyBytes bounds request bodies. Default DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// RequestTimeout bounds each request's work (its context): a Redis that
	// is down or frozen answers 503 with Retry-After within it. Defaults to
	// DefaultRequestTimeout (4 s).
	RequestTimeout time.Duration
	// EventSecrets are the secrets WAHA signs its webhooks with, by
	// instance (the instances file's webhook_hmac_key_env): only these
	// instances take POST /v1/waha/{instance}/events (events.go). Empty
	// secrets are ignored. Defaults to none: every event is refused.
	EventSecrets map[string]string
	// EventRate bounds the events accepted per second per instance in this
	// process. Defaults to DefaultEventRate (500).
	EventRate float64
	// OnEvent, when set, observes every event the route answers: the
	// instance ("" for one that takes no events) and the result
	// ("recorded", "confirmed", "duplicate", "unmatched", "ignored",
	// "refused", "limited"). Defaults to nil.
	OnEvent func(instance, result string)
	// ScopeKey keys the hash that names a token's Idempotency-Key scope in
	// Redis, so that whoever reads Redis cannot test guessed tokens
	// against it (`wahaq serve` passes WAHAQ_CONSOLE_KEY). Replicas and
	// restarts must share it for keys to hold across them. Defaults to
	// random bytes drawn at start: keys then hold within this process only.
	ScopeKey []byte
	// Stopping, when closed, ends every long-poll (?wait=) at once with the
	// current state: `wahaq serve` closes it when its shutdown begins
	// (http.Server.RegisterOnShutdown), so waiting clients get an answer
	// instead of being cut off. Defaults to nil: never.
	Stopping <-chan struct{}
	// Limiter limits wrong tokens per client address (see
	// AttemptLimiter); `wahaq serve` shares one with the console and
	// exports its wahaq_auth_refused_total. Defaults to a limiter of the
	// handler's own, counted nowhere.
	Limiter *AttemptLimiter
	// Preflight serves GET /v1/instances/{name}/check (the role it needs:
	// read). Defaults to nil: the route is not served.
	Preflight *preflight.Checker
}

// readyTimeout bounds one /readyz check.
const readyTimeout = 3 * time.Second

// route is one entry of the route table. The table is the single source of
// the routes New registers; the tests check it against openapi.json.
type route struct {
	method  string
	pattern string
	// open routes need no bearer token.
	open bool
	// role is what a token needs for the route (access.Role*); every route
	// that is not open has one. This table is the one place it is written.
	role access.Role
	// allRole, when set, is what a token needs when the request asks for
	// "all": true (handlers check it with permitAll once they read the body).
	allRole access.Role
	// action names a state-changing route in the audit log; routes that
	// change nothing have none. Every call of such a route, refused and
	// failed ones included, appends one entry.
	action string
	// body routes read a JSON request body.
	body bool
	// optional routes are registered only when enabled returns true.
	enabled func(*server) bool
	handle  func(*server, http.ResponseWriter, *http.Request)
}

// routes is the route table: what each route needs and what the audit log
// calls it. A new route is one line here.
var routes = []route{
	{method: http.MethodPost, pattern: "/v1/logouts", body: true, role: access.RoleEnqueue, action: "logout.enqueue", handle: (*server).postLogout},
	{method: http.MethodPost, pattern: "/v1/batches", body: true, role: access.RoleEnqueue, allRole: access.RoleOperate, action: "batch.create", handle: (*server).postBatch},
	{method: http.MethodGet, pattern: "/v1/batches", role: access.RoleRead, handle: (*server).listBatches},
	{method: http.MethodGet, pattern: "/v1/batches/{id}", role: access.RoleRead, handle: (*server).getBatch},
	{method: http.MethodDelete, pattern: "/v1/batches/{id}", role: access.RoleOperate, action: "batch.cancel", handle: (*server).deleteBatch},
	{method: http.MethodGet, pattern: "/v1/batches/{id}/tasks", role: access.RoleRead, handle: (*server).getBatchTasks},
	{method: http.MethodPost, pattern: "/v1/batches/{id}/pause", role: access.RoleOperate, action: "batch.pause", handle: (*server).pauseBatch},
	{method: http.MethodPost, pattern: "/v1/batches/{id}/resume", role: access.RoleOperate, action: "batch.resume", handle: (*server).resumeBatch},
	{method: http.MethodGet, pattern: "/v1/tasks/{id}", role: access.RoleRead, handle: (*server).getTask},
	{method: http.MethodDelete, pattern: "/v1/tasks/{id}", role: access.RoleOperate, action: "task.cancel", handle: (*server).deleteTask},
	{method: http.MethodGet, pattern: "/v1/dlq", role: access.RoleRead, handle: (*server).getDLQ},
	{method: http.MethodPost, pattern: "/v1/dlq/requeue", body: true, role: access.RoleOperate, action: "dlq.requeue", handle: (*server).postRequeue},
	{method: http.MethodDelete, pattern: "/v1/dlq", body: true, role: access.RoleAdmin, action: "dlq.purge", handle: (*server).deleteDLQ},
	{method: http.MethodGet, pattern: "/v1/audit", role: access.RoleAdmin, handle: (*server).getAudit,
		enabled: func(s *server) bool { return s.cfg.Audit != nil }},
	{method: http.MethodPost, pattern: "/v1/subscriptions", body: true, role: access.RoleOperate, action: "subscription.create", handle: (*server).postSubscription},
	{method: http.MethodGet, pattern: "/v1/subscriptions", role: access.RoleRead, handle: (*server).listSubscriptions},
	{method: http.MethodGet, pattern: "/v1/subscriptions/{id}", role: access.RoleRead, handle: (*server).getSubscription},
	{method: http.MethodDelete, pattern: "/v1/subscriptions/{id}", role: access.RoleOperate, action: "subscription.delete", handle: (*server).deleteSubscription},
	// WAHA's webhooks: authenticated by WAHA's HMAC signature, never by a
	// bearer token (events.go); no role, no audit entry (WAHA is no token)
	{method: http.MethodPost, pattern: "/v1/waha/{instance}/events", open: true, body: true, handle: (*server).postEvent},
	{method: http.MethodGet, pattern: "/v1/instances/{name}/check", role: access.RoleRead, handle: (*server).checkInstance,
		enabled: func(s *server) bool { return s.cfg.Preflight != nil }},
	{method: http.MethodGet, pattern: "/healthz", open: true, handle: (*server).healthz},
	{method: http.MethodGet, pattern: "/readyz", open: true, handle: (*server).readyz},
	{method: http.MethodGet, pattern: "/metrics", open: true, handle: (*server).metrics,
		enabled: func(s *server) bool { return s.cfg.Metrics != nil }},
	{method: http.MethodGet, pattern: "/openapi.json", open: true, handle: (*server).openapi},
}

type server struct {
	cfg    Config
	log    zerolog.Logger
	tokens *tokenSet // nil: no authentication
	mux    *http.ServeMux
	events map[string]*eventSource // instances that take WAHA's events
}

// New returns the API as an http.Handler.
func New(cfg Config) (http.Handler, error) {
	if cfg.Producer == nil {
		return nil, errors.New("api: Config.Producer is required")
	}
	if cfg.Inspector == nil {
		return nil, errors.New("api: Config.Inspector is required")
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if len(cfg.ScopeKey) == 0 {
		cfg.ScopeKey = make([]byte, 32)
		_, _ = rand.Read(cfg.ScopeKey) // crypto/rand.Read never fails on supported platforms
	}
	if cfg.Limiter == nil {
		cfg.Limiter = NewAttemptLimiter(nil)
	}
	s := &server{cfg: cfg, log: zerolog.Nop(), mux: http.NewServeMux()}
	if cfg.Logger != nil {
		s.log = *cfg.Logger
	}
	var err error
	if s.tokens, err = newTokenSet(cfg.Tokens, cfg.NamedTokens); err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	s.events = newEventSources(cfg.EventSecrets, cfg.EventRate)
	if s.tokens == nil {
		if !cfg.InsecureNoAuth {
			return nil, errors.New("api: no API tokens configured: set WAHAQ_API_TOKENS, or pass --insecure-no-auth to serve without authentication")
		}
		s.log.Warn().Msg("!!! INSECURE: the HTTP API is serving WITHOUT AUTHENTICATION (--insecure-no-auth); anyone who can reach it can enqueue, cancel, requeue and purge logouts. Set WAHAQ_API_TOKENS. !!!")
	}
	for _, rt := range routes {
		if rt.enabled != nil && !rt.enabled(s) {
			continue
		}
		if !rt.open && rt.role == 0 {
			return nil, fmt.Errorf("api: route %s %s names no role", rt.method, rt.pattern)
		}
		s.mux.Handle(rt.method+" "+rt.pattern, withTimeout(s.wrap(rt), cfg.RequestTimeout))
	}
	return s, nil
}

// wrap adds authentication, the route's role, the Content-Type check and
// the audit entry to a route.
func (s *server) wrap(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := callOf(r)
		c.route = &rt
		if !rt.open {
			tok := access.Open
			if s.tokens != nil {
				// Wrong tokens are limited per client address (issue 23,
				// M3; AttemptLimiter): past the limit, 429, unchecked.
				if wait, ok := s.cfg.Limiter.Allow(r, "api"); !ok {
					w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds(wait)))
					s.problem(w, r, http.StatusTooManyRequests, "too many wrong tokens from this address; retry after Retry-After seconds")
					return
				}
				var detail string
				var code authFailure
				if tok, detail, code = s.tokens.check(r.Header.Get("Authorization")); tok == nil {
					if code != authMissing {
						s.cfg.Limiter.Failed(r, "api")
					}
					w.Header().Set("WWW-Authenticate", challenge(code))
					s.problem(w, r, http.StatusUnauthorized, detail)
					return
				}
			}
			c.token = tok
			r = r.WithContext(access.WithToken(r.Context(), tok))
		}
		if rt.action != "" {
			sw := &httpserver.StatusWriter{ResponseWriter: w}
			defer func() { s.record(r, &rt, sw.Code, sw.Header().Get(replayedHeader) != "") }()
			w = sw
		}
		if !rt.open && !s.permitted(w, r, rt.role, rt.method+" "+rt.pattern) {
			return
		}
		if rt.body {
			if detail, ok := contentTypeOK(r.Header.Get("Content-Type")); !ok {
				s.problem(w, r, http.StatusUnsupportedMediaType, detail)
				return
			}
		}
		// open routes (WAHA's events) are not idempotent by key: nothing
		// of an unverified request may reach Redis
		if rt.method == http.MethodPost && !rt.open && r.Header.Get(idempotencyHeader) != "" {
			s.idempotent(w, r, rt)
			return
		}
		rt.handle(s, w, r)
	})
}

// headerOnly captures what the mux's own 404/405 handlers write, so the
// answer can be turned into a problem.
type headerOnly struct {
	h    http.Header
	code int
}

func (c *headerOnly) Header() http.Header { return c.h }
func (c *headerOnly) WriteHeader(code int) {
	if c.code == 0 {
		c.code = code
	}
}
func (c *headerOnly) Write(b []byte) (int, error) {
	if c.code == 0 {
		c.code = http.StatusOK
	}
	return len(b), nil
}

// ServeHTTP routes, answers unknown routes and wrong methods with problems,
// recovers panics, and logs one line per request.
func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &httpserver.StatusWriter{ResponseWriter: w}
	c := &call{id: requestID(r)}
	r = r.WithContext(context.WithValue(r.Context(), callKey{}, c))
	sw.Header().Set(requestIDHeader, c.id)
	h, pattern := s.mux.Handler(r)
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.Error().Str("method", r.Method).Str("path", routePath(pattern)).Interface("panic", v).Msg("http handler panicked")
			if sw.Code == 0 {
				s.problem(sw, r, http.StatusInternalServerError, genericDetail)
			}
		}
		ev := s.log.Info().Str("method", r.Method).Str("path", routePath(pattern)).Int("status", sw.Code).
			Dur("duration", time.Since(start)).Str("request_id", c.id)
		if c.token != nil {
			ev = ev.Str("token", c.token.Name)
		}
		ev.Msg("http request")
	}()
	if pattern != "" {
		s.mux.ServeHTTP(sw, r)
		return
	}
	// No pattern: the mux would answer 404 or 405 in plain text.
	ho := &headerOnly{h: http.Header{}}
	h.ServeHTTP(ho, r)
	switch ho.code {
	case http.StatusMethodNotAllowed:
		allow := ho.h.Get("Allow")
		sw.Header().Set("Allow", allow)
		s.problem(sw, r, http.StatusMethodNotAllowed, fmt.Sprintf("method %s is not allowed on %s; allowed: %s", r.Method, r.URL.Path, allow))
	case http.StatusNotFound, 0:
		s.problem(sw, r, http.StatusNotFound, fmt.Sprintf("no route for %s %s; see /openapi.json", r.Method, r.URL.Path))
	default: // a redirect to a cleaned path
		for k, v := range ho.h {
			sw.Header()[k] = v
		}
		sw.WriteHeader(ho.code)
	}
}

// routeList returns the "METHOD pattern" of every route registered on s.
func (s *server) routeList() []string {
	var out []string
	for _, rt := range routes {
		if rt.enabled == nil || rt.enabled(s) {
			out = append(out, rt.method+" "+rt.pattern)
		}
	}
	return out
}

// routePath is the path part of a mux pattern ("GET /v1/tasks/{id}" ->
// "/v1/tasks/{id}"), or "unmatched". Logs carry it instead of the raw path.
func routePath(pattern string) string {
	if pattern == "" {
		return "unmatched"
	}
	if _, p, ok := strings.Cut(pattern, " "); ok {
		return p
	}
	return pattern
}
