package wahafake

import (
	"bufio"
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wahaq/wahaq/wahaclient"
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
	// session-scoped keys: GET and logout of a listed session work, any other
	// session answers 403 {"message":"Forbidden","statusCode":403}, and so does
	// listing sessions. They work whether or not APIKey is set.
	ScopedKeys map[string][]string
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
}

type session struct {
	name   string
	status string
	me     *wahaclient.Me
	// lock serialises logouts of one session, like WAHA's per-session lock. A
	// channel rather than a mutex so a waiter can give up when its client does.
	lock chan struct{}
}

type flakySpec struct {
	rate   float64
	status int
}

// Server is a fake WAHA: a real HTTP server on loopback that answers like the
// real one (see shared waha-api.md), with knobs for failures and counters for
// assertions. All methods are safe for concurrent use.
type Server struct {
	opts Options

	mu           sync.Mutex
	sessions     map[string]*session
	apiKey       string
	scoped       map[string]map[string]bool
	latency      time.Duration
	scripts      map[string][]Fault
	flaky        map[string]flakySpec
	rng          *rand.Rand
	defaultFault *Fault
	calls        map[string]int
	total        int
	byStatus     map[int]int
	inFlight     int
	maxInFlight  int
	active       int // requests of any kind being served, for Close

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
	if opts.Sessions < 0 || opts.LogoutLatency < 0 {
		return nil, errors.New("wahafake: Sessions and LogoutLatency must not be negative")
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
		apiKey:   opts.APIKey,
		scoped:   map[string]map[string]bool{},
		latency:  opts.LogoutLatency,
		scripts:  map[string][]Fault{},
		flaky:    map[string]flakySpec{},
		rng:      rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		calls:    map[string]int{},
		byStatus: map[int]int{},
	}
	for key, names := range opts.ScopedKeys {
		if key == "" {
			return nil, errors.New("wahafake: a scoped key must not be empty")
		}
		set := map[string]bool{}
		for _, n := range names {
			set[n] = true
		}
		s.scoped[key] = set
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
// object; other statuses have me null, as on a real server. An empty status
// means WORKING.
func (s *Server) AddSession(name, status string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addSessionLocked(name, status)
}

func (s *Server) addSessionLocked(name, status string) {
	if status == "" {
		status = StatusWorking
	}
	sess := &session{name: name, status: status, lock: make(chan struct{}, 1)}
	if old, ok := s.sessions[name]; ok {
		sess.lock = old.lock // keep serialising with in-flight logouts
	}
	if status == StatusWorking {
		sess.me = &wahaclient.Me{ID: fmt.Sprintf("491510%07d@c.us", len(s.sessions)+1), PushName: name}
	}
	s.sessions[name] = sess
}

// AddSessions creates n sessions named prefix-0001, prefix-0002, ... skipping
// names that already exist (so repeated calls add new ones), and returns their
// names in order.
func (s *Server) AddSessions(prefix string, n int, status string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, max(n, 0))
	for i := 1; len(names) < n; i++ {
		name := fmt.Sprintf("%s-%04d", prefix, i)
		if _, exists := s.sessions[name]; exists {
			continue
		}
		s.addSessionLocked(name, status)
		names = append(names, name)
	}
	return names
}

// RemoveSession deletes a session (later calls answer 404 Session not found).
func (s *Server) RemoveSession(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.sessions, name)
}

// Session returns a session as GET /api/sessions/{name} would show it.
func (s *Server) Session(name string) (wahaclient.Session, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.sessions[name]
	if !ok {
		return wahaclient.Session{}, false
	}
	return wahaclient.Session{Name: sess.name, Status: sess.status, Me: copyMe(sess.me), Engine: engineOf(sess.status)}, true
}

// Sessions returns the names of all sessions, sorted.
func (s *Server) Sessions() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.sessions))
	for n := range s.sessions {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// SetAPIKey changes the required key ("" accepts any), e.g. to simulate a
// rotated key.
func (s *Server) SetAPIKey(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.apiKey = key
}

// SetLogoutLatency changes how long a logout of a running session takes.
func (s *Server) SetLogoutLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = max(d, 0)
}

