package console

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/wahaq/wahaq/internal/access"
	"github.com/wahaq/wahaq/internal/audit"
)

// Cookie names. The session cookie is scoped to /ui/ so the JSON API never
// sees it: /v1 routes authenticate by bearer token only.
const (
	sessionCookie = "wahaq_console"
	// preCookie carries the sign-in form's CSRF value (double submit), so a
	// foreign page cannot sign a browser in with the attacker's token.
	preCookie = "wahaq_console_signin"
)

// session is what the signed cookie holds: when it expires, which token it
// was opened with (a keyed fingerprint, not the token), the CSRF token
// every state-changing form must send back, and its id in the server's
// session store (store.OpenConsoleSession), which a sign-out or an admin's
// "end all sessions" removes: a signed cookie alone could not be ended
// before its expiry (issue 23, M2).
type session struct {
	exp  time.Time
	fp   string // hex of the token's fingerprint; "open" without authentication
	csrf string // hex of 16 random bytes
	id   string // hex of 16 random bytes
}

// openFP is the fingerprint of sessions in --insecure-no-auth mode.
const openFP = "open"

// randomHex returns n random bytes as hex.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b)
}

// fingerprint is the keyed hash of a token's SHA-256 by which a session
// names its token: a stolen cookie does not reveal the token, and removing
// the token ends every session opened with it. It is taken of the digest
// because the tokens file holds only digests.
func (c *Console) fingerprint(sum [sha256.Size]byte) string {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte("token:"))
	m.Write(sum[:])
	return hex.EncodeToString(m.Sum(nil)[:16])
}

// tokenOf is the token a session was opened with (access.Open without
// authentication).
func (c *Console) tokenOf(s session) *access.Token {
	if c.open {
		return access.Open
	}
	return c.fps[s.fp]
}

func (c *Console) sign(payload string) string {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte("session:"))
	m.Write([]byte(payload))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// encode is "v2.<exp unix>.<fp>.<csrf>.<id>.<signature>". (v1 cookies,
// which named no id, are no sessions.)
func (c *Console) encode(s session) string {
	p := "v2." + strconv.FormatInt(s.exp.Unix(), 10) + "." + s.fp + "." + s.csrf + "." + s.id
	return p + "." + c.sign(p)
}

// decode checks a cookie value's signature, expiry and token; ok is false
// for anything else.
func (c *Console) decode(v string) (session, bool) {
	i := strings.LastIndexByte(v, '.')
	if i < 0 {
		return session{}, false
	}
	payload, sig := v[:i], v[i+1:]
	if subtle.ConstantTimeCompare([]byte(sig), []byte(c.sign(payload))) != 1 {
		return session{}, false
	}
	parts := strings.Split(payload, ".")
	if len(parts) != 5 || parts[0] != "v2" {
		return session{}, false
	}
	exp, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil {
		return session{}, false
	}
	s := session{exp: time.Unix(exp, 0), fp: parts[2], csrf: parts[3], id: parts[4]}
	if !c.now().Before(s.exp) {
		return session{}, false
	}
	if c.open {
		return s, s.fp == openFP
	}
	_, known := c.fps[s.fp]
	return s, known
}

// secure reports whether the browser reached us over TLS, directly or
// through a proxy that says so.
func secure(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

func (c *Console) setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: value, Path: mount, MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: secure(r),
	})
}

// current returns the request's session, if it has a valid one: a signed
// cookie, not expired, of a token still configured, and still in the
// session store. When the store cannot be read the session is refused (the
// pages need Redis anyway).
func (c *Console) current(r *http.Request) (session, bool) {
	ck, err := r.Cookie(sessionCookie)
	if err != nil {
		return session{}, false
	}
	s, ok := c.decode(ck.Value)
	if !ok || c.open {
		return s, ok
	}
	live, err := c.sessions.ConsoleSessionLive(r.Context(), s.id)
	if err != nil {
		c.log.Error().Err(err).Msg("console: the session store could not be read; the session is refused")
		return session{}, false
	}
	return s, live
}

// start opens a session for a fingerprint, records it in the session
// store (not in open mode, where anyone gets one) and sets its cookie.
func (c *Console) start(w http.ResponseWriter, r *http.Request, fp string) (session, error) {
	s := session{exp: c.now().Add(c.ttl), fp: fp, csrf: randomHex(16), id: randomHex(16)}
	if !c.open {
		if err := c.sessions.OpenConsoleSession(r.Context(), s.id, s.exp); err != nil {
			return session{}, err
		}
	}
	c.setCookie(w, r, sessionCookie, c.encode(s), int(c.ttl.Seconds()))
	return s, nil
}

// csrfOK checks a form's CSRF token against the session's.
func csrfOK(s session, r *http.Request) bool {
	got := r.PostFormValue("csrf")
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(s.csrf)) == 1
}

func (c *Console) signInPage(w http.ResponseWriter, r *http.Request) {
	if _, ok := c.current(r); ok {
		http.Redirect(w, r, mount, http.StatusSeeOther)
		return
	}
	c.renderSignIn(w, r, http.StatusOK, "")
}

func (c *Console) renderSignIn(w http.ResponseWriter, r *http.Request, code int, msg string) {
	pre := randomHex(16)
	c.setCookie(w, r, preCookie, pre, 600)
	next := safeNext(r.FormValue("next"))
	c.render(w, r, code, "signin", page{Title: "Sign in", Data: map[string]string{"Pre": pre, "Error": msg, "Next": next}})
}

