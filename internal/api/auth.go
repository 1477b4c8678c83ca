package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"strings"
)

// tokenSet holds the SHA-256 digests of the accepted bearer tokens. Only the
// digests are kept, so the tokens themselves cannot end up in a log or a
// panic message.
type tokenSet struct {
	sums [][sha256.Size]byte
}

// newTokenSet returns the set of the non-empty tokens, or nil if there are
// none.
func newTokenSet(tokens []string) *tokenSet {
	var ts tokenSet
	for _, t := range tokens {
		t = strings.TrimSpace(t)
		if t == "" {
			continue
		}
		ts.sums = append(ts.sums, sha256.Sum256([]byte(t)))
	}
	if len(ts.sums) == 0 {
		return nil
	}
	return &ts
}

// valid reports whether presented is one of the tokens. Both sides are
// hashed first, so the comparison always runs over 32 bytes whatever the
// lengths, and every configured token is compared, with no early exit, so
// the time taken does not say which one matched or how much of one did.
func (ts *tokenSet) valid(presented string) bool {
	sum := sha256.Sum256([]byte(presented))
	match := 0
	for i := range ts.sums {
		match |= subtle.ConstantTimeCompare(sum[:], ts.sums[i][:])
	}
	return match == 1
}

// authFailure says why a request was not authenticated.
type authFailure int

const (
	authMissing authFailure = iota + 1
	authMalformed
	authInvalid
)

// check validates an Authorization header. On failure it returns a detail
// for the problem answer (never containing the presented token) and the
// kind of failure for the WWW-Authenticate challenge.
func (ts *tokenSet) check(header string) (ok bool, detail string, why authFailure) {
	if header == "" {
		return false, "missing bearer token: send Authorization: Bearer <token>", authMissing
	}
	scheme, token, found := strings.Cut(header, " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return false, "the Authorization header must use the Bearer scheme: Authorization: Bearer <token>", authMalformed
	}
	token = strings.TrimSpace(token)
	if token == "" {
		return false, "the bearer token is empty", authMalformed
	}
	if !ts.valid(token) {
		return false, "the bearer token is not valid", authInvalid
	}
	return true, "", 0
}

// challenge is the WWW-Authenticate header of a 401 answer (RFC 6750).
func challenge(why authFailure) string {
	switch why {
	case authMalformed:
		return `Bearer realm="wahaq", error="invalid_request"`
	case authInvalid:
		return `Bearer realm="wahaq", error="invalid_token"`
	default:
		return `Bearer realm="wahaq"`
	}
}
