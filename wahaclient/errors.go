package wahaclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Sentinel errors. Every error the client returns for a failed call is an
// *APIError whose Kind is one of these, so callers decide what to do with
// errors.Is alone: retry (ErrTransient), dead-letter for a person
// (ErrUnauthorized, ErrForbidden, ErrRejected), or treat as done
// (ErrSessionNotFound).
var (
	// ErrUnauthorized means WAHA (or the validation service) answered 401: the API
	// key is missing or wrong. Retrying will not help until a person fixes the key.
	ErrUnauthorized = errors.New("waha: unauthorized")
	// ErrForbidden means a 403: the key is valid but its scope does not cover this
	// session or action (session-scoped keys of newer WAHA versions: a logout
	// needs the "control" action on the session). The message says which.
	ErrForbidden = errors.New("waha: forbidden")
	// ErrSessionNotFound means WAHA said the session does not exist, so there is
	// nothing to log out. It is kept apart from ErrRouteMissing, which is also a 404.
	ErrSessionNotFound = errors.New("waha: session not found")
	// ErrRouteMissing means the server does not have the route at all (404
	// "Cannot POST ..."), i.e. it is an older or newer WAHA than the call expects.
	// Logout handles it itself by falling back to the deprecated route.
	ErrRouteMissing = errors.New("waha: route missing on this server")
	// ErrRejected means WAHA refused the request for good (400, 409, 422, 501,
	// ...), for example WAHA Core refusing a session other than "default", or
	// a 501 from a session whose engine does not implement the call (WAHA
	// 2025.6.6+). Retrying the same request gives the same answer.
	ErrRejected = errors.New("waha: request rejected")
	// ErrTransient covers everything worth retrying later: connection errors,
	// timeouts, 408, 425, 429 and 5xx answers but 501.
	ErrTransient = errors.New("waha: transient failure")
	// ErrSessionBusy means WAHA answered 500 "async-lock timed out in queue
	// <session>": the session's operations queued up past its lock's timeout
	// (WAHA 2025.6.3+, under load). It is transient: errors.Is(err,
	// ErrTransient) holds too; it has a name of its own so that callers can
	// count it apart from a failing server.
	ErrSessionBusy = fmt.Errorf("waha: session busy, its operations lock timed out: %w", ErrTransient)
	// ErrInvalidSessionName means the name breaks WAHA's rule (^[a-zA-Z0-9_-]+$,
	// at most 54 characters). It is detected before any HTTP call.
	ErrInvalidSessionName = errors.New("invalid session name")
)

// APIError describes a failed call. It never contains the API key or any other
// configured secret (Config.Redact): the key travels only in a header, neither
// headers nor request bodies are copied into errors, and whatever the server
// answered (which may echo the key) is redacted before it is kept.
type APIError struct {
	// Op is the operation that failed: "logout", "get session", "list sessions"
	// or "validate".
	Op string
	// StatusCode is the HTTP status WAHA answered, or 0 when no answer arrived
	// (connection refused or reset, timeout, cancellation).
	StatusCode int
	// Message is WAHA's own message (an array of messages is joined with "; "),
	// the status text when the body was not WAHA's JSON (e.g. a proxy page), or a
	// description of the transport failure. It is capped at a few KiB because it
	// ends up stored in task results.
	Message string
	// RetryAfter is the delay the server asked for with Retry-After on a 429 or
	// 503 answer; 0 when none was given.
	RetryAfter time.Duration
	// Kind is one of the package's sentinel errors; errors.Is(err, Kind) is true.
	Kind error
	// Err is the underlying transport error (for StatusCode 0), kept so that
	// errors.Is(err, context.Canceled) and errors.As(err, *net.OpError) work. Nil
	// for HTTP answers. Its own text is not redacted; Error() never shows it.
	Err error
	// Body is, for a 2xx answer the client could not take as what it asked
	// for (a logout answered with [1,2,3]), WAHA's body: redacted and
	// shortened to a few hundred bytes. Empty otherwise.
	Body string
}

// Error renders e.g. `waha logout: 422 Unprocessable Entity: WAHA Core support
// only 'default' session...` or `waha logout: connection refused`.
func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString("waha ")
	b.WriteString(e.Op)
	b.WriteString(": ")
	if e.StatusCode != 0 {
		b.WriteString(strconv.Itoa(e.StatusCode))
		if t := http.StatusText(e.StatusCode); t != "" {
			b.WriteString(" ")
			b.WriteString(t)
		}
		if e.Message != "" && e.Message != http.StatusText(e.StatusCode) {
			b.WriteString(": ")
			b.WriteString(e.Message)
		}
		if e.RetryAfter > 0 {
			fmt.Fprintf(&b, " (retry after %s)", e.RetryAfter)
		}
		return b.String()
	}
	if e.Message != "" {
		b.WriteString(e.Message)
	} else if e.Kind != nil {
		b.WriteString(e.Kind.Error())
	}
	return b.String()
}