// Script sets the faults the next logout calls of session meet, in order,
// replacing any earlier script; no faults clears it. For example
// Script("a", Fault{Status: 503, Times: 3}) fails three calls with 503, then
// the session logs out normally. It panics on an invalid fault (a bug in the
// test).
func (s *Server) Script(session string, faults ...Fault) {
	for _, f := range faults {
		if err := f.validate(); err != nil {
			panic("wahafake: Script: " + err.Error())
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(faults) == 0 {
		delete(s.scripts, session)
		return
	}
	s.scripts[session] = append([]Fault(nil), faults...)
}

// SetFlaky makes a share (0..1) of the session's logout calls fail with status
// (0 means 503), drawn from the server's seeded RNG. A rate of 0 clears it.
func (s *Server) SetFlaky(session string, failureRate float64, status int) {
	if status == 0 {
		status = http.StatusServiceUnavailable
	}
	if err := (Fault{Status: status}).validate(); err != nil {
		panic("wahafake: SetFlaky: " + err.Error())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if failureRate <= 0 {
		delete(s.flaky, session)
		return
	}
	s.flaky[session] = flakySpec{rate: min(failureRate, 1), status: status}
}

// SetDefaultFault applies f to every logout of every session while set ("WAHA
// answers 503 for everyone", "keys revoked: 401 for everyone"); nil clears it.
// It takes precedence over scripts. With Times > 0 it applies to that many
// calls and then clears itself.
func (s *Server) SetDefaultFault(f *Fault) {
	if f != nil {
		if err := f.validate(); err != nil {
			panic("wahafake: SetDefaultFault: " + err.Error())
		}
		cp := *f
		f = &cp
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.defaultFault = f
}

// LogoutCalls is the number of logout calls received for session on either
// route, whatever the answer (faults and 401s included). Calls to a route the
// server lacks (Legacy's 404 "Cannot POST") are not logout calls.
func (s *Server) LogoutCalls(session string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[session]
}

// TotalLogoutCalls is LogoutCalls summed over all sessions.
func (s *Server) TotalLogoutCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

// CallsByStatus counts logout calls by the status answered; 0 counts
// connection resets, StatusClientClosed (499) calls the client abandoned.
func (s *Server) CallsByStatus() map[int]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[int]int, len(s.byStatus))
	for k, v := range s.byStatus {
		out[k] = v
	}
	return out
}

// InFlight is the number of logout calls being served right now.
func (s *Server) InFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inFlight
}

// MaxInFlight is the highest InFlight seen since the start or the last
// ResetMaxInFlight: the number a concurrency-cap test asserts on.
func (s *Server) MaxInFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxInFlight
}

// ResetMaxInFlight restarts MaxInFlight from the current InFlight.
func (s *Server) ResetMaxInFlight() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.maxInFlight = s.inFlight
}

// ResetStats zeroes the call counters and MaxInFlight.
func (s *Server) ResetStats() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = map[string]int{}
	s.total = 0
	s.byStatus = map[int]int{}
	s.maxInFlight = s.inFlight
}

// ---- HTTP side ----

// ServeHTTP routes like WAHA (NestJS on Express): the session routes under
// /api, the control API under /_fake/, and 404 "Cannot METHOD /path" for
// anything else.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.active++
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.active--
		s.mu.Unlock()
	}()

	path := r.URL.Path
	if path == "/_fake" || strings.HasPrefix(path, "/_fake/") {
		s.serveControl(w, r)
		return
	}
	segs := strings.Split(strings.Trim(path, "/"), "/")
	switch {
	case r.Method == http.MethodGet && len(segs) == 2 && segs[0] == "api" && segs[1] == "sessions":
		s.handleList(w, r)
		return
	case r.Method == http.MethodGet && len(segs) == 3 && segs[0] == "api" && segs[1] == "sessions" && segs[2] != "":
		s.handleGet(w, r, segs[2])
		return
	case r.Method == http.MethodPost && len(segs) == 3 && segs[0] == "api" && segs[1] == "sessions" && segs[2] == "logout" && !s.opts.NoDeprecatedRoute:
		s.serveLogout(w, r, "", true)
		return
	case r.Method == http.MethodPost && len(segs) == 4 && segs[0] == "api" && segs[1] == "sessions" && segs[2] != "" && segs[3] == "logout" && !s.opts.Legacy:
		s.serveLogout(w, r, segs[2], false)
		return
	}
	writeJSON(w, http.StatusNotFound, routeMissingBody{Message: "Cannot " + r.Method + " " + path, Error: "Not Found", StatusCode: 404})
}

