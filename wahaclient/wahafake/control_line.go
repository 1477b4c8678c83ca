package wahafake

import (
	"net/http"
	"strings"
)

// The current line's part of the control API (control.go), kept apart so
// that the fake's other features can grow the control API beside it:
//
//	GET    /_fake/line        -> {"current_line":true,"no_api_key":false,"api_key":"…","lock_timeout":"0s","version":"2026.7.1"}
//	POST   /_fake/line        {"current_line":true,"no_api_key":false,"lock_timeout":"2s"}  (fields left out stay)  -> same as GET
//	POST   /_fake/keys        {"key":"sk","sessions":["a"],"actions":["read","control"]}  (actions default: all but delete)
//	DELETE /_fake/keys/{key}
const lineControlHelp = `GET    /_fake/line             -> {"current_line":true,"no_api_key":false,"api_key":"...","lock_timeout":"0s","version":"2026.7.1"}
POST   /_fake/line             {"current_line":true,"no_api_key":false,"lock_timeout":"2s"}   (fields left out stay)
POST   /_fake/keys             {"key":"sk","sessions":["a"],"actions":["read","control"]}   (actions default: all but delete)
DELETE /_fake/keys/{key}
`

// lineState is the body of GET /_fake/line. It carries the key the server
// requires: a test harness needs the one WAHA generated, and the control
// API is the fake's own, never WAHA's.
type lineState struct {
	CurrentLine bool     `json:"current_line"`
	NoAPIKey    bool     `json:"no_api_key"`
	APIKey      string   `json:"api_key"`
	LockTimeout duration `json:"lock_timeout"`
	Version     string   `json:"version"`
}

func (s *Server) lineState() lineState {
	s.mu.Lock()
	st := lineState{CurrentLine: s.current, NoAPIKey: s.noAPIKey, APIKey: s.apiKey, LockTimeout: duration(s.lockTimeout)}
	s.mu.Unlock()
	st.Version = s.version().Version
	return st
}

// serveLineControl serves the endpoints above; it reports false for a
// path that is not one of them.
func (s *Server) serveLineControl(w http.ResponseWriter, r *http.Request, path string, decode func(any) bool) bool {
	switch {
	case path == "/line" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, s.lineState())
	case path == "/line" && r.Method == http.MethodPost:
		var req struct {
			CurrentLine *bool     `json:"current_line"`
			NoAPIKey    *bool     `json:"no_api_key"`
			LockTimeout *duration `json:"lock_timeout"`
		}
		if !decode(&req) {
			return true
		}
		if req.LockTimeout != nil && *req.LockTimeout < 0 {
			controlFail(w, http.StatusBadRequest, `lock_timeout must not be negative, e.g. "2s"`)
			return true
		}
		cur := s.lineState()
		if req.CurrentLine != nil {
			cur.CurrentLine = *req.CurrentLine
		}
		if req.NoAPIKey != nil {
			cur.NoAPIKey = *req.NoAPIKey
		}
		s.SetLine(cur.CurrentLine, cur.NoAPIKey)
		if req.LockTimeout != nil {
			s.SetLockTimeout(timeDuration(*req.LockTimeout))
		}
		writeJSON(w, http.StatusOK, s.lineState())
	case path == "/line":
		w.Header().Set("Allow", "GET, POST")
		controlFail(w, http.StatusMethodNotAllowed, "%s %s needs GET or POST", r.Method, r.URL.Path)
	case path == "/keys":
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			controlFail(w, http.StatusMethodNotAllowed, "%s %s needs POST", r.Method, r.URL.Path)
			return true
		}
		var k Key
		if !decode(&k) {
			return true
		}
		if err := k.validate(); err != nil {
			controlFail(w, http.StatusBadRequest, "%v", err)
			return true
		}
		s.AddKey(k)
		controlOK(w)
	case strings.HasPrefix(path, "/keys/"):
		if r.Method != http.MethodDelete {
			w.Header().Set("Allow", http.MethodDelete)
			controlFail(w, http.StatusMethodNotAllowed, "%s %s needs DELETE", r.Method, r.URL.Path)
			return true
		}
		s.RemoveKey(strings.TrimPrefix(path, "/keys/"))
		controlOK(w)
	default:
		return false
	}
	return true
}
