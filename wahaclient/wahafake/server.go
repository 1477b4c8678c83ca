package wahafake

import (
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"
)

// Session statuses used by WAHA (treat others as opaque).
const (
	StatusStopped    = "STOPPED"
	StatusStarting   = "STARTING"
	StatusScanQRCode = "SCAN_QR_CODE"
	StatusWorking    = "WORKING"
	StatusFailed     = "FAILED"
)

// DefaultSession is the session every WAHA server has from the start.
const DefaultSession = "default"

// CoreMessage is WAHA Core's 422 message for any session other than "default".
const CoreMessage = "WAHA Core support only 'default' session. If you want to run more then one WhatsApp account - please get WAHA PLUS version. Check this out: https://waha.devlike.pro/"

// StatusClientClosed is recorded in CallsByStatus for logout calls the client
// abandoned before an answer was written (nginx's convention).
const StatusClientClosed = 499

// Options configures a fake server. The zero value is a WAHA Plus-like server
// that accepts any key and has only the STOPPED session "default".
type Options struct {
	// APIKey is the key required in X-Api-Key (or ?x-api-key=). "" accepts any
	// key or none, like WAHA Core 2024.10.
	APIKey string
	// ScopedKeys are extra keys limited to the listed sessions, like WAHA's
	// session-scoped keys, with WAHA's default actions (all but delete): GET
	// and logout of a listed session work, any other session answers 403
	// {"message":"Forbidden","statusCode":403}, and so does listing sessions.
	// They work whether or not APIKey is set. Defaults to none.
	ScopedKeys map[string][]string
	// Keys are scoped keys bound to sessions and actions, as WAHA's Keys API
	// makes them (2026.1.4+, actions since 2026.4.3): a call outside the
	// key's sessions or actions answers 403. Logout needs ActionControl,
	// DELETE ActionDelete, GET ActionRead. Defaults to none.
	Keys []Key
	// CurrentLine makes the fake play WAHA's current line (2025.10.3+, see
	// line.go): a key is always required (an unset one, "123", "admin",
	// "waha" or only zeros, is replaced by a random one, which APIKey
	// returns), DELETE /api/sessions/{session} and GET /api/server/version
	// exist, and /api/version reports CurrentVersion. Defaults to false: the
	// observed WAHA Core 2024.10.8.
	CurrentLine bool
	// NoAPIKey is WAHA_NO_API_KEY=True on the current line: no key is
	// checked. Defaults to false.
	NoAPIKey bool
	// LockTimeout is how long a logout waits for the session's lock (held by
	// another operation of the session) before it answers WAHA's 500
	// "async-lock timed out in queue <session>". Defaults to 0: it waits as
	// long as its client does.
	LockTimeout time.Duration
	// Core makes it WAHA Core: only the session "default" can be addressed;
	// any other name answers 422 with CoreMessage. Incompatible with Sessions.
	Core bool
	// Legacy makes it an old server: POST /api/sessions/{s}/logout does not
	// exist (404 "Cannot POST ..."); only the deprecated POST /api/sessions/logout
	// {"name"} does (201, empty body, no Content-Type; it deletes the session;
	// 422 when name is missing).
	Legacy bool
	// NoDeprecatedRoute makes it a newest server without the deprecated
	// POST /api/sessions/logout route.
	NoDeprecatedRoute bool
	// LogoutLatency is the extra time a logout of a running (non-STOPPED)
	// session takes; a real server needs about 3 s. STOPPED sessions are always
	// fast. Default 0.
	LogoutLatency time.Duration
	// Sessions creates that many sessions named "session-0001", ... in WORKING
	// status with a me object. The STOPPED session "default" always exists too.
	Sessions int
	// Addr is the listen address. Default "127.0.0.1:0" (a free loopback port).
	Addr string
	// Seed seeds the RNG used by SetFlaky, so flaky runs are reproducible.
	// Default 1.
	Seed uint64
	// CrashOnConcurrentLogout makes the fake drop the connection of a logout
	// that arrives while another logout of the same running session is in
	// progress, as a real WAHA Core 2024.10.8 does (it then dies; the fake
	// stays up, call Down for that). Either way such calls are counted in
	// ConcurrentSameSession. Default false: the later call waits its turn.
	CrashOnConcurrentLogout bool
	// Webhook sends session.status webhooks (webhook.go). Defaults to none.
	Webhook Webhook
}

// Server is a fake WAHA: a real HTTP server on loopback that answers like the
// real one (status codes, bodies, key orders and headers as observed on
// WAHA Core 2024.10.8), with knobs for failures and counters for
// assertions. All methods are safe for concurrent use.
type Server struct {
	opts Options

	mu            sync.Mutex
	sessions      map[string]*session
	apiKey        string        // required; "" accepts any
	configuredKey string        // as set (Options.APIKey, SetAPIKey)
	current       bool          // CurrentLine
	noAPIKey      bool          // NoAPIKey
	lockTimeout   time.Duration // LockTimeout
	scoped        map[string]scope
	latency       time.Duration
	scripts       map[string][]Fault
	flaky         map[string]flakySpec
	rng           *rand.Rand
	defaultFault  *Fault
	calls         map[string]int
	total         int
	byStatus      map[int]int
	inFlight      int
	maxInFlight   int
	logouts       map[string]int // logouts in progress per session
	concurrent    int            // logouts that overlapped another of their session
	active        int            // requests of any kind being served, for Close
	gen           generated      // GenerateSessions
	injected      []string       // InjectListEntries
	mux           http.Handler
	hookOnce      sync.Once
	hook          *hookState // webhook.go

	lnMu   sync.Mutex
	addr   string
	srv    *http.Server
	done   chan struct{} // closed when the current Serve returns
	closed bool
}