// Bodies, with WAHA's key orders.
type (
	errorBody struct {
		StatusCode int    `json:"statusCode"`
		Message    any    `json:"message"`
		Error      string `json:"error"`
	}
	authBody struct {
		Message    string `json:"message"`
		StatusCode int    `json:"statusCode"`
	}
	routeMissingBody struct {
		Message    string `json:"message"`
		Error      string `json:"error"`
		StatusCode int    `json:"statusCode"`
	}
	wireSession struct {
		Name   string          `json:"name"`
		Status string          `json:"status"`
		Config json.RawMessage `json:"config"`
		Me     *wahaclient.Me  `json:"me"`
		Engine json.RawMessage `json:"engine,omitempty"`
	}
	internalErrorBody struct {
		StatusCode int    `json:"statusCode"`
		Timestamp  string `json:"timestamp"`
		Exception  struct {
			Message string `json:"message"`
			Name    string `json:"name"`
			Stack   string `json:"stack"`
		} `json:"exception"`
		Request struct {
			Path   string            `json:"path"`
			Method string            `json:"method"`
			Body   map[string]any    `json:"body"`
			Query  map[string]string `json:"query"`
		} `json:"request"`
		Version struct {
			Version string `json:"version"`
			Engine  string `json:"engine"`
			Tier    string `json:"tier"`
			Browser any    `json:"browser"`
		} `json:"version"`
	}
)

var nullJSON = json.RawMessage("null")

func engineOf(status string) json.RawMessage {
	if status == StatusStopped {
		return json.RawMessage(`{}`)
	}
	return json.RawMessage(`{"engine":"NOWEB"}`)
}

func copyMe(me *wahaclient.Me) *wahaclient.Me {
	if me == nil {
		return nil
	}
	cp := *me
	return &cp
}

func sessionNotFound(w http.ResponseWriter) int {
	writeJSON(w, http.StatusNotFound, errorBody{StatusCode: 404, Message: "Session not found", Error: "Not Found"})
	return http.StatusNotFound
}

func coreRejected(w http.ResponseWriter) int {
	writeJSON(w, http.StatusUnprocessableEntity, errorBody{StatusCode: 422, Message: CoreMessage, Error: "Unprocessable Entity"})
	return http.StatusUnprocessableEntity
}

func writeAuth(w http.ResponseWriter, status int) int {
	writeJSON(w, status, authBody{Message: http.StatusText(status), StatusCode: status})
	return status
}

// writeJSON writes like Express: no HTML escaping, no trailing newline.
func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
}

// authorize checks the key for an action on target ("" for the session list).
// It returns 0, 401 or 403.
func (s *Server) authorize(r *http.Request, target string) int {
	key := r.Header.Get("X-Api-Key")
	if key == "" {
		key = r.URL.Query().Get("x-api-key")
	}
	s.mu.Lock()
	required := s.apiKey
	scope, isScoped := s.scoped[key]
	s.mu.Unlock()
	if key != "" && isScoped {
		if target == "" || !scope[target] {
			return http.StatusForbidden
		}
		return 0
	}
	if required == "" || subtle.ConstantTimeCompare([]byte(key), []byte(required)) == 1 {
		return 0
	}
	return http.StatusUnauthorized
}

