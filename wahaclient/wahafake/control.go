package wahafake

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/wahaq/wahaq/wahaclient"
)

// The control API lives under /_fake/. It is not part of WAHA: it lets shell
// scripts and tests in other processes drive the fake. It never requires the
// API key. Requests are JSON; unknown keys are rejected (400) so typos show.
//
//	GET  /_fake/                 this list, as text
//	POST /_fake/script           {"session":"x","faults":[{"status":503,"times":3}]}  (empty faults clear)
//	POST /_fake/default-fault    {"status":401}  or  null to clear
//	POST /_fake/flaky            {"session":"x","rate":0.3,"status":503}
//	POST /_fake/api-key          {"key":"K"}  ("" accepts any key)
//	POST /_fake/latency          {"latency":"3s"}
//	POST /_fake/sessions         {"prefix":"s","count":100,"status":"WORKING"}  or  {"name":"x","status":"STOPPED"}
//	                             -> {"names":[...]}
//	POST /_fake/generate         {"prefix":"gen","count":800000,"status":"STOPPED"}  (listed, never stored)
//	POST /_fake/list-entries     {"entries":[42,{"name":"../etc","status":"WORKING"}]}  (bad entries first in every listing)
//	DELETE /_fake/sessions/{name}
//	GET  /_fake/stats            -> {"logout_calls":{"s":1},"total_logout_calls":N,"max_in_flight":N,
//	                                 "in_flight":N,"calls_by_status":{"201":N},
//	                                 "concurrent_same_session":N}
//	POST /_fake/reset-stats
//	POST /_fake/webhook          {"url":"http://...","hmac_key":"K","duplicates":1}  (webhook.go; {} turns them off)
//	GET  /_fake/webhook          -> {"events":N,"posts":N,"delivered":N,"failed":N,"dropped":N}
const controlHelp = `wahafake control API (not part of WAHA; never needs the API key)
GET    /_fake/                 this text
POST   /_fake/script           {"session":"x","faults":[{"status":503,"times":3,"retry_after":"2s","delay":"1s","reset":false}]}
POST   /_fake/default-fault    {"status":401}   or   null to clear
POST   /_fake/flaky            {"session":"x","rate":0.3,"status":503}
POST   /_fake/api-key          {"key":"K"}
POST   /_fake/latency          {"latency":"3s"}
POST   /_fake/sessions         {"prefix":"s","count":100,"status":"WORKING"}   or   {"name":"x","status":"STOPPED"}
POST   /_fake/generate         {"prefix":"gen","count":800000,"status":"STOPPED"}
POST   /_fake/list-entries     {"entries":[42,{"name":"../etc","status":"WORKING"}]}
DELETE /_fake/sessions/{name}
GET    /_fake/stats
POST   /_fake/reset-stats
POST   /_fake/webhook          {"url":"http://...","hmac_key":"K","core":false,"attempts":5,"backoff":"100ms","duplicates":0}
GET    /_fake/webhook          -> {"events":N,"posts":N,"delivered":N,"failed":N,"dropped":N}
` + lineControlHelp

// Stats is the body of GET /_fake/stats.
type Stats struct {
	// LogoutCalls counts logout calls per session name.
	LogoutCalls map[string]int `json:"logout_calls"`
	// TotalLogoutCalls is their sum.
	TotalLogoutCalls int `json:"total_logout_calls"`
	// MaxInFlight is the highest number of concurrent logout calls seen.
	MaxInFlight int `json:"max_in_flight"`
	// InFlight is the number of logout calls being served now.
	InFlight int `json:"in_flight"`
	// CallsByStatus counts logout calls by answered status ("0" = reset).
	CallsByStatus map[string]int `json:"calls_by_status"`
	// ConcurrentSameSession counts logouts that overlapped another logout
	// of the same session (see Server.ConcurrentSameSession).
	ConcurrentSameSession int `json:"concurrent_same_session"`
}

// Stats returns the counters in the control API's shape.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{
		LogoutCalls:      make(map[string]int, len(s.calls)),
		TotalLogoutCalls: s.total,
		MaxInFlight:      s.maxInFlight,
		InFlight:         s.inFlight,
		CallsByStatus:    make(map[string]int, len(s.byStatus)),

		ConcurrentSameSession: s.concurrent,
	}
	for k, v := range s.calls {
		st.LogoutCalls[k] = v
	}
	for k, v := range s.byStatus {
		st.CallsByStatus[strconv.Itoa(k)] = v
	}
	return st
}

func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("unexpected data after the JSON value")
	}
	return nil
}

type controlError struct {
	Error string `json:"error"`
}

func controlFail(w http.ResponseWriter, status int, format string, args ...any) {
	writeJSON(w, status, controlError{Error: fmt.Sprintf(format, args...)})
}

func controlOK(w http.ResponseWriter) { writeJSON(w, http.StatusOK, map[string]bool{"ok": true}) }

