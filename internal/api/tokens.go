package api

import "strings"

// TokenChecker reports whether a token is one of the API's bearer tokens
// (WAHAQ_API_TOKENS), with the same constant-time comparison the /v1 routes
// use. The operator console signs people in with it, so both accept exactly
// the same tokens.
type TokenChecker struct{ set *tokenSet }

// NewTokenChecker returns a checker of the non-empty tokens, or nil when
// there are none.
func NewTokenChecker(tokens []string) *TokenChecker {
	ts := newTokenSet(tokens)
	if ts == nil {
		return nil
	}
	return &TokenChecker{set: ts}
}

// Valid reports whether token is one of the configured tokens. Surrounding
// spaces are ignored, as in the Authorization header.
func (c *TokenChecker) Valid(token string) bool {
	return c != nil && token != "" && c.set.valid(strings.TrimSpace(token))
}