func (s *Server) handleList(w http.ResponseWriter, r *http.Request) {
	if st := s.authorize(r, ""); st != 0 {
		writeAuth(w, st)
		return
	}
	all := false
	if vals, ok := r.URL.Query()["all"]; ok {
		switch vals[0] {
		case "true", "True", "1":
			all = true
		case "false", "False", "0":
		default:
			writeJSON(w, http.StatusBadRequest, errorBody{StatusCode: 400, Message: []string{"all must be a boolean value"}, Error: "Bad Request"})
			return
		}
	}
	s.mu.Lock()
	out := make([]wireSession, 0, len(s.sessions))
	for _, sess := range s.sessions {
		if s.opts.Core && sess.name != DefaultSession {
			continue
		}
		if sess.status == StatusStopped && !all {
			continue
		}
		ws := wireSession{Name: sess.name, Status: sess.status, Config: nullJSON, Me: copyMe(sess.me)}
		if sess.status != StatusStopped {
			// A real list shows no engine for STOPPED sessions.
			ws.Engine = engineOf(sess.status)
		}
		out = append(out, ws)
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleGet(w http.ResponseWriter, r *http.Request, name string) {
	if st := s.authorize(r, name); st != 0 {
		writeAuth(w, st)
		return
	}
	if s.opts.Core && name != DefaultSession {
		coreRejected(w)
		return
	}
	s.mu.Lock()
	sess, ok := s.sessions[name]
	var ws wireSession
	if ok {
		ws = wireSession{Name: sess.name, Status: sess.status, Config: nullJSON, Me: copyMe(sess.me), Engine: engineOf(sess.status)}
	}
	s.mu.Unlock()
	if !ok {
		sessionNotFound(w)
		return
	}
	writeJSON(w, http.StatusOK, ws)
}

// serveLogout wraps both logout routes with the bookkeeping tests assert on.
// The counters are updated just before the answer is written (see
// trackedWriter), so a client that has its answer always sees them current,
// and a sequential client never shows up as two calls in flight.
func (s *Server) serveLogout(w http.ResponseWriter, r *http.Request, name string, deprecated bool) {
	s.mu.Lock()
	s.inFlight++
	s.maxInFlight = max(s.maxInFlight, s.inFlight)
	s.mu.Unlock()

	tw := &trackedWriter{ResponseWriter: w, s: s, name: name}
	if deprecated {
		s.logoutDeprecated(tw, r)
	} else {
		s.logoutCurrent(tw, r, name)
	}
	// Nothing was written: the client went away first.
	tw.finish(StatusClientClosed)
}

// trackedWriter records a logout call when its answer starts (or the
// connection is reset), not when the handler returns.
type trackedWriter struct {
	http.ResponseWriter
	s        *Server
	name     string
	finished bool
}

func (w *trackedWriter) finish(status int) {
	if w.finished {
		return
	}
	w.finished = true
	s := w.s
	s.mu.Lock()
	s.inFlight--
	s.calls[w.name]++
	s.total++
	s.byStatus[status]++
	s.mu.Unlock()
}

func (w *trackedWriter) WriteHeader(code int) {
	w.finish(code)
	w.ResponseWriter.WriteHeader(code)
}

func (w *trackedWriter) Write(b []byte) (int, error) {
	w.finish(http.StatusOK)
	return w.ResponseWriter.Write(b)
}

// Hijack is used by the Reset fault; the call is recorded with status 0.
func (w *trackedWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("wahafake: connection cannot be hijacked")
	}
	w.finish(0)
	return hj.Hijack()
}

// nextFault picks the fault for this call: the default fault, else the
// session's script, else its flakiness. It consumes one use.
func (s *Server) nextFault(name string) *Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f := s.defaultFault; f != nil {
		out := *f
		if f.Times > 0 {
			f.Times--
			if f.Times == 0 {
				s.defaultFault = nil
			}
		}
		return &out
	}
	if script := s.scripts[name]; len(script) > 0 {
		out := script[0]
		if script[0].Times > 0 {
			script[0].Times--
			if script[0].Times == 0 {
				script = script[1:]
			}
		}
		if len(script) == 0 {
			delete(s.scripts, name)
		} else {
			s.scripts[name] = script
		}
		return &out
	}
	if fl, ok := s.flaky[name]; ok && s.rng.Float64() < fl.rate {
		return &Fault{Status: fl.status}
	}
	return nil
}

// applyFault serves f if it ends the call; handled is false when the call
// should go on normally (no fault, or a delay-only fault).
func (s *Server) applyFault(w http.ResponseWriter, r *http.Request, f *Fault) (status int, handled bool) {
	if f == nil {
		return 0, false
	}
	if f.Delay > 0 && !sleepCtx(r, f.Delay) {
		return StatusClientClosed, true
	}
	if f.Reset {
		resetConn(w)
		return 0, true
	}
	if f.Status == 0 {
		return 0, false
	}
	if f.RetryAfter > 0 {
		w.Header().Set("Retry-After", retryAfterSeconds(f.RetryAfter))
	}
	writeFault(w, r, f)
	return f.Status, true
}

