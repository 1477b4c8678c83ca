package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/wahaq/wahaq/internal/access"
	"github.com/wahaq/wahaq/internal/audit"
	"github.com/wahaq/wahaq/tasks"
)

// requestIDHeader carries the request id: the client's when it sends a
// usable one, else one the server draws. Answers, logs and the audit log
// carry it.
const requestIDHeader = "X-Request-Id"

// call is what the layers of one request learn about it: ServeHTTP draws
// its id, wrap sets the token and the route, handlers note the audit
// entry's target, parameters and counts, and problem its detail.
type call struct {
	id     string
	token  *access.Token
	route  *route
	target audit.Target
	params map[string]any
	result map[string]int64
	detail string
}

type callKey struct{}

// callOf returns the request's call; a throwaway one when the request did
// not come through ServeHTTP (so handlers never check for nil).
func callOf(r *http.Request) *call {
	if c, ok := r.Context().Value(callKey{}).(*call); ok {
		return c
	}
	return &call{}
}

// Caller returns the token a request authenticated with (its name, role and
// scope), or nil on open routes. Without authentication
// (--insecure-no-auth) it is access.Open. Middleware and handlers use it to
// name the caller; it never holds the token itself.
func Caller(r *http.Request) *access.Token { return access.FromContext(r.Context()) }

// requestID returns the client's X-Request-Id when it is 1 to 64 letters,
// digits, '-', '_' or '.', else a new random one.
func requestID(r *http.Request) string {
	if v := r.Header.Get(requestIDHeader); v != "" && len(v) <= 64 && strings.Trim(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") == "" {
		return v
	}
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// refuse answers 403 with a detail naming the role needed.
func (s *server) refuse(w http.ResponseWriter, r *http.Request, detail string) {
	s.problem(w, r, http.StatusForbidden, detail)
}

// permitted checks the route's role against the token's and answers 403
// when it falls short.
func (s *server) permitted(w http.ResponseWriter, r *http.Request, need access.Role, what string) bool {
	tok := Caller(r)
	if tok == nil || tok.Role.Allows(need) {
		return true
	}
	also := ""
	if rt := callOf(r).route; rt != nil && rt.allRole > need {
		also = fmt.Sprintf(` (role %s with "all": true)`, rt.allRole)
	}
	s.refuse(w, r, fmt.Sprintf("%s needs role %s%s; this token (%s) has role %s", what, need, also, tok.Name, tok.Role))
	return false
}

// permitAll checks the route's role for a request that asks for "all":
// true (the route table's allRole). Handlers call it once they have read
// the body.
func (s *server) permitAll(w http.ResponseWriter, r *http.Request, what string) bool {
	rt := callOf(r).route
	if rt == nil || rt.allRole == 0 {
		return true
	}
	return s.permitted(w, r, rt.allRole, what)
}

// inScope answers 403 unless the token may touch instance ("" is the
// default instance).
func (s *server) inScope(w http.ResponseWriter, r *http.Request, instance string) bool {
	if instance == "" {
		instance = tasks.DefaultInstance
	}
	tok := Caller(r)
	if tok == nil || tok.InScope(instance) {
		return true
	}
	s.refuse(w, r, fmt.Sprintf("this token (%s) may touch only the instances %s, not %q", tok.Name, strings.Join(tok.Instances, ", "), instance))
	return false
}

// scoped reports whether the request's token is limited to some instances
// (handlers then read what they are about to touch to check its instance).
func scoped(r *http.Request) bool {
	tok := Caller(r)
	return tok != nil && len(tok.Instances) > 0
}

// taskInScope checks the instance of task id for a scoped token. An id
// that cannot be read is left to the handler (it answers 400 or 404).
func (s *server) taskInScope(w http.ResponseWriter, r *http.Request, id string) bool {
	if !scoped(r) {
		return true
	}
	t, err := s.cfg.Inspector.Task(r.Context(), id)
	if err != nil {
		return true
	}
	callOf(r).target.Instance = t.Instance
	return s.inScope(w, r, t.Instance)
}

// selectionInScope checks a dead-letter selection for a scoped token: it
// must name an instance in scope, or ids whose tasks all are.
func (s *server) selectionInScope(w http.ResponseWriter, r *http.Request, sel tasks.Selection) bool {
	if !scoped(r) {
		return true
	}
	if sel.Instance != "" {
		return s.inScope(w, r, sel.Instance)
	}
	if sel.All {
		tok := Caller(r)
		s.refuse(w, r, fmt.Sprintf(`this token (%s) may touch only the instances %s: name one with "instance"`, tok.Name, strings.Join(tok.Instances, ", ")))
		return false
	}
	for _, id := range sel.IDs {
		if !s.taskInScope(w, r, id) {
			return false
		}
	}
	return true
}

// auditTimeout bounds the append of one audit entry, which runs after the
// answer's work and before the answer leaves: within what is left of the
// request's deadline, but never less than auditMinimum, so a call that used
// its time up is still recorded while Redis answers, and a frozen Redis
// (whose request timed out already) delays the answer by auditMinimum only.
const (
	auditTimeout = 2 * time.Second
	auditMinimum = 250 * time.Millisecond
)

// record appends the audit entry of a state-changing call once it has been
// answered. A failure to append is logged; the call itself is done.
func (s *server) record(r *http.Request, rt *route, status int, replayed bool) {
	if s.cfg.Audit == nil || rt.action == "" {
		return
	}
	if status == 0 {
		status = http.StatusInternalServerError // the handler panicked
	}
	c := callOf(r)
	e := audit.Entry{Actor: "anonymous", Via: audit.ViaHTTP, Action: rt.action, Target: c.target, Params: c.params,
		Outcome: audit.Outcome(status), Status: status, Result: c.result, RequestID: c.id, Remote: r.RemoteAddr}
	if tok := Caller(r); tok != nil {
		e.Actor, e.Role = tok.Name, tok.Role.String()
	}
	if e.Outcome != audit.OutcomeOK {
		e.Detail = c.detail
	}
	if replayed {
		if e.Params == nil {
			e.Params = map[string]any{}
		}
		e.Params["idempotent_replay"] = true
	}
	limit := auditTimeout
	if dl, ok := r.Context().Deadline(); ok {
		limit = min(limit, max(time.Until(dl), auditMinimum))
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), limit)
	defer cancel()
	if _, err := s.cfg.Audit.Append(ctx, e); err != nil {
		s.log.Error().Err(err).Str("action", rt.action).Str("token", e.Actor).Str("request_id", c.id).Msg("cannot append to the audit log")
	}
}

// note sets the audit entry's target and parameters.
func note(r *http.Request, target audit.Target, params map[string]any) {
	c := callOf(r)
	if target.Task != "" {
		c.target.Task = target.Task
	}
	if target.Batch != "" {
		c.target.Batch = target.Batch
	}
	if target.Instance != "" {
		c.target.Instance = target.Instance
	}
	c.params = params
}

// noteResult sets the audit entry's counts.
func noteResult(r *http.Request, counts map[string]int64) { callOf(r).result = counts }
