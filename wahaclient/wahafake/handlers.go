package wahafake

import (
	"net/http"
	"strings"
)

// routes builds the WAHA side on a ServeMux, the way NestJS on Express
// routes it: the session routes under /api, the control API under /_fake/,
// and 404 "Cannot METHOD /path" for anything else (the "/" pattern matches
// every method, so a known path with the wrong method is a 404 too, not the
// mux's 405). Legacy and NoDeprecatedRoute leave a route out, which is how
// those servers answer it.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/_fake", s.serveControl)
	mux.HandleFunc("/_fake/", s.serveControl)
	mux.HandleFunc("GET /api/sessions", s.handleList)
	// Express matches routes without strict trailing slashes.
	mux.HandleFunc("GET /api/sessions/{$}", s.handleList)
	mux.HandleFunc("GET /api/sessions/{session}", s.handleGet)
	if !s.opts.Legacy {
		mux.HandleFunc("POST /api/sessions/{session}/logout", func(w http.ResponseWriter, r *http.Request) {
			s.serveLogout(w, r, r.PathValue("session"), false)
		})
	}
	if !s.opts.NoDeprecatedRoute {
		mux.HandleFunc("POST /api/sessions/logout", func(w http.ResponseWriter, r *http.Request) {
			s.serveLogout(w, r, "", true)
		})
	}
	// GET /api/version answered on 2024.10 too; /api/server/version and
	// DELETE /api/sessions/{session} are the current line's.
	mux.HandleFunc("GET /api/version", s.handleVersion)
	mux.HandleFunc("GET /api/server/version", s.currentOnly(s.handleVersion))
	mux.HandleFunc("DELETE /api/sessions/{session}", s.currentOnly(s.handleDelete))
	mux.HandleFunc("/", routeMissing)
	return mux
}

// ServeHTTP serves the routes (see routes), counting active requests so
// Close can wait for them, with the headers every Express answer carries.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.active++
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.active--
		s.mu.Unlock()
	}()
	if !strings.HasPrefix(r.URL.Path, "/_fake") {
		expressHeaders(w.Header())
	}
	s.mux.ServeHTTP(w, r)
}

// routeMissing is NestJS's answer for a route the server does not have: that
// is how an old server says it lacks the current logout route.
func routeMissing(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusNotFound, errorBody{StatusCode: 404, Message: "Cannot " + r.Method + " " + r.URL.Path, Error: "Not Found"})
}

func (s *Server) handleList(w http.ResponseWriter, r *http.Request) {
	if st := s.authorize(r, "", ""); st != 0 {
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
	s.listing(w, all)
}

func (s *Server) handleGet(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("session")
	if st := s.authorize(r, name, ActionRead); st != 0 {
		writeAuth(w, st)
		return
	}
	// On Core only the logout route answers 422 for another name; GET says
	// 404 like for any unknown session (observed on Core 2024.10.8).
	if s.opts.Core && name != DefaultSession {
		sessionNotFound(w)
		return
	}
	s.mu.Lock()
	sess, ok := s.lookupLocked(name)
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
