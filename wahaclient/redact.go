package wahaclient

import (
	"encoding/json"
	"net/url"
	"strings"
)

// Redacted replaces a secret in text that came from a server.
const Redacted = "[redacted]"

// redactor removes secrets from text that a server (WAHA or the validation
// service) sent, before the text becomes part of an error or a result.
// Servers echo what they were sent ("bad key <the key>"), and those texts
// are stored in Redis, shown by the API and logged. Every error message
// and every result field the client returns passes through text, so there
// is one place to get right. A nil *redactor redacts nothing.
type redactor struct {
	// forms are the secrets as they may appear: as given, JSON-escaped and
	// URL-escaped, longest first so that a secret containing another is
	// replaced whole.
	forms []string
}

// newRedactor returns a redactor of the non-empty secrets.
func newRedactor(secrets ...string) *redactor {
	r := &redactor{}
	seen := map[string]bool{}
	for _, s := range secrets {
		if s == "" {
			continue
		}
		q, _ := json.Marshal(s)
		for _, f := range []string{s, string(q[1 : len(q)-1]), url.QueryEscape(s), url.PathEscape(s)} {
			if f != "" && !seen[f] {
				seen[f] = true
				r.forms = append(r.forms, f)
			}
		}
	}
	// Longest first.
	for i := 1; i < len(r.forms); i++ {
		for j := i; j > 0 && len(r.forms[j]) > len(r.forms[j-1]); j-- {
			r.forms[j], r.forms[j-1] = r.forms[j-1], r.forms[j]
		}
	}
	return r
}

// text returns s without any of the secrets.
func (r *redactor) text(s string) string {
	if r == nil {
		return s
	}
	for _, f := range r.forms {
		if strings.Contains(s, f) {
			s = strings.ReplaceAll(s, f, Redacted)
		}
	}
	return s
}

// session redacts the text fields of a session WAHA answered; the raw
// fields are dropped when they held a secret, since editing raw JSON could
// leave it invalid.
func (r *redactor) session(s *Session) *Session {
	if r == nil || s == nil {
		return s
	}
	s.Name = r.text(s.Name)
	s.Status = r.text(s.Status)
	if s.Me != nil {
		s.Me.ID = r.text(s.Me.ID)
		s.Me.PushName = r.text(s.Me.PushName)
	}
	if len(s.Engine) > 0 && r.text(string(s.Engine)) != string(s.Engine) {
		s.Engine = nil
	}
	if len(s.Config) > 0 && r.text(string(s.Config)) != string(s.Config) {
		s.Config = nil
	}
	return s
}

// urlSecrets returns the password of a URL's user info: a base URL such as
// http://user:pass@host sends it as Basic auth, so it is a secret too.
func urlSecrets(u *url.URL) []string {
	if u == nil || u.User == nil {
		return nil
	}
	if p, ok := u.User.Password(); ok && p != "" {
		return []string{p}
	}
	return nil
}

// StripUserinfo returns raw, a URL, fit for an error message: without its
// user info (user:password@), and with "…" for a query or fragment (which
// may carry a key). Text that does not parse as a hierarchical URL is cut
// to its scheme, so that a malformed URL cannot carry a password into an
// error either.
func StripUserinfo(raw string) string {
	raw = strings.TrimSpace(raw)
	u, err := url.Parse(raw)
	if err != nil || u.Opaque != "" {
		if scheme, _, ok := strings.Cut(raw, ":"); ok && scheme != "" && !strings.ContainsAny(scheme, "@/?#") {
			return scheme + "://…"
		}
		return "…"
	}
	if u.Host == "" {
		// No authority was recognised ("http//u:pass@h" is a relative
		// path): whatever precedes an '@' may still be user info.
		if at := strings.LastIndex(raw, "@"); at >= 0 {
			return "…@" + StripUserinfo(raw[at+1:])
		}
	}
	u.User = nil
	if u.RawQuery != "" || u.ForceQuery {
		u.RawQuery, u.ForceQuery = "…", false
	}
	if u.Fragment != "" {
		u.Fragment, u.RawFragment = "…", ""
	}
	return u.String()
}
