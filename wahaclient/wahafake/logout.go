package wahafake

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

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

func (s *Server) logoutCurrent(w http.ResponseWriter, r *http.Request, name string) int {
	if st, handled := s.applyFault(w, r, name, s.nextFault(name)); handled {
		return st
	}
	if st := s.authorize(r, name, ActionControl); st != 0 {
		return writeAuth(w, st)
	}
	if s.opts.Core && name != DefaultSession {
		return coreRejected(w)
	}
	ws, st := s.doLogout(r, name, false)
	switch st {
	case statusCrashed:
		resetConn(w)
		return 0
	case statusLockTimeout:
		writeLockTimeout(w, r, name)
		return http.StatusInternalServerError
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
		if err := parseJSONObject(data, &req); err != nil {
			writeJSON(w, http.StatusBadRequest, errorBody{StatusCode: 400, Message: unexpectedToken(data, err), Error: "Bad Request"})
			return "", http.StatusBadRequest
		}
	}
	name, _ := req.Name.(string)
	w.name = name
	if st, handled := s.applyFault(w, r, name, s.nextFault(name)); handled {
		return name, st
	}
	if st := s.authorize(r, name, ActionControl); st != 0 {
		return name, writeAuth(w, st)
	}
	// Core checks the name against "default" first, so {} gets the Core
	// message there and "name is required" only on Plus.
	if s.opts.Core && name != DefaultSession {
		return name, coreRejected(w)
	}
	if name == "" {
		writeJSON(w, http.StatusUnprocessableEntity, errorBody{StatusCode: 422, Message: "Session name is required", Error: "Unprocessable Entity"})
		return name, http.StatusUnprocessableEntity
	}
	_, st := s.doLogout(r, name, true)
	switch st {
	case StatusClientClosed:
		return name, st
	case statusCrashed:
		resetConn(w)
		return name, 0
	case statusLockTimeout:
		writeLockTimeout(w, r, name)
		return name, http.StatusInternalServerError
	}
	// The deprecated route never answers 404: an unknown name is a no-op.
	w.WriteHeader(http.StatusCreated)
	return name, http.StatusCreated
}

// doLogout performs the logout under the session's lock. It returns the
// session after the logout and 201, or 404, or StatusClientClosed, or
// statusCrashed when CrashOnConcurrentLogout drops this call, or
// statusLockTimeout when the lock was not free within Options.LockTimeout.
func (s *Server) doLogout(r *http.Request, name string, deleteAfter bool) (wireSession, int) {
	s.mu.Lock()
	sess, ok := s.lookupLocked(name)
	s.mu.Unlock()
	if !ok {
		return wireSession{}, http.StatusNotFound
	}
	if s.enterLogout(name, sess) {
		return wireSession{}, statusCrashed
	}
	defer s.leaveLogout(name)
	var timeout <-chan time.Time
	s.mu.Lock()
	lockTimeout := s.lockTimeout
	s.mu.Unlock()
	if lockTimeout > 0 {
		t := time.NewTimer(lockTimeout)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case sess.lock <- struct{}{}:
	case <-timeout:
		return wireSession{}, statusLockTimeout
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
	if running {
		// webhook.go: what a real server emits (nothing for a STOPPED one)
		if deleteAfter {
			s.statusChanged(name, nil, StatusStopped)
		} else {
			s.statusChanged(name, nil, StatusStopped, StatusStarting)
			s.statusChangedAfter(qrDelay, name, StatusScanQRCode)
		}
	}
	return wireSession{Name: cur.name, Status: answer, Config: nullJSON, Me: nil, Engine: engineOf(answer)}, http.StatusCreated
}

// parseJSONObject decodes body like Express's strict JSON body parser: only
// an object or an array is accepted.
func parseJSONObject(data []byte, v any) error {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) > 0 && trimmed[0] != '{' && trimmed[0] != '[' {
		return &json.SyntaxError{Offset: int64(len(data)-len(trimmed)) + 1}
	}
	return json.Unmarshal(data, v)
}

// unexpectedToken renders a parse error the way the body parser (Node's
// JSON.parse) words it: "Unexpected token o in JSON at position 1".
func unexpectedToken(data []byte, err error) string {
	pos := 0
	var se *json.SyntaxError
	if errors.As(err, &se) && se.Offset > 0 {
		pos = int(se.Offset) - 1
	}
	if pos >= len(data) {
		return "Unexpected end of JSON input"
	}
	return fmt.Sprintf("Unexpected token %c in JSON at position %d", data[pos], pos)
}

// statusCrashed is doLogout's answer when CrashOnConcurrentLogout drops the
// call: the caller resets the connection (recorded as status 0).
const statusCrashed = -1

// enterLogout records a logout of name reaching the session (past faults and
// authentication). A second one while another is in progress is what crashed
// a real WAHA (two concurrent logouts of one running session); it is counted
// in ConcurrentSameSession, and with CrashOnConcurrentLogout a running
// session's later call is dropped. It reports whether to drop this call.
func (s *Server) enterLogout(name string, sess *session) (drop bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.logouts[name]++
	if s.logouts[name] > 1 {
		s.concurrent++
		drop = s.opts.CrashOnConcurrentLogout && sess.status != StatusStopped
	}
	if drop {
		s.leaveLogoutLocked(name)
	}
	return drop
}

func (s *Server) leaveLogout(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.leaveLogoutLocked(name)
}

func (s *Server) leaveLogoutLocked(name string) {
	if s.logouts[name]--; s.logouts[name] <= 0 {
		delete(s.logouts, name)
	}
}