func (s *Server) serveControl(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/_fake"), "/")
	var body []byte
	if r.Body != nil {
		var err error
		body, err = io.ReadAll(io.LimitReader(r.Body, 8<<20))
		if err != nil {
			controlFail(w, http.StatusBadRequest, "cannot read the body: %v", err)
			return
		}
	}
	decode := func(v any) bool {
		if len(bytes.TrimSpace(body)) == 0 {
			controlFail(w, http.StatusBadRequest, "a JSON body is required")
			return false
		}
		if err := decodeStrict(body, v); err != nil {
			controlFail(w, http.StatusBadRequest, "bad JSON body: %v", err)
			return false
		}
		return true
	}
	want := func(method string) bool {
		if r.Method != method {
			w.Header().Set("Allow", method)
			controlFail(w, http.StatusMethodNotAllowed, "%s %s needs %s", r.Method, r.URL.Path, method)
			return false
		}
		return true
	}

	switch {
	case path == "":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, controlHelp)
	case path == "/script":
		var req struct {
			Session string  `json:"session"`
			Faults  []Fault `json:"faults"`
		}
		if !want(http.MethodPost) || !decode(&req) {
			return
		}
		if req.Session == "" {
			controlFail(w, http.StatusBadRequest, "session is required")
			return
		}
		s.Script(req.Session, req.Faults...)
		controlOK(w)
	case path == "/default-fault":
		var f *Fault
		if !want(http.MethodPost) || !decode(&f) {
			return
		}
		s.SetDefaultFault(f)
		controlOK(w)
	case path == "/flaky":
		var req struct {
			Session string  `json:"session"`
			Rate    float64 `json:"rate"`
			Status  int     `json:"status"`
		}
		if !want(http.MethodPost) || !decode(&req) {
			return
		}
		if err := (Fault{Status: req.Status}).validate(); err != nil || req.Session == "" || req.Rate > 1 {
			controlFail(w, http.StatusBadRequest, "need a session, a rate between 0 and 1 and an HTTP status (0 means 503)")
			return
		}
		s.SetFlaky(req.Session, req.Rate, req.Status)
		controlOK(w)
	case path == "/api-key":
		var req struct {
			Key *string `json:"key"`
		}
		if !want(http.MethodPost) || !decode(&req) {
			return
		}
		if req.Key == nil {
			controlFail(w, http.StatusBadRequest, `key is required ("" accepts any key)`)
			return
		}
		s.SetAPIKey(*req.Key)
		controlOK(w)
	case path == "/latency":
		var req struct {
			Latency *duration `json:"latency"`
		}
		if !want(http.MethodPost) || !decode(&req) {
			return
		}
		if req.Latency == nil || *req.Latency < 0 {
			controlFail(w, http.StatusBadRequest, `latency is required, e.g. "3s"`)
			return
		}
		s.SetLogoutLatency(timeDuration(*req.Latency))
		controlOK(w)
	case path == "/sessions":
		var req struct {
			Prefix string `json:"prefix"`
			Count  int    `json:"count"`
			Name   string `json:"name"`
			Status string `json:"status"`
		}
		if !want(http.MethodPost) || !decode(&req) {
			return
		}
		var names []string
		switch {
		case req.Name != "" && req.Prefix == "" && req.Count == 0:
			s.AddSession(req.Name, req.Status)
			names = []string{req.Name}
		case req.Name == "" && req.Prefix != "" && req.Count > 0 && req.Count <= 1_000_000:
			names = s.AddSessions(req.Prefix, req.Count, req.Status)
		default:
			controlFail(w, http.StatusBadRequest, `give either {"name":...} or {"prefix":...,"count":1..1000000}`)
			return
		}
		writeJSON(w, http.StatusOK, map[string][]string{"names": names})
	case path == "/generate":
		var req struct {
			Prefix string `json:"prefix"`
			Count  int    `json:"count"`
			Status string `json:"status"`
		}
		if !want(http.MethodPost) || !decode(&req) {
			return
		}
		if req.Count < 0 || req.Count > 9_999_999 || (req.Count > 0 && wahaclient.ValidateSessionName(req.Prefix+"-0000001") != nil) {
			controlFail(w, http.StatusBadRequest, `give {"prefix":"gen","count":0..9999999,"status":"STOPPED"} with a prefix that makes valid session names`)
			return
		}
		s.GenerateSessions(req.Prefix, req.Count, req.Status)
		controlOK(w)
	case path == "/list-entries":
		var req struct {
			Entries []json.RawMessage `json:"entries"`
		}
		if !want(http.MethodPost) || !decode(&req) {
			return
		}
		raw := make([]string, len(req.Entries))
		for i, e := range req.Entries {
			raw[i] = string(e)
		}
		s.InjectListEntries(raw...)
		controlOK(w)
	case strings.HasPrefix(path, "/sessions/"):
		if !want(http.MethodDelete) {
			return
		}
		s.RemoveSession(strings.TrimPrefix(path, "/sessions/"))
		controlOK(w)
	case path == "/webhook":
		s.controlWebhook(w, r, body)
	case path == "/stats":
		if !want(http.MethodGet) {
			return
		}
		writeJSON(w, http.StatusOK, s.Stats())
	case path == "/reset-stats":
		if !want(http.MethodPost) {
			return
		}
		s.ResetStats()
		controlOK(w)
	default:
		if s.serveLineControl(w, r, path, decode) {
			return
		}
		names := []string{"line", "keys", "script", "default-fault", "flaky", "api-key", "latency", "sessions", "generate", "list-entries", "stats", "reset-stats", "webhook"}
		sort.Strings(names)
		controlFail(w, http.StatusNotFound, "unknown control endpoint %s; see GET /_fake/ (endpoints: %s)", r.URL.Path, strings.Join(names, ", "))
	}
}
