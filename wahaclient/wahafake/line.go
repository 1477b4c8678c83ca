package wahafake

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// WAHA's current server line (2025-2026), as ../shared/waha-api.md
// describes it from WAHA's changelog, documentation and OpenAPI 2026.7.1.
// Options.CurrentLine switches the fake to it; the default stays the
// observed WAHA Core 2024.10.8. What the current line changes:
//
//   - Keys. Since 2025.10.3 a key is required: with none set, WAHA generates
//     a random one at start; the values "123", "admin", "waha" and a key of
//     only zeros ("00…00") count as unset. WAHA_NO_API_KEY=True
//     (Options.NoAPIKey) turns the check off. Missing or wrong key: 401
//     {"message":"Unauthorized","statusCode":401}. (2025.6.5 to 2025.10.2
//     checked a key only when one was set; 2024.10.x accepts any key.)
//   - Scoped keys. Keys API since 2026.1.4, per-session actions since
//     2026.4.3: read, send, control, setting, app, delete (delete off by
//     default). control covers start, stop, restart, logout, authenticate. A
//     key without the action, or for another session: 403
//     {"message":"Forbidden","statusCode":403}. Options.Keys and AddKey bind
//     a key to sessions and actions; listing sessions needs a key that is not
//     scoped to sessions.
//   - Routes. DELETE /api/sessions/{session}: 200, no body, "stop and logout
//     as well, idempotent" (needs delete under a scoped key). GET
//     /api/server/version and GET /api/version report the version.
//   - New answers. 501 when the session's engine does not implement the call
//     (2025.6.6+, a permanent refusal; Fault{Status: 501}). A 500
//     "async-lock timed out in queue <session>" when a session's operations
//     queue up past the lock's timeout (2025.6.3+, seen under load:
//     Options.LockTimeout, or Fault{LockTimeout: true}).

// WAHA's key actions (2026.4.3+).
const (
	ActionRead    = "read"
	ActionSend    = "send"
	ActionControl = "control"
	ActionSetting = "setting"
	ActionApp     = "app"
	ActionDelete  = "delete"
)

// Actions lists WAHA's key actions.
var Actions = []string{ActionRead, ActionSend, ActionControl, ActionSetting, ActionApp, ActionDelete}

// defaultActions is what a scoped key may do when no actions are named:
// WAHA's default, every action but delete.
var defaultActions = []string{ActionRead, ActionSend, ActionControl, ActionSetting, ActionApp}

// Versions the fake reports on GET /api/version and /api/server/version.
const (
	// ObservedVersion is the WAHA version the default fake copies.
	ObservedVersion = "2024.10.8"
	// CurrentVersion is the version a CurrentLine fake reports.
	CurrentVersion = "2026.7.1"
)

// Key is a session-scoped key, like the ones WAHA's Keys API (2026.1.4+)
// creates: bound to sessions and, since 2026.4.3, to actions.
type Key struct {
	// Key is the value sent in X-Api-Key. Required.
	Key string `json:"key"`
	// Sessions are the sessions it may touch. Empty means none: a scoped key
	// always names its sessions.
	Sessions []string `json:"sessions"`
	// Actions are what it may do (see Actions). Defaults to every action but
	// delete, WAHA's default.
	Actions []string `json:"actions,omitempty"`
}

func (k Key) validate() error {
	if k.Key == "" {
		return fmt.Errorf("a scoped key must not be empty")
	}
	if len(k.Sessions) == 0 {
		return fmt.Errorf("scoped key: name at least one session")
	}
	for _, a := range k.Actions {
		if !validAction(a) {
			return fmt.Errorf("scoped key: unknown action %q (want one of %s)", a, strings.Join(Actions, ", "))
		}
	}
	return nil
}

func validAction(a string) bool {
	for _, v := range Actions {
		if a == v {
			return true
		}
	}
	return false
}

// scope is a scoped key as the server keeps it.
type scope struct {
	sessions map[string]bool
	actions  map[string]bool
}

func newScope(sessions, actions []string) scope {
	if len(actions) == 0 {
		actions = defaultActions
	}
	sc := scope{sessions: map[string]bool{}, actions: map[string]bool{}}
	for _, s := range sessions {
		sc.sessions[s] = true
	}
	for _, a := range actions {
		sc.actions[a] = true
	}
	return sc
}

// AddKey adds or replaces a scoped key. It panics on an invalid key (a bug in
// the test); the control API checks first.
func (s *Server) AddKey(k Key) {
	if err := k.validate(); err != nil {
		panic("wahafake: AddKey: " + err.Error())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.scoped[k.Key] = newScope(k.Sessions, k.Actions)
}

// RemoveKey revokes a scoped key: it then answers 401 like any wrong key.
func (s *Server) RemoveKey(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.scoped, key)
}

// unsetKey reports whether WAHA (2025.10.3+) treats key as no key at all:
// empty, "123", "admin", "waha", or only zeros.
func unsetKey(key string) bool {
	switch key {
	case "", "123", "admin", "waha":
		return true
	}
	return strings.Trim(key, "0") == ""
}

// generateKey is what WAHA does at start when no usable key is set: a
// random key, printed in its log.
func generateKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// setKeyLocked sets the key as configured and the key the server then
// requires ("" accepts any): on the current line an unset key is replaced
// by a generated one, unless NoAPIKey.
func (s *Server) setKeyLocked(configured string) {
	s.configuredKey = configured
	switch {
	case !s.current:
		s.apiKey = configured
	case s.noAPIKey:
		s.apiKey = ""
	case unsetKey(configured):
		s.apiKey = generateKey()
	default:
		s.apiKey = configured
	}
}

