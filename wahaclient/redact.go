package wahaclient

import (
	"encoding/json"
	"net/url"
	"strings"
	"unicode/utf8"
)

// Redacted replaces a secret in text that came from a server.
const Redacted = "[redacted]"

// MinEchoRun is the shortest part of a secret that free text may not keep:
// any run of at least this many of a secret's characters, in any letter
// case, is redacted. Eight characters of a random key are 48 bits or more
// of it; shorter runs of a long key occur by chance in ordinary words
// ("waha", "key-") and would blank them for nothing. A secret shorter
// than this is redacted where it stands as a word of its own (see
// redactor).
const MinEchoRun = 8

// maxRedactInput bounds the text one redaction looks at (the work is
// proportional to its length times the secrets' lengths). Callers keep
// only a few KiB of a server's text anyway.
const maxRedactInput = 64 << 10

// redactor removes secrets from free text that a server (WAHA or the
// validation service) sent, before the text becomes part of an error: its
// messages and the bodies kept as text. Servers echo what they were sent
// ("bad key <the key>"), and those texts are stored in Redis, shown by the
// API and logged. Every error message the client builds from a server's
// text passes through text, so there is one place to get right. A nil
// *redactor redacts nothing.
//
// It never touches structured data: a session's name, status, account or
// any other value parsed from WAHA's JSON is WAHA's data and is returned
// as sent. Rewriting it broke teardowns: with the key "321" the listed
// session "bot-321" became "bot-[redacted]" and was skipped as a bad name,
// and a key inside "WORKING" emptied a --status WORKING filter.
//
// In free text it redacts, in any ASCII letter case:
//   - a secret of MinEchoRun characters or more wherever any run of
//     MinEchoRun or more of its characters appears (the whole key, its
//     first ten characters, "KEY" for "key");
//   - a shorter secret only where it stands as a token of its own, not
//     inside a longer run of session-name characters (letters, digits, '_'
//     and '-'): with the key "321", "bad key 321" becomes "bad key
//     [redacted]" but "session bot-321 is busy" keeps the session's name.
//     Such a key is guessable anyway; what matters is that the key as a
//     value never reaches a log, and that names are never rewritten.
type redactor struct {
	// forms are the secrets as they may appear: as given, JSON-escaped and
	// URL-escaped, with ASCII letters in lower case.
	forms [][]byte
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
			f = lowerASCII(f)
			if f != "" && !seen[f] {
				seen[f] = true
				r.forms = append(r.forms, []byte(f))
			}
		}
	}
	return r
}

// text returns s without any of the secrets (see redactor).
func (r *redactor) text(s string) string {
	if r == nil || len(r.forms) == 0 || s == "" {
		return s
	}
	if len(s) > maxRedactInput {
		s = shorten(s, maxRedactInput)
	}
	covered := make([]bool, len(s))
	hit := false
	for _, f := range r.forms {
		if len(f) >= MinEchoRun {
			hit = markRuns(s, f, covered) || hit
		} else {
			hit = markTokens(s, f, covered) || hit
		}
	}
	if !hit {
		return s
	}
	// Widen each covered run to whole characters, so that no part of a
	// multi-byte character is left behind beside "[redacted]".
	for i := range covered {
		if covered[i] && !utf8.RuneStart(s[i]) {
			for k := i - 1; k >= 0 && !covered[k]; k-- {
				covered[k] = true
				if utf8.RuneStart(s[k]) {
					break
				}
			}
		}
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		if !covered[i] {
			b.WriteByte(s[i])
			i++
			continue
		}
		j := i
		for j < len(s) && (covered[j] || !utf8.RuneStart(s[j])) {
			j++
		}
		b.WriteString(Redacted)
		i = j
	}
	return b.String()
}

// markRuns marks in covered every run of at least MinEchoRun bytes of s
// that appears in f (f in lower case; s compared in lower case). It is the
// longest-common-substring table, one row at a time: cur[j] is the length
// of the common run ending at s[i] and f[j].
func markRuns(s string, f []byte, covered []bool) bool {
	prev := make([]int, len(f)+1)
	cur := make([]int, len(f)+1)
	found := false
	for i := 0; i < len(s); i++ {
		c := lowerByte(s[i])
		for j := 1; j <= len(f); j++ {
			if c != f[j-1] {
				cur[j] = 0
				continue
			}
			n := prev[j-1] + 1
			cur[j] = n
			switch {
			case n == MinEchoRun:
				for k := i + 1 - n; k <= i; k++ {
					covered[k] = true
				}
				found = true
			case n > MinEchoRun:
				covered[i] = true
			}
		}
		prev, cur = cur, prev
	}
	return found
}

// markTokens marks in covered each occurrence of f in s (in lower case)
// that is not part of a longer run of session-name characters.
func markTokens(s string, f []byte, covered []bool) bool {
	found := false
	for i := 0; i+len(f) <= len(s); i++ {
		if !equalFold(s[i:i+len(f)], f) {
			continue
		}
		if (i > 0 && nameByte(s[i-1])) || (i+len(f) < len(s) && nameByte(s[i+len(f)])) {
			continue
		}
		for k := i; k < i+len(f); k++ {
			covered[k] = true
		}
		found = true
	}
	return found
}

func equalFold(s string, f []byte) bool {
	for i := range f {
		if lowerByte(s[i]) != f[i] {
			return false
		}
	}
	return true
}

// nameByte reports whether c may be part of a WAHA session name.
func nameByte(c byte) bool {
	return c == '_' || c == '-' || ('0' <= c && c <= '9') || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')
}

func lowerByte(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// lowerASCII lowers ASCII letters only, so that byte offsets stay those of
// the original text.
func lowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		b[i] = lowerByte(c)
	}
	return string(b)
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
