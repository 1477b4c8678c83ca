// Package wahaclient is a small, contract-faithful client for the parts of the
// WAHA ("WhatsApp HTTP API") session API that wahaq needs: logging a session
// out, reading one session and listing sessions, plus the optional
// subscription/key check (Validator).
//
// Every failure is an *APIError whose Kind is one of the sentinel errors, so a
// worker decides with errors.Is alone:
//
//	ErrTransient                    retry with backoff (honour RetryAfter(err))
//	ErrUnauthorized, ErrForbidden   dead-letter at once: a person must fix the key
//	ErrRejected                     dead-letter: WAHA refused for good (e.g. 422 on Core)
//	ErrSessionNotFound              done: nothing to log out
//	ErrInvalidSessionName           bad input, caught before any HTTP call
//
// Logout copes with both generations of WAHA: it uses
// POST /api/sessions/{session}/logout and, on an older server that lacks it,
// the deprecated POST /api/sessions/logout, remembering the server's age per
// Client.
//
// The API key is sent only in the X-Api-Key header and never appears in URLs,
// errors or logs. Package wahafake provides a fake WAHA server for tests.
package wahaclient