// resetConn closes the connection without an answer; SO_LINGER 0 makes the
// kernel send a RST, like a crashing process or a dropping proxy.
func resetConn(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		// Not hijackable (HTTP/2): the closest thing is to abort the handler.
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

func writeFault(w http.ResponseWriter, r *http.Request, f *Fault) {
	st := f.Status
	text := http.StatusText(st)
	if f.Message != "" {
		writeJSON(w, st, errorBody{StatusCode: st, Message: f.Message, Error: text})
		return
	}
	switch st {
	case http.StatusUnauthorized, http.StatusForbidden:
		writeAuth(w, st)
	case http.StatusNotFound:
		sessionNotFound(w)
	case http.StatusUnprocessableEntity:
		coreRejected(w)
	case http.StatusInternalServerError:
		var b internalErrorBody
		b.StatusCode = 500
		b.Timestamp = time.Now().UTC().Format("2006-01-02T15:04:05.000Z")
		b.Exception.Message = "Internal server error (scripted by wahafake)"
		b.Exception.Name = "Error"
		b.Exception.Stack = "Error: Internal server error (scripted by wahafake)\n    at SessionsController.logout"
		b.Request.Path = r.URL.Path
		b.Request.Method = r.Method
		b.Request.Body = map[string]any{}
		b.Request.Query = map[string]string{}
		b.Version.Version = "2024.10.8"
		b.Version.Engine = "NOWEB"
		b.Version.Tier = "CORE"
		writeJSON(w, st, b)
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(st)
		_, _ = fmt.Fprintf(w, "<html>\r\n<head><title>%d %s</title></head>\r\n<body>\r\n<center><h1>%d %s</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n", st, text, st, text)
	default:
		writeJSON(w, st, errorBody{StatusCode: st, Message: text, Error: text})
	}
}

// sleepCtx waits d or until the client goes away; false means it went away.
func sleepCtx(r *http.Request, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}

func (s *Server) logoutCurrent(w http.ResponseWriter, r *http.Request, name string) int {
	if st, handled := s.applyFault(w, r, s.nextFault(name)); handled {
		return st
	}
	if st := s.authorize(r, name); st != 0 {
		return writeAuth(w, st)
	}
	if s.opts.Core && name != DefaultSession {
		return coreRejected(w)
	}
	ws, st := s.doLogout(r, name, false)
	switch st {
	case http.StatusCreated:
		writeJSON(w, http.StatusCreated, ws)
	case http.StatusNotFound:
		sessionNotFound(w)
	}
	return st
}

func (s *Server) logoutDeprecated(w *trackedWriter, r *http.Request) (string, int) {
	var req struct {
		Name any `json:"name"`
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return "", StatusClientClosed
	}
	if len(bytes.TrimSpace(data)) > 0 {
		if err := json.Unmarshal(data, &req); err != nil {
			writeJSON(w, http.StatusBadRequest, errorBody{StatusCode: 400, Message: "Unexpected token in JSON body", Error: "Bad Request"})
			return "", http.StatusBadRequest
		}
	}
	name, _ := req.Name.(string)
	w.name = name
	if st, handled := s.applyFault(w, r, s.nextFault(name)); handled {
		return name, st
	}
	if st := s.authorize(r, name); st != 0 {
		return name, writeAuth(w, st)
	}
	if name == "" {
		writeJSON(w, http.StatusUnprocessableEntity, errorBody{StatusCode: 422, Message: "Session name is required", Error: "Unprocessable Entity"})
		return name, http.StatusUnprocessableEntity
	}
	if s.opts.Core && name != DefaultSession {
		return name, coreRejected(w)
	}
	_, st := s.doLogout(r, name, true)
	if st == StatusClientClosed {
		return name, st
	}
	// The deprecated route never answers 404: an unknown name is a no-op.
	w.WriteHeader(http.StatusCreated)
	return name, http.StatusCreated
}

// doLogout performs the logout under the session's lock. It returns the
// session after the logout and 201, or 404, or StatusClientClosed.
func (s *Server) doLogout(r *http.Request, name string, deleteAfter bool) (wireSession, int) {
	s.mu.Lock()
	sess, ok := s.sessions[name]
	s.mu.Unlock()
	if !ok {
		return wireSession{}, http.StatusNotFound
	}
	select {
	case sess.lock <- struct{}{}:
	case <-r.Context().Done():
		return wireSession{}, StatusClientClosed
	}
	defer func() { <-sess.lock }()

	s.mu.Lock()
	cur, ok := s.sessions[name]
	running := ok && cur.status != StatusStopped
	latency := s.latency
	s.mu.Unlock()
	if !ok {
		return wireSession{}, http.StatusNotFound
	}
	if running && !sleepCtx(r, latency) {
		// The client gave up: the logout is abandoned and the session unchanged.
		return wireSession{}, StatusClientClosed
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok = s.sessions[name]
	if !ok {
		return wireSession{}, http.StatusNotFound
	}
	cur.me = nil
	answer := cur.status
	if running {
		// Restarted from scratch: the answer says STARTING; the stored state
		// has already moved on to SCAN_QR_CODE so a later GET is deterministic.
		answer = StatusStarting
		cur.status = StatusScanQRCode
	}
	if deleteAfter {
		delete(s.sessions, name)
	}
	return wireSession{Name: cur.name, Status: answer, Config: nullJSON, Me: nil, Engine: engineOf(answer)}, http.StatusCreated
}
