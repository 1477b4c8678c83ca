package wahafake

import (
	"fmt"
	"sort"
	"time"

	"github.com/wahaq/wahaq/wahaclient"
)

type session struct {
	name   string
	status string
	me     *wahaclient.Me
	// lock serialises logouts of one session, like WAHA's per-session lock. A
	// channel rather than a mutex so a waiter can give up when its client does.
	lock chan struct{}
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
	sess, ok := s.lookupLocked(name)
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
// rotated key. On the current line an unset key ("", "123", "admin",
// "waha", only zeros) makes the server generate one, as WAHA does at
// start; APIKey returns it.
func (s *Server) SetAPIKey(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.setKeyLocked(key)
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

// ResetStats zeroes the call counters, ConcurrentSameSession and MaxInFlight.
func (s *Server) ResetStats() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = map[string]int{}
	s.total = 0
	s.byStatus = map[int]int{}
	s.maxInFlight = s.inFlight
	s.concurrent = 0
}

// ConcurrentSameSession counts logout calls that reached a session while
// another logout of the same session was in progress (since the start or the
// last ResetStats). Two at once crashed a real WAHA, so a client must keep it
// at 0; tests assert that.
func (s *Server) ConcurrentSameSession() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.concurrent
}
