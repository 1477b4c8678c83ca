package console

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wahaq/wahaq/internal/access"
	"github.com/wahaq/wahaq/internal/audit"
)

// The roles the console's actions need. They are the API's (the route
// table of internal/api): canceling a batch and requeuing dead letters need
// operate, purging them admin, reading the audit log admin.
const (
	roleCancel  = access.RoleOperate
	roleRequeue = access.RoleOperate
	rolePurge   = access.RoleAdmin
	roleAudit   = access.RoleAdmin
	// roleEndSessions ends every console session (issue 23, M2).
	roleEndSessions = access.RoleAdmin
)

// Can reports whether the page's token has the named role (read, enqueue,
// operate, admin): templates show a button only when it does.
func (p page) Can(role string) bool {
	need, err := access.ParseRole(role)
	return err == nil && p.Token != nil && p.Token.Role.Allows(need)
}

// allowed checks the session's role and the instance's scope (empty: no
// instance to check), and renders the refusal itself when either falls
// short. A refusal is written to the audit log as e with outcome refused.
func (c *Console) allowed(w http.ResponseWriter, r *http.Request, s session, need access.Role, instance, what string, e audit.Entry) bool {
	tok := c.tokenOf(s)
	var why string
	switch {
	case tok == nil:
		why = "This session's token is no longer accepted."
	case !tok.Role.Allows(need):
		why = fmt.Sprintf("%s needs role %s; this token (%s) has role %s.", what, need, tok.Name, tok.Role)
	case instance != "" && !tok.InScope(instance):
		why = fmt.Sprintf("This token (%s) may touch only the servers %s, not %s.", tok.Name, strings.Join(tok.Instances, ", "), instance)
	default:
		return true
	}
	c.refuse(w, r, s, why, e)
	return false
}

// refuse renders a refusal (403, nothing changed) and writes it to the
// audit log as e.
func (c *Console) refuse(w http.ResponseWriter, r *http.Request, s session, why string, e audit.Entry) {
	tok := c.tokenOf(s)
	e.Outcome, e.Status, e.Detail = audit.OutcomeRefused, http.StatusForbidden, why
	c.record(r, s, e)
	c.log.Warn().Str("path", r.URL.Path).Str("token", tokenName(tok)).Msg("console: refused an action out of the token's role or scope")
	c.render(w, r, http.StatusForbidden, "message", page{Title: "Refused", Session: &s,
		Data: message{Heading: "Refused", Text: why + " Nothing was changed.", Link: mount}})
}

func tokenName(t *access.Token) string {
	if t == nil {
		return "unknown"
	}
	return t.Name
}

// recordFailed records e as an action that failed with status and detail
// (what the person was told), before the page says so.
func (c *Console) recordFailed(r *http.Request, s session, e audit.Entry, status int, detail string) {
	e.Outcome, e.Status, e.Detail = audit.OutcomeFailed, status, detail
	c.record(r, s, e)
}

// record appends an action to the audit log, under the session's token.
func (c *Console) record(r *http.Request, s session, e audit.Entry) {
	if c.audit == nil {
		return
	}
	tok := c.tokenOf(s)
	e.Actor, e.Via, e.Remote = tokenName(tok), audit.ViaConsole, r.RemoteAddr
	if tok != nil {
		e.Role = tok.Role.String()
	}
	if e.Outcome == "" {
		e.Outcome = audit.OutcomeOK
	}
	if e.Status == 0 {
		e.Status = http.StatusOK
	}
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	e.RequestID = hex.EncodeToString(b)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 2*time.Second)
	defer cancel()
	if _, err := c.audit.Append(ctx, e); err != nil {
		c.log.Error().Err(err).Str("action", e.Action).Msg("console: cannot append to the audit log")
	}
}

// auditView is the Data of the Audit page.
type auditView struct {
	Page    *audit.Page
	Query   audit.Query
	Older   string
	Oldest  string
	MaxAge  string
	Entries int64
}

func (c *Console) auditPage(w http.ResponseWriter, r *http.Request, s session) {
	if c.audit == nil {
		c.notFound(w, r, s, "This console has no audit log.")
		return
	}
	if tok := c.tokenOf(s); tok == nil || !tok.Role.Allows(roleAudit) {
		c.render(w, r, http.StatusForbidden, "message", page{Title: "Refused", Session: &s,
			Data: message{Heading: "Refused", Text: fmt.Sprintf("The audit log needs role %s; this token (%s) has role %s.", roleAudit, tokenName(tok), tokenRole(tok)), Link: mount}})
		return
	}
	q := r.URL.Query()
	aq := audit.Query{Actor: trim(q.Get("actor")), Action: trim(q.Get("action")), Target: trim(q.Get("target")), Cursor: q.Get("cursor"), Limit: 100}
	p, err := c.audit.List(r.Context(), aq)
	if err != nil {
		aq.Cursor = ""
		if p, err = c.audit.List(r.Context(), aq); err != nil {
			c.fail(w, r, s, err)
			return
		}
	}
	v := auditView{Page: p, Query: aq, Oldest: fmtTime(p.Retention.Oldest), Entries: p.Retention.Entries,
		MaxAge: fmtAge(mustDuration(p.Retention.MaxAge))}
	if p.NextCursor != "" {
		v.Older = mount + "audit?" + url.Values{"actor": {aq.Actor}, "action": {aq.Action}, "target": {aq.Target}, "cursor": {p.NextCursor}}.Encode()
	}
	c.render(w, r, http.StatusOK, "audit", page{Title: "Audit log", Nav: "audit", Session: &s, Data: v})
}

func tokenRole(t *access.Token) string {
	if t == nil {
		return "none"
	}
	return t.Role.String()
}

// fmtAge shows the log's age bound: "90 days" when it is whole days.
func fmtAge(d time.Duration) string {
	if d > 0 && d%(24*time.Hour) == 0 {
		return countOf(int(d/(24*time.Hour)), "day")
	}
	return fmtDur(d)
}

func mustDuration(s string) time.Duration {
	d, _ := time.ParseDuration(s)
	return d
}

// counts shows an entry's result as "canceled 3, already_started 1".
func counts(m map[string]int64) string {
	if len(m) == 0 {
		return "—"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, k+" "+strconv.FormatInt(m[k], 10))
	}
	return strings.Join(parts, ", ")
}