// SetLine switches the fake between WAHA's current line (current true;
// noAPIKey is WAHA_NO_API_KEY=True) and the observed 2024.10.8, as
// Options.CurrentLine and Options.NoAPIKey do at start. The required key
// is worked out again from the configured one.
func (s *Server) SetLine(current, noAPIKey bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.current, s.noAPIKey = current, noAPIKey
	s.setKeyLocked(s.configuredKey)
}

// CurrentLine reports whether the fake plays WAHA's current line.
func (s *Server) CurrentLine() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.current
}

// SetLockTimeout changes Options.LockTimeout (0: wait as long as the client).
func (s *Server) SetLockTimeout(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lockTimeout = max(d, 0)
}

// APIKey returns the key the server requires, "" when it accepts any: on
// the current line without a usable key, the one it generated (WAHA prints
// it in its log at start; the fake's control API answers it at
// GET /_fake/line).
func (s *Server) APIKey() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.apiKey
}

// authorize checks the key for an action on target ("" with action "" for
// the session list, "" with ActionRead for the server's version). It
// returns 0, 401 or 403.
func (s *Server) authorize(r *http.Request, target, action string) int {
	key := r.Header.Get("X-Api-Key")
	if key == "" {
		key = r.URL.Query().Get("x-api-key")
	}
	s.mu.Lock()
	required := s.apiKey
	sc, isScoped := s.scoped[key]
	s.mu.Unlock()
	if key != "" && isScoped {
		switch {
		case target == "" && action == ActionRead:
			return 0 // any valid key reads the version
		case target == "" || !sc.sessions[target] || !sc.actions[action]:
			return http.StatusForbidden
		}
		return 0
	}
	if required == "" || subtle.ConstantTimeCompare([]byte(key), []byte(required)) == 1 {
		return 0
	}
	return http.StatusUnauthorized
}

// versionBody is GET /api/version's answer.
type versionBody struct {
	Version string `json:"version"`
	Engine  string `json:"engine"`
	Tier    string `json:"tier"`
	Browser any    `json:"browser"`
}

func (s *Server) version() versionBody {
	v := versionBody{Version: ObservedVersion, Engine: "NOWEB", Tier: "PLUS"}
	if s.opts.Core {
		v.Tier = "CORE"
	}
	if s.CurrentLine() {
		v.Version = CurrentVersion
	}
	return v
}

// currentOnly serves h on the current line; on 2024.10 the route does not
// exist (404 "Cannot METHOD /path").
func (s *Server) currentOnly(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.CurrentLine() {
			routeMissing(w, r)
			return
		}
		h(w, r)
	}
}

// handleVersion serves GET /api/version (both lines) and GET
// /api/server/version (current line).
func (s *Server) handleVersion(w http.ResponseWriter, r *http.Request) {
	if st := s.authorize(r, "", ActionRead); st != 0 {
		writeAuth(w, st)
		return
	}
	writeJSON(w, http.StatusOK, s.version())
}

// handleDelete serves DELETE /api/sessions/{session} (current line): stop
// and log out as well, then delete; 200 with no body; idempotent (an
// unknown session answers 200 too). Faults apply as to logouts, and it is
// counted as a logout call.
func (s *Server) handleDelete(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("session")
	s.mu.Lock()
	s.inFlight++
	s.maxInFlight = max(s.maxInFlight, s.inFlight)
	s.mu.Unlock()
	tw := &trackedWriter{ResponseWriter: w, s: s, name: name}
	defer tw.finish(StatusClientClosed)
	if _, handled := s.applyFault(tw, r, name, s.nextFault(name)); handled {
		return
	}
	if st := s.authorize(r, name, ActionDelete); st != 0 {
		writeAuth(tw, st)
		return
	}
	if s.opts.Core && name != DefaultSession {
		coreRejected(tw)
		return
	}
	_, st := s.doLogout(r, name, true)
	switch st {
	case StatusClientClosed:
		return
	case statusCrashed:
		resetConn(tw)
		return
	case statusLockTimeout:
		writeLockTimeout(tw, r, name)
		return
	}
	tw.WriteHeader(http.StatusOK)
}

// statusLockTimeout is doLogout's answer when the session's lock was not
// free within Options.LockTimeout.
const statusLockTimeout = -2

// writeLockTimeout answers like WAHA when a session's operations queue up
// past its lock's timeout: an unhandled error, so NestJS's 500 body with
// the exception's message "async-lock timed out in queue <session>".
func writeLockTimeout(w http.ResponseWriter, r *http.Request, session string) {
	writeInternalError(w, r, "async-lock timed out in queue "+session)
}

// writeInternalError writes NestJS's body for an unhandled error.
func writeInternalError(w http.ResponseWriter, r *http.Request, msg string) {
	var b internalErrorBody
	b.StatusCode = http.StatusInternalServerError
	b.Timestamp = time.Now().UTC().Format("2006-01-02T15:04:05.000Z")
	b.Exception.Message = msg
	b.Exception.Name = "Error"
	b.Exception.Stack = "Error: " + msg + "\n    at SessionsController.logout"
	b.Request.Path = r.URL.Path
	b.Request.Method = r.Method
	b.Request.Body = map[string]any{}
	b.Request.Query = map[string]string{}
	b.Version.Version = ObservedVersion
	b.Version.Engine = "NOWEB"
	b.Version.Tier = "CORE"
	writeJSON(w, http.StatusInternalServerError, b)
}

// notImplementedMessage is WAHA's NotImplementedByEngineError, which
// NestJS answers as 501.
const notImplementedMessage = "The method is not implemented by 'NOWEB' engine. Check the docs and try another engine: https://waha.devlike.pro/"
