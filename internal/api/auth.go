package api

import (
	"strings"

	"github.com/wahaq/wahaq/internal/access"
)

// tokenSet is the accepted bearer tokens: those of WAHAQ_API_TOKENS (each
// an admin) and those of the tokens file (named, with a role and a scope).
// Only their digests are kept (access.Set), so the tokens themselves cannot
// end up in a log or a panic message.
type tokenSet struct {
	set *access.Set
}

// newTokenSet returns the set of the non-empty plain tokens and the named
// ones, or nil if there are none. A token given twice is an error.
func newTokenSet(plain []string, named []access.Token) (*tokenSet, error) {
	set, err := access.NewSet(plain, named)
	if err != nil || set == nil {
		return nil, err
	}
	return &tokenSet{set: set}, nil
}

// authFailure says why a request was not authenticated.
type authFailure int

const (
	authMissing authFailure = iota + 1
	authMalformed
	authInvalid
)

// check validates an Authorization header and returns the token it names
// (access.Set.Lookup compares in constant time). On failure it returns a
// nil token, a detail for the problem answer (never containing the
// presented token) and the kind of failure for the WWW-Authenticate
// challenge.
func (ts *tokenSet) check(header string) (tok *access.Token, detail string, why authFailure) {
	if header == "" {
		return nil, "missing bearer token: send Authorization: Bearer <token>", authMissing
	}
	scheme, token, found := strings.Cut(header, " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return nil, "the Authorization header must use the Bearer scheme: Authorization: Bearer <token>", authMalformed
	}
	token = strings.TrimSpace(token)
	if token == "" {
		return nil, "the bearer token is empty", authMalformed
	}
	if tok = ts.set.Lookup(token); tok == nil {
		return nil, "the bearer token is not valid", authInvalid
	}
	return tok, "", 0
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