// Unwrap exposes both the Kind sentinel and the underlying transport error, so
// errors.Is works for ErrTransient and for context.Canceled alike. (A single
// Unwrap() error could only expose one of them.)
func (e *APIError) Unwrap() []error {
	errs := make([]error, 0, 2)
	if e.Kind != nil {
		errs = append(errs, e.Kind)
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

// RetryAfter reports the delay a server asked for (Retry-After on a 429 or 503)
// anywhere in err's chain. ok is false when there is none, in which case the
// caller uses its own backoff.
func RetryAfter(err error) (time.Duration, bool) {
	var ae *APIError
	if errors.As(err, &ae) && ae.RetryAfter > 0 {
		return ae.RetryAfter, true
	}
	return 0, false
}

// maxMessageLen caps APIError.Message: a hostile or broken server must not be
// able to make the worker store megabytes per task result.
const maxMessageLen = 2048

// response is what classify needs to know about one attempt: either an HTTP
// answer (Status != 0) or a transport error (Err != nil).
type response struct {
	Status int
	Header http.Header
	Body   []byte
	Err    error
	// CallerErr is the caller's own ctx.Err() at the time of the failure; it
	// tells "the caller gave up" apart from "our per-call timeout fired".
	CallerErr error
	// Timeout is the per-call timeout, for the message when it fired.
	Timeout time.Duration
	// Now is the time used to interpret an HTTP-date Retry-After.
	Now time.Time
	// Redact removes the configured secrets from the message; nil
	// redacts nothing.
	Redact *redactor
}

// classify turns one failed attempt into an *APIError. It is the single place
// where statuses and transport errors are mapped to sentinel kinds; it returns
// nil for a 2xx answer. The message is redacted, then capped (in that order,
// so a cut cannot leave half a secret behind).
func classify(op string, r response) *APIError {
	e := classifyRaw(op, r)
	if e != nil {
		e.Message = r.Redact.text(e.Message)
		if e.Kind == ErrForbidden {
			// wahaq's own words, after the redaction of the server's: a
			// short key that is also a word must not blank them
			e.Message = forbiddenDetail(op, e.Message)
		}
		e.Message = capMessage(e.Message)
	}
	return e
}

func classifyRaw(op string, r response) *APIError {
	if r.Status == 0 {
		return classifyTransport(op, r)
	}
	if r.Status >= 200 && r.Status < 300 {
		return nil
	}
	e := &APIError{Op: op, StatusCode: r.Status, Message: errorMessage(r.Status, r.Body)}
	switch s := r.Status; {
	case s == http.StatusUnauthorized:
		e.Kind = ErrUnauthorized
	case s == http.StatusForbidden:
		e.Kind = ErrForbidden
	case s == http.StatusNotFound:
		switch {
		case isSessionNotFound(e.Message):
			e.Kind = ErrSessionNotFound
		case strings.HasPrefix(e.Message, "Cannot "):
			e.Kind = ErrRouteMissing
		default:
			// A 404 that is not WAHA's (a proxy, a wrong base URL): neither
			// "nothing to do" nor "old server"; a person must look.
			e.Kind = ErrRejected
		}
	case s == http.StatusNotImplemented:
		// WAHA 2025.6.6+: the session's engine does not implement the call.
		// Asking again gets the same answer.
		e.Kind = ErrRejected
	case s == http.StatusInternalServerError && isLockTimeout(e.Message):
		e.Kind = ErrSessionBusy
	case s == http.StatusRequestTimeout, s == http.StatusTooEarly, s == http.StatusTooManyRequests, s >= 500:
		e.Kind = ErrTransient
		if s == http.StatusTooManyRequests || s == http.StatusServiceUnavailable {
			e.RetryAfter = parseRetryAfter(r.Header.Get("Retry-After"), r.Now)
		}
	default:
		// Other 4xx, and 1xx/3xx which a WAHA call never legitimately answers
		// (redirects are not followed, see Config.HTTPClient).
		e.Kind = ErrRejected
		if s >= 300 && s < 400 {
			if loc := r.Header.Get("Location"); loc != "" {
				e.Message = "unexpected redirect to " + StripUserinfo(loc)
			}
		}
	}
	return e
}

// classifyTransport handles attempts that got no HTTP answer. All of them are
// transient; the original error stays reachable through Err.
func classifyTransport(op string, r response) *APIError {
	e := &APIError{Op: op, Kind: ErrTransient, Err: r.Err}
	switch {
	case r.CallerErr != nil:
		// The caller canceled or its deadline passed: say so, and make sure
		// errors.Is(err, context.Canceled) holds even if the transport error
		// does not wrap it.
		e.Message = "request abandoned: " + r.CallerErr.Error()
		if !errors.Is(r.Err, r.CallerErr) {
			e.Err = errors.Join(r.Err, r.CallerErr)
		}
	case errors.Is(r.Err, context.DeadlineExceeded):
		e.Message = fmt.Sprintf("no answer within the per-call timeout of %s", r.Timeout)
	default:
		e.Message = transportMessage(r.Err)
	}
	return e
}

// transportMessage strips the *url.Error prefix ("Post \"http://...\": ") so the
// message is short and carries no URL; the full error remains in Err.
func transportMessage(err error) string {
	if err == nil {
		return "no answer"
	}
	msg := err.Error()
	var ue *url.Error
	if errors.As(err, &ue) && ue.Err != nil {
		msg = ue.Err.Error()
	}
	return msg
}

// isLockTimeout recognizes WAHA's "async-lock timed out in queue <session>"
// (the async-lock library's own wording), here at the client's edge so
// that callers classify by the sentinel.
func isLockTimeout(msg string) bool {
	return strings.HasPrefix(strings.TrimSpace(msg), "async-lock timed out")
}

// forbiddenDetail says what a 403 means for op. WAHA's own message is only
// "Forbidden"; since 2026.4.3 a key bound to sessions and actions gets it
// for a call outside them, and a person needs to know which action is
// missing. The validation service's 403 (an expired subscription) keeps
// its own message.
func forbiddenDetail(op, msg string) string {
	var need string
	switch op {
	case "logout":
		need = `the key is valid but scoped: it lacks the "control" action for this session, or it is bound to other sessions (WAHA 2026.4.3+ keys); give wahaq a key with "control" on every session it logs out`
	case "delete session":
		need = `the key is valid but scoped: it lacks the "delete" action for this session, or it is bound to other sessions (WAHA 2026.4.3+ keys)`
	case "get session":
		need = `the key is valid but scoped: it lacks the "read" action for this session, or it is bound to other sessions (WAHA 2026.4.3+ keys)`
	case "list sessions":
		need = "the key is valid but scoped to sessions: listing every session needs a key that is not (WAHA 2026.1.4+ keys)"
	default:
		return msg
	}
	if msg == "" || msg == http.StatusText(http.StatusForbidden) {
		return need
	}
	return msg + "; " + need
}

func isSessionNotFound(msg string) bool {
	m := strings.ToLower(strings.TrimSpace(msg))
	// "Session not found" is the current wording; older versions said
	// "We didn't find a session with name 'x'. Please start it first ...".
	return m == "session not found" || strings.HasPrefix(m, "we didn't find a session")
}

// errorMessage extracts WAHA's message from an error body by key, whatever the
// key order: {"message": string | [string...]} for NestJS errors and
// {"exception": {"message": ...}} for unhandled 500s. Anything else (an HTML
// page from a proxy, an empty body) yields the status text.
func errorMessage(status int, body []byte) string {
	var env struct {
		Message   json.RawMessage `json:"message"`
		Exception *struct {
			Message json.RawMessage `json:"message"`
			Name    string          `json:"name"`
		} `json:"exception"`
	}
	body = bytes.TrimSpace(body)
	if len(body) > 0 && body[0] == '{' && json.Unmarshal(body, &env) == nil {
		if m := rawMessage(env.Message); m != "" {
			return m
		}
		if env.Exception != nil {
			if m := rawMessage(env.Exception.Message); m != "" {
				return m
			}
			if env.Exception.Name != "" {
				return env.Exception.Name
			}
		}
	}
	return http.StatusText(status)
}

// rawMessage renders a message that may be a string or an array of strings.
func rawMessage(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return strings.TrimSpace(s)
	}
	var arr []json.RawMessage
	if json.Unmarshal(raw, &arr) == nil {
		parts := make([]string, 0, len(arr))
		for _, item := range arr {
			if p := rawMessage(item); p != "" {
				parts = append(parts, p)
			}
		}
		return strings.Join(parts, "; ")
	}
	if string(raw) == "null" {
		return ""
	}
	// A number or an object: keep it visible rather than dropping it.
	return string(raw)
}

func capMessage(s string) string {
	if len(s) <= maxMessageLen {
		return s
	}
	cut := maxMessageLen
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// maxRetryAfter bounds a server-provided delay so a broken proxy cannot park a
// task for days.
const maxRetryAfter = time.Hour

// parseRetryAfter reads delay-seconds or an HTTP-date. It returns 0 when the
// header is absent, malformed or in the past.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		if secs > int64(maxRetryAfter/time.Second) {
			return maxRetryAfter
		}
		d = time.Duration(secs) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		if now.IsZero() {
			now = time.Now()
		}
		d = t.Sub(now)
		if d <= 0 {
			return 0
		}
	} else {
		return 0
	}
	return min(d, maxRetryAfter)
}