// New starts a fake server on opts.Addr and returns it. Call Close when done
// (NewT does it for you).
func New(opts Options) (*Server, error) {
	if opts.Core && opts.Sessions > 0 {
		return nil, errors.New("wahafake: Core allows only the session \"default\"; Sessions must be 0")
	}
	if opts.Sessions < 0 || opts.LogoutLatency < 0 || opts.LockTimeout < 0 {
		return nil, errors.New("wahafake: Sessions, LogoutLatency and LockTimeout must not be negative")
	}
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	seed := opts.Seed
	if seed == 0 {
		seed = 1
	}
	s := &Server{
		opts:     opts,
		sessions: map[string]*session{},
		scoped:   map[string]scope{},
		latency:  opts.LogoutLatency,
		scripts:  map[string][]Fault{},
		flaky:    map[string]flakySpec{},
		rng:      rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		calls:    map[string]int{},
		byStatus: map[int]int{},
		logouts:  map[string]int{},
	}
	s.current, s.noAPIKey, s.lockTimeout = opts.CurrentLine, opts.NoAPIKey, opts.LockTimeout
	s.setKeyLocked(opts.APIKey)
	s.mux = s.routes()
	if err := s.SetWebhook(opts.Webhook); err != nil {
		return nil, err
	}
	for key, names := range opts.ScopedKeys {
		if key == "" {
			return nil, errors.New("wahafake: a scoped key must not be empty")
		}
		s.scoped[key] = newScope(names, nil)
	}
	for _, k := range opts.Keys {
		if err := k.validate(); err != nil {
			return nil, fmt.Errorf("wahafake: %w", err)
		}
		s.scoped[k.Key] = newScope(k.Sessions, k.Actions)
	}
	s.AddSession(DefaultSession, StatusStopped)
	if opts.Sessions > 0 {
		s.AddSessions("session", opts.Sessions, StatusWorking)
	}
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("wahafake: listen on %s: %w", opts.Addr, err)
	}
	s.addr = ln.Addr().String()
	s.serve(ln)
	return s, nil
}

// NewT starts a fake server for a test and closes it when the test ends. It
// fails the test if the server cannot start.
func NewT(t testing.TB, opts Options) *Server {
	t.Helper()
	s, err := New(opts)
	if err != nil {
		t.Fatalf("wahafake: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func (s *Server) serve(ln net.Listener) {
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	done := make(chan struct{})
	s.srv, s.done = srv, done
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
}

// URL is the server's base URL, e.g. "http://127.0.0.1:41234". It stays the
// same across Down and Up.
func (s *Server) URL() string { return "http://" + s.addr }

// Handler returns the fake's handler, for mounting in an httptest.Server or
// another mux. It is the same handler the built-in listener serves.
func (s *Server) Handler() http.Handler { return s }

// Close stops the server, ends open connections (in-flight logouts see their
// client go away) and waits briefly for handlers to return. It is safe to call
// more than once.
func (s *Server) Close() error {
	s.lnMu.Lock()
	if s.closed {
		s.lnMu.Unlock()
		return nil
	}
	s.closed = true
	s.stopLocked()
	s.lnMu.Unlock()
	s.closeWebhooks()
	// Handlers notice the closed connection through their context; wait for
	// them so that tests checking for leaked goroutines stay clean.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		s.mu.Lock()
		n := s.active
		s.mu.Unlock()
		if n == 0 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

func (s *Server) stopLocked() {
	if s.srv == nil {
		return
	}
	_ = s.srv.Close()
	<-s.done
	s.srv, s.done = nil, nil
}

// Down stops accepting connections and drops open ones, so clients get
// "connection refused", as if WAHA had crashed. Up brings it back on the same
// address. Down on a down server does nothing.
func (s *Server) Down() {
	s.lnMu.Lock()
	defer s.lnMu.Unlock()
	s.stopLocked()
}

// Up listens again on the same address after Down. It retries for a few
// seconds if the port is momentarily busy and panics if it cannot get it back
// (another process took the port), since the fake can no longer keep its URL.
// Up on a running or closed server does nothing.
func (s *Server) Up() {
	s.lnMu.Lock()
	defer s.lnMu.Unlock()
	if s.closed || s.srv != nil {
		return
	}
	var err error
	for i := 0; i < 100; i++ {
		var ln net.Listener
		if ln, err = net.Listen("tcp", s.addr); err == nil {
			s.serve(ln)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	panic(fmt.Sprintf("wahafake: Up: cannot listen on %s again: %v", s.addr, err))
}

// AddSession creates or replaces a session. A WORKING session gets a me
