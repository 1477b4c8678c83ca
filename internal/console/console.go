// Package console is wahaq's operator console, served by `wahaq serve` at
// /ui/: server-rendered pages over the tasks package (overview per WAHA
// server, batches, dead letters, a task), with live figures fetched by a
// small script that degrades to a page reload without JavaScript.
//
// # Sign-in
//
// A person signs in with one of the API tokens (WAHAQ_API_TOKENS, or one of
// the tokens file's) through a form; the token is looked up in an
// access.Set, as the JSON API does, and the session has the token's role
// and scope: pages show only the buttons the token may use, and every
// action checks the role again (a read-only token sees no buttons at all). The session is a cookie scoped to /ui/, HttpOnly,
// SameSite=Strict, Secure when the request came over TLS or through a proxy
// that sent X-Forwarded-Proto: https, and valid for Config.SessionTTL. Its
// value is signed with HMAC-SHA256 under Config.Key and names the token by a
// keyed fingerprint of the token's SHA-256 only, so removing a token from
// WAHAQ_API_TOKENS or the tokens file ends the sessions opened with it.
// The session is also recorded in Redis (store.OpenConsoleSession):
// sign-out removes it, so a copied cookie stops working too, and "End all
// sessions" (admins) removes every one. Every action (cancel, requeue,
// purge), refused ones included, is written to the audit log (Config.Audit)
// under the token's name, and the Audit page (admins) reads it. Every
// state-changing form carries the session's
// CSRF token; the sign-in form carries a double-submit value of its own.
// Nothing secret ever goes in a URL.
//
// Without tokens (--insecure-no-auth) the console is open, like the API, with
// a banner saying so; sessions and CSRF tokens are still issued, so a foreign
// page still cannot requeue, purge or cancel anything.
//
// # What the public API lacks
//
// The console uses only tasks.Inspector, tasks.Producer and asynq's
// Inspector (whose task payloads it reads with internal/base, as the demo
// does). The Batches page is tasks.Inspector.RecentBatches: every batch,
// whoever created it, until its record expires; a batch cancel is
// Producer.CancelBatch. One figure is not in the tasks API yet and is found
// by reading asynq's queues (bounded): a lookup by session, which finds live
// tasks in asynq's lists and dead letters; finished tasks can be looked up
// by id only.
package console

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/wahaq/wahaq/internal/access"
	"github.com/wahaq/wahaq/internal/api"
	"github.com/wahaq/wahaq/internal/audit"
	"github.com/wahaq/wahaq/internal/httpserver"
	"github.com/wahaq/wahaq/internal/preflight"
	"github.com/wahaq/wahaq/internal/store"
	"github.com/wahaq/wahaq/tasks"
)

// mount is the path the console is served under.
const mount = "/ui/"

// DefaultSessionTTL is how long a console session lasts: a working day.
const DefaultSessionTTL = 12 * time.Hour

// MinKeyBytes is the shortest Config.Key accepted.
const MinKeyBytes = 32

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Server is one WAHA server as the overview shows it.
type Server struct {
	// Name is the instance name.
	Name string
	// Cap is the server's concurrency cap across all workers. Defaults to 0
	// (shown as "?").
	Cap int
	// Rate is its rate limit in logouts per second. Defaults to 0 (none).
	Rate float64
}