func (c *Console) signIn(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	ck, err := r.Cookie(preCookie)
	if err != nil || r.PostFormValue("pre") == "" ||
		subtle.ConstantTimeCompare([]byte(ck.Value), []byte(r.PostFormValue("pre"))) != 1 {
		c.renderSignIn(w, r, http.StatusForbidden, "The sign-in form expired or was not sent from this console. Please try again.")
		return
	}
	if wait, ok := c.limiter.Allow(r, "console"); !ok {
		c.log.Warn().Str("remote", r.RemoteAddr).Msg("console: sign-in refused: too many wrong tokens from this address")
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int(wait.Seconds()+0.999))))
		c.renderSignIn(w, r, http.StatusTooManyRequests, "Too many wrong tokens from this address. Wait a minute and try again.")
		return
	}
	token := strings.TrimSpace(r.PostFormValue("token"))
	tok := c.tokens.Lookup(token)
	if token == "" || tok == nil {
		c.limiter.Failed(r, "console")
		c.log.Warn().Str("remote", r.RemoteAddr).Msg("console: sign-in refused: the token is not one of the API tokens")
		c.renderSignIn(w, r, http.StatusUnauthorized, "That token is not valid. Use one of the API tokens (WAHAQ_API_TOKENS or the tokens file).")
		return
	}
	if _, err := c.start(w, r, c.fingerprint(tok.Sum())); err != nil {
		c.log.Error().Err(err).Msg("console: sign-in failed: the session could not be recorded")
		c.renderSignIn(w, r, http.StatusServiceUnavailable, "The session could not be opened (Redis did not answer). Please try again.")
		return
	}
	c.setCookie(w, r, preCookie, "", -1)
	next := safeNext(r.PostFormValue("next"))
	c.log.Info().Str("remote", r.RemoteAddr).Str("token", tok.Name).Str("role", tok.Role.String()).Msg("console: signed in")
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// signOut ends the session in the store, so a copy of its cookie stops
// working too, and asks the browser to forget it.
func (c *Console) signOut(w http.ResponseWriter, r *http.Request, s session) {
	if !c.open {
		if err := c.sessions.EndConsoleSession(r.Context(), s.id); err != nil {
			c.log.Error().Err(err).Msg("console: sign-out failed: the session could not be ended")
			c.render(w, r, http.StatusServiceUnavailable, "message", page{Title: "Not signed out", Session: &s,
				Data: message{Heading: "Not signed out", Text: "The session could not be ended (Redis did not answer), so it still works. Try again.", Link: mount}})
			return
		}
	}
	c.setCookie(w, r, sessionCookie, "", -1)
	if c.open {
		http.Redirect(w, r, mount, http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, mount+"signin?signed_out=1", http.StatusSeeOther)
}

// safeNext is where sign-in leads: next when it is a path of the console,
// the console's home otherwise. The path is cleaned first and checked
// after: checked before, /ui/../\evil.example passed and became
// /\evil.example, which browsers read as //evil.example (issue 23, M1).
// Backslashes (browsers read them as slashes) and control characters are
// refused outright, written plainly or percent-encoded.
func safeNext(next string) string {
	if next == "" || strings.Contains(next, `\`) || strings.Contains(strings.ToLower(next), "%5c") {
		return mount
	}
	for _, c := range next {
		if c < 0x20 || c == 0x7f {
			return mount
		}
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" ||
		strings.ContainsAny(u.Path, "\\\x00") {
		return mount
	}
	p := path.Clean(u.Path)
	if strings.HasSuffix(u.Path, "/") && p != "/" {
		p += "/"
	}
	if !strings.HasPrefix(p, mount) {
		return mount
	}
	return (&url.URL{Path: p, RawQuery: u.RawQuery}).String()
}

// endSessions ends every console session, the caller's included: for an
// operator who suspects a cookie was copied, or after removing a token.
// Admins only; written to the audit log.
func (c *Console) endSessions(w http.ResponseWriter, r *http.Request, s session) {
	if c.open {
		http.Redirect(w, r, mount, http.StatusSeeOther)
		return
	}
	entry := audit.Entry{Action: "console.sessions.end"}
	if !c.allowed(w, r, s, roleEndSessions, "", "Ending all sessions", entry) {
		return
	}
	n, err := c.sessions.EndConsoleSessions(r.Context())
	if err != nil {
		c.recordFailed(r, s, entry, http.StatusServiceUnavailable, "could not end the sessions: Redis failed")
		c.log.Error().Err(err).Msg("console: ending all sessions failed")
		c.render(w, r, http.StatusServiceUnavailable, "message", page{Title: "Sessions not ended", Session: &s,
			Data: message{Heading: "Sessions not ended", Text: "The sessions could not be ended (Redis did not answer). Try again.", Link: mount}})
		return
	}
	entry.Result = map[string]int64{"ended": int64(n)}
	c.record(r, s, entry)
	c.log.Warn().Int("sessions", n).Str("remote", r.RemoteAddr).Msg("console: every session ended")
	c.setCookie(w, r, sessionCookie, "", -1)
	http.Redirect(w, r, mount+"signin?ended="+strconv.Itoa(n), http.StatusSeeOther)
}
