package wahafake

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
)

// Big and broken listings. A real WAHA with hundreds of thousands of
// sessions answers GET /api/sessions with one long array; the fake can serve
// such a listing without holding it (GenerateSessions), and can put entries
// a real server should never send in it (InjectListEntries), to test how a
// client copes with both.

// BadListEntries are listing entries that are not sessions a client may log
// out: not an object, a null name, and names that break WAHA's rule.
var BadListEntries = []string{
	`42`,
	`"default"`,
	`{"name":null,"status":"WORKING","config":null,"me":null}`,
	`{"status":"WORKING","config":null,"me":null}`,
	`{"name":"../etc","status":"WORKING","config":null,"me":null}`,
	`{"name":"a/b","status":"WORKING","config":null,"me":null}`,
	`{"name":"odd-status","status":"not a status!","config":null,"me":null}`,
}

// generated describes sessions that exist without being stored: the names
// prefix-0000001 ... prefix-<n>, all in one status until a logout or GET
// touches one (it is then stored like any other).
type generated struct {
	prefix string
	n      int
	status string
}

// GenerateSessions makes n further sessions exist, named prefix-0000001 to
// prefix-<n> (seven digits), in status (empty means STOPPED). They cost no
// memory until a logout or GET touches one: the listing writes them while it
// is sent, so a test can list 800,000 sessions from a fake that holds a
// handful. n = 0 removes them. It panics on a prefix that makes invalid
// names.
func (s *Server) GenerateSessions(prefix string, n int, status string) {
	if n > 0 && (prefix == "" || strings.ContainsAny(prefix, "/?#% \"\\")) {
		panic("wahafake: GenerateSessions: the prefix must be a plain session-name prefix")
	}
	if status == "" {
		status = StatusStopped
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen = generated{prefix: prefix, n: max(n, 0), status: status}
}

// InjectListEntries puts raw JSON values (see BadListEntries) at the start
// of every session listing, with or without ?all; none clears them. A real
// WAHA never sends such entries; this tests that a client skips them. It
// panics on a value that is not JSON.
func (s *Server) InjectListEntries(raw ...string) {
	for _, r := range raw {
		if !json.Valid([]byte(r)) {
			panic("wahafake: InjectListEntries: not JSON: " + r)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.injected = append([]string(nil), raw...)
}

// generatedName reports whether name is one of the generated sessions.
func (g generated) has(name string) bool {
	digits, ok := strings.CutPrefix(name, g.prefix+"-")
	if g.n == 0 || !ok || len(digits) != 7 {
		return false
	}
	i, err := strconv.Atoi(digits)
	return err == nil && i >= 1 && i <= g.n
}

func (g generated) name(i int) string { return fmt.Sprintf("%s-%07d", g.prefix, i) }

// lookupLocked finds a session, storing a generated one on first use.
// s.mu must be held.
func (s *Server) lookupLocked(name string) (*session, bool) {
	if sess, ok := s.sessions[name]; ok {
		return sess, true
	}
	if s.opts.Core || !s.gen.has(name) {
		return nil, false
	}
	s.addSessionLocked(name, s.gen.status)
	return s.sessions[name], true
}

// streamList writes a listing with generated sessions or injected entries
// entry by entry. Without a known length it has no ETag (a real Express
// computes one over the whole body; a client must not depend on it).
func (s *Server) streamList(w http.ResponseWriter, stored []wireSession, injected []string, all bool) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 64<<10)
	first := true
	put := func(b []byte) {
		if !first {
			_ = bw.WriteByte(',')
		}
		first = false
		_, _ = bw.Write(b)
	}
	_ = bw.WriteByte('[')
	for _, raw := range injected {
		put([]byte(raw))
	}
	for _, ws := range stored {
		b, _ := json.Marshal(ws)
		put(b)
	}
	s.mu.Lock()
	g := s.gen
	s.mu.Unlock()
	var buf []byte
	for i := 1; i <= g.n; i++ {
		name := g.name(i)
		status := g.status
		s.mu.Lock()
		if sess, ok := s.sessions[name]; ok {
			status = sess.status
		}
		s.mu.Unlock()
		if status == StatusStopped && !all {
			continue
		}
		buf = append(buf[:0], `{"name":"`...)
		buf = append(buf, name...)
		buf = append(buf, `","status":"`...)
		buf = append(buf, status...)
		buf = append(buf, `","config":null,"me":null}`...)
		put(buf)
	}
	_ = bw.WriteByte(']')
	_ = bw.Flush()
}

// listing is handleList's answer: the stored sessions (without the
// generated ones touched so far, which the generated part lists), sorted.
func (s *Server) listing(w http.ResponseWriter, all bool) {
	s.mu.Lock()
	out := make([]wireSession, 0, len(s.sessions))
	for _, sess := range s.sessions {
		if s.opts.Core && sess.name != DefaultSession {
			continue
		}
		if sess.status == StatusStopped && !all {
			continue
		}
		if s.gen.has(sess.name) {
			continue
		}
		// A real list carries no engine key, even for a running session;
		// only GET of one session shows it.
		out = append(out, wireSession{Name: sess.name, Status: sess.status, Config: nullJSON, Me: copyMe(sess.me)})
	}
	injected, streamed := s.injected, s.gen.n > 0 || len(s.injected) > 0
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	if streamed && !s.opts.Core {
		s.streamList(w, out, injected, all)
		return
	}
	writeJSON(w, http.StatusOK, out)
}