// Config configures the console.
type Config struct {
	// Inspector reads tasks, batches and dead letters. Required.
	Inspector *tasks.Inspector
	// Producer cancels tasks. Required.
	Producer *tasks.Producer
	// Redis is the client asynq's figures are read with. Required.
	Redis redis.UniversalClient
	// Namespace is the queue prefix (queues are Namespace:instance).
	// Defaults to tasks.DefaultNamespace.
	Namespace string
	// Servers are the WAHA servers of the overview, in order. Defaults to
	// the Inspector's instances, with no cap or rate shown.
	Servers []Server
	// Tokens are the API tokens a person may sign in with
	// (WAHAQ_API_TOKENS), each an admin. Empty, with no NamedTokens, means
	// no authentication, allowed only with InsecureNoAuth.
	Tokens []string
	// NamedTokens are the tokens file's (WAHAQ_API_TOKENS_FILE), each with
	// its role and scope. Defaults to none.
	NamedTokens []access.Token
	// Audit records every action and serves the Audit page. Defaults to
	// nil: no audit log, no Audit page.
	Audit *audit.Log
	// InsecureNoAuth serves the console without sign-in when Tokens is
	// empty (--insecure-no-auth). Defaults to false.
	InsecureNoAuth bool
	// Key signs session cookies (WAHAQ_CONSOLE_KEY), at least MinKeyBytes.
	// Defaults to 32 random bytes drawn at start: sessions then end when the
	// process restarts and are refused by other replicas, so set a key when
	// several `wahaq serve` replicas share a load balancer.
	Key []byte
	// TraceURL is the link template of a task's trace (WAHAQ_TRACE_URL),
	// e.g. https://jaeger/trace/{trace_id}. Defaults to "": no link.
	TraceURL string
	// SessionTTL is how long a session lasts. Defaults to DefaultSessionTTL.
	SessionTTL time.Duration
	// Circuit reports a server's circuit-breaker state. Defaults to nil:
	// the state the workers report in Redis, read through
	// Inspector.Circuits (tasks.Inspector.Circuits) once per overview.
	Circuit func(ctx context.Context, instance string) CircuitState
	// Preflight runs the check of a WAHA server that the overview offers
	// and shows (internal/preflight). Defaults to nil: no check offered.
	Preflight *preflight.Checker
	// Logger receives sign-ins, refusals, actions and errors. Defaults to
	// no logging.
	Logger *zerolog.Logger
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
	// Refresh is how often live figures are fetched. Defaults to 2s.
	Refresh time.Duration
	// Limiter limits wrong tokens at sign-in per client address; `wahaq
	// serve` shares the API's. Defaults to a limiter of the console's own.
	Limiter *api.AttemptLimiter
}

// Console is the operator console, an http.Handler for /ui/.
type Console struct {
	src      *source
	tokens   *access.Set
	fps      map[string]*access.Token
	audit    *audit.Log
	open     bool
	key      []byte
	ttl      time.Duration
	refresh  time.Duration
	now      func() time.Time
	log      zerolog.Logger
	pages    map[string]*template.Template
	mux      *http.ServeMux
	traceURL string
	sessions *store.Store
	limiter  *api.AttemptLimiter
	checks   checks
}

// New returns the console.
func New(cfg Config) (*Console, error) {
	if cfg.Inspector == nil || cfg.Producer == nil || cfg.Redis == nil {
		return nil, errors.New("console: Config.Inspector, Config.Producer and Config.Redis are required")
	}
	if cfg.Namespace == "" {
		cfg.Namespace = tasks.DefaultNamespace
	}
	if len(cfg.Servers) == 0 {
		for _, in := range cfg.Inspector.Instances() {
			cfg.Servers = append(cfg.Servers, Server{Name: in})
		}
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = DefaultSessionTTL
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = 2 * time.Second
	}
	switch {
	case cfg.Key == nil:
		cfg.Key = []byte(randomHex(32))
	case len(cfg.Key) < MinKeyBytes:
		return nil, fmt.Errorf("console: the session key (WAHAQ_CONSOLE_KEY) is %d bytes long; it must be at least %d", len(cfg.Key), MinKeyBytes)
	}
	set, err := access.NewSet(cfg.Tokens, cfg.NamedTokens)
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	c := &Console{
		tokens: set, fps: map[string]*access.Token{}, audit: cfg.Audit,
		key: cfg.Key, ttl: cfg.SessionTTL, refresh: cfg.Refresh, now: cfg.Now, log: zerolog.Nop(), mux: http.NewServeMux(),
	}
	if cfg.Logger != nil {
		c.log = *cfg.Logger
	}
	if c.tokens == nil {
		if !cfg.InsecureNoAuth {
			return nil, errors.New("console: no API tokens configured: set WAHAQ_API_TOKENS, or pass --insecure-no-auth")
		}
		c.open = true
	}
	for _, t := range set.Tokens() {
		c.fps[c.fingerprint(t.Sum())] = t
	}
	c.limiter = cfg.Limiter
	if c.limiter == nil {
		c.limiter = api.NewAttemptLimiter(nil)
	}
	c.sessions = store.New(cfg.Redis, store.Options{Namespace: cfg.Namespace, Now: cfg.Now})
	c.checks = checks{checker: cfg.Preflight, last: map[string]*checkView{}}
	c.src = &source{insp: cfg.Inspector, prod: cfg.Producer, aq: asynq.NewInspectorFromRedisClient(cfg.Redis), rdb: cfg.Redis,
		ns: cfg.Namespace, servers: cfg.Servers, circuit: cfg.Circuit, now: cfg.Now, samples: map[string][]sample{}}
	if err := c.parse(); err != nil {
		return nil, err
	}
	c.routes()
	return c, nil
}

