package wahaclient

import (
	"encoding/json"
	"fmt"
	"regexp"
)

// Session is WAHA's session object as the client needs it. Unknown fields
// (presence, timestamps, ...) are ignored; Status is kept as an opaque string
// because newer WAHA versions add values (PASSKEY_REQUIRED, ...).
type Session struct {
	// Name is the session name, e.g. "default".
	Name string `json:"name"`
	// Status is one of STOPPED, STARTING, SCAN_QR_CODE, WORKING, FAILED, or a
	// newer value; after a logout it is typically STARTING/SCAN_QR_CODE or STOPPED.
	Status string `json:"status"`
	// Me is the WhatsApp account linked to the session; nil after a logout.
	Me *Me `json:"me"`
	// Engine is WAHA's engine object, e.g. {"engine":"NOWEB"}; {} while stopped.
	// Kept raw because its shape differs between versions and engines.
	Engine json.RawMessage `json:"engine,omitempty"`
	// Config is the session's configuration as WAHA stores it (often null); raw
	// for the same reason as Engine.
	Config json.RawMessage `json:"config,omitempty"`
}

// Me identifies the WhatsApp account a session is logged in as.
type Me struct {
	// ID is the account's WhatsApp id, e.g. "4915100000001@c.us".
	ID string `json:"id"`
	// PushName is the account's display name, when WAHA knows it.
	PushName string `json:"pushName,omitempty"`
}

// LogoutResult is a successful logout.
type LogoutResult struct {
	// HTTPStatus is the 2xx status WAHA answered (201 on real servers).
	HTTPStatus int
	// Session is the session after the logout as WAHA reported it; nil when the
	// body was empty (the deprecated route answers no body) or was JSON but not
	// an object.
	Session *Session
	// Deprecated is true when the logout went through the deprecated
	// POST /api/sessions/logout route, which also deletes the session.
	Deprecated bool
}

// MaxSessionNameLen is WAHA's limit on session names (its create DTO's rule).
const MaxSessionNameLen = 54

var sessionNameRE = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)

// ValidateSessionName checks WAHA's rule for session names (^[a-zA-Z0-9_-]+$,
// at most 54 characters). Checking before the call keeps a bad name from
// becoming a confusing 404 ("Cannot POST ...") or reaching another route, and
// lets callers reject bad input before it is queued. The error wraps
// ErrInvalidSessionName.
func ValidateSessionName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: the name is empty; WAHA session names are 1 to %d letters, digits, '_' or '-'", ErrInvalidSessionName, MaxSessionNameLen)
	case len(name) > MaxSessionNameLen:
		return fmt.Errorf("%w %s: it is %d characters long; WAHA allows at most %d", ErrInvalidSessionName, quoteShort(name), len(name), MaxSessionNameLen)
	case !sessionNameRE.MatchString(name):
		return fmt.Errorf("%w %s: only letters, digits, '_' and '-' are allowed (WAHA's rule ^[a-zA-Z0-9_-]+$)", ErrInvalidSessionName, quoteShort(name))
	}
	return nil
}

// quoteShort quotes a name for an error message, shortened so that a hostile
// input cannot blow up logs.
func quoteShort(s string) string {
	const limit = 64
	if len(s) > limit {
		return fmt.Sprintf("%q…", s[:limit])
	}
	return fmt.Sprintf("%q", s)
}