// routes registers every page. Handlers wrapped by auth need a session;
// those wrapped by act are state-changing POSTs that need its CSRF token.
func (c *Console) routes() {
	static, _ := fs.Sub(staticFS, "static")
	files := http.StripPrefix("/ui/static/", http.FileServerFS(static))
	c.mux.HandleFunc("GET /ui/static/", func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") {
			http.NotFound(w, r) // no directory listings
			return
		}
		files.ServeHTTP(w, r)
	})
	c.mux.HandleFunc("GET /ui", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, mount, http.StatusMovedPermanently) })
	c.mux.HandleFunc("GET /ui/signin", c.signInPage)
	c.mux.HandleFunc("POST /ui/signin", c.signIn)
	c.mux.Handle("POST /ui/signout", c.act(c.signOut))
	c.mux.Handle("POST /ui/sessions/end", c.act(c.endSessions))
	c.mux.Handle("GET /ui/{$}", c.auth(c.overviewPage))
	c.mux.Handle("GET /ui/live/overview", c.auth(c.overviewLive))
	c.mux.Handle("GET /ui/instances/{name}/check", c.auth(c.checkPage))
	c.mux.Handle("GET /ui/batches", c.auth(c.batchesPage))
	c.mux.Handle("GET /ui/live/batches", c.auth(c.batchesLive))
	c.mux.Handle("GET /ui/batches/{id}", c.auth(c.batchPage))
	c.mux.Handle("GET /ui/live/batches/{id}", c.auth(c.batchLive))
	c.mux.Handle("POST /ui/batches/{id}/cancel", c.act(c.cancelBatch))
	c.mux.Handle("POST /ui/batches/{id}/pause", c.act(c.pauseBatch(true)))
	c.mux.Handle("POST /ui/batches/{id}/resume", c.act(c.pauseBatch(false)))
	c.mux.Handle("GET /ui/teardown", c.auth(c.teardownPage))
	c.mux.Handle("POST /ui/teardown", c.act(c.teardown))
	c.mux.Handle("GET /ui/dlq", c.auth(c.dlqPage))
	c.mux.Handle("POST /ui/dlq", c.act(c.dlqAction))
	c.mux.Handle("GET /ui/tasks", c.auth(c.taskLookup))
	c.mux.Handle("GET /ui/tasks/{id}", c.auth(c.taskPage))
	c.mux.Handle("GET /ui/audit", c.auth(c.auditPage))
	c.mux.Handle("GET /ui/live/tasks/{id}", c.auth(c.taskLive))
}

// ServeHTTP sets the security headers of every answer and routes.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
	start := c.now()
	sw := &httpserver.StatusWriter{ResponseWriter: w}
	_, pattern := c.mux.Handler(r)
	c.mux.ServeHTTP(sw, r)
	// Live fragments come every few seconds per open page: debug only.
	ev := c.log.Debug()
	if r.Method != http.MethodGet {
		ev = c.log.Info()
	}
	ev.Str("method", r.Method).Str("path", pattern).Int("status", sw.Code).Dur("duration", c.now().Sub(start)).Msg("console request")
}

// handler is a page that needs a session.
type handler func(http.ResponseWriter, *http.Request, session)

// auth lets a request with a valid session through; others go to the
// sign-in page (pages) or get 401 (live fragments). In open mode a session
// is issued on the spot.
func (c *Console) auth(h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, ok := c.current(r)
		if !ok && c.open {
			s, _ = c.start(w, r, openFP) // open mode records nothing: no error
			ok = true
		}
		if !ok {
			if isLive(r) {
				http.Error(w, "sign in first", http.StatusUnauthorized)
				return
			}
			http.Redirect(w, r, mount+"signin?next="+urlQuery(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		h(w, r, s)
	})
}

// act is auth for state-changing POSTs: no session answers 401, a missing
// or wrong CSRF token 403, and nothing is changed.
func (c *Console) act(h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
		s, ok := c.current(r)
		if !ok {
			c.log.Warn().Str("path", r.URL.Path).Msg("console: refused a change without a session")
			c.render(w, r, http.StatusUnauthorized, "message", page{Title: "Not signed in",
				Data: message{Heading: "Not signed in", Text: "Your session has ended or was never opened. Sign in and try again; nothing was changed.", Link: mount + "signin"}})
			return
		}
		if !csrfOK(s, r) {
			c.log.Warn().Str("path", r.URL.Path).Msg("console: refused a change with a missing or wrong CSRF token")
			c.render(w, r, http.StatusForbidden, "message", page{Title: "Refused", Session: &s,
				Data: message{Heading: "Refused", Text: "This form did not carry this session's security token (CSRF), so nothing was changed. Reload the page and try again.", Link: mount}})
			return
		}
		h(w, r, s)
	})
}

func isLive(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, mount+"live/") }
