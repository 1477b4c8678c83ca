package wahaclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"unicode/utf8"
)

// DefaultTimeout is the per-call timeout when Config.Timeout is zero. A logout
// of a running session takes 3 s or more on a real server (longer on WEBJS), so
// the default leaves plenty of room while still freeing a worker slot held by a
// hung server.
const DefaultTimeout = 60 * time.Second

// Caps on response bodies read into memory, so a hostile or broken server
// cannot exhaust the worker's memory. ListSessions reads a listing whole,
// so it is allowed to be large; EachSession streams one instead and needs
// no cap on the body (MaxListEntryBytes bounds one entry).
const (
	maxBodyBytes     = 1 << 20  // error bodies and single session objects
	maxListBodyBytes = 64 << 20 // GET /api/sessions
)

// Config configures a Client.
type Config struct {
	// BaseURL is the WAHA server, e.g. "http://127.0.0.1:3000". Required. A path
	// prefix (a WAHA behind a reverse proxy at /waha) is kept; trailing slashes
	// do not matter. It must not carry a query or fragment: the API key belongs
	// in APIKey, never in a URL that could end up in a log line.
	BaseURL string
	// APIKey is sent as the X-Api-Key header, and only there (never in the URL,
	// never in errors or logs). Empty sends no header, for servers without a key.
	APIKey string
	// HTTPClient performs the calls. Default: a client with its own tuned
	// transport (MaxIdleConnsPerHost 64, so a worker with many concurrent
	// logouts reuses connections) and no client-wide Timeout (ctx and Timeout
	// govern). Whatever client is given, redirects are never followed: a
	// redirected POST would turn into a GET and the X-Api-Key header would be
	// forwarded to whatever host the redirect names.
	HTTPClient *http.Client
	// Timeout bounds each call on top of the caller's ctx. Default (zero or
	// negative): DefaultTimeout, 60 s.
	Timeout time.Duration
	// Redact lists further secrets (e.g. the validation service's key) to
	// remove from every text the server sends before it becomes part of an
	// error or a result. APIKey and a password in BaseURL are always
	// redacted. Defaults to none beyond those.
	Redact []string
	// Trace wraps the transport in otelhttp, so each call to WAHA is a client
	// span of the caller's trace (set when OpenTelemetry tracing is on).
	// Defaults to false: no wrapper, no cost.
	Trace bool
}

// Client talks to one WAHA server. It is safe for concurrent use; create one
// per server and share it.
type Client struct {
	base    *url.URL
	apiKey  string
	hc      *http.Client
	timeout time.Duration
	// legacy remembers that this server answered "Cannot POST" for the current
	// logout route, so later logouts go straight to the deprecated route instead
	// of paying a wasted round trip each.
	legacy atomic.Bool
	now    func() time.Time
	redact *redactor
}

// New checks cfg and returns a Client. It makes no network call.
func New(cfg Config) (*Client, error) {
	base, err := parseBaseURL(cfg.BaseURL)
	if err != nil {
		return nil, err
	}
	if strings.ContainsAny(cfg.APIKey, "\r\n") {
		return nil, errors.New("wahaclient: the API key contains a line break; check how it was read (a trailing newline from a file?)")
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Transport: defaultTransport()}
	}
	// Copy so the caller's client keeps its own redirect policy elsewhere.
	own := *hc
	own.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if cfg.Trace {
		rt := own.Transport
		if rt == nil {
			rt = http.DefaultTransport
		}
		own.Transport = otelhttp.NewTransport(rt)
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	secrets := append([]string{cfg.APIKey}, urlSecrets(base)...)
	return &Client{base: base, apiKey: cfg.APIKey, hc: &own, timeout: timeout, now: time.Now,
		redact: newRedactor(append(secrets, cfg.Redact...)...)}, nil
}

func parseBaseURL(raw string) (*url.URL, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return nil, errors.New("wahaclient: BaseURL is required, e.g. http://127.0.0.1:3000")
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		// Do not echo raw: a mistyped URL may contain credentials.
		return nil, errors.New("wahaclient: BaseURL must be an absolute http:// or https:// URL, e.g. http://127.0.0.1:3000")
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return nil, errors.New("wahaclient: BaseURL must not carry a query or fragment; give the API key in Config.APIKey")
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

func defaultTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 256
	t.MaxIdleConnsPerHost = 64
	t.IdleConnTimeout = 90 * time.Second
	t.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	return t
}

// Logout logs the session out: POST /api/sessions/{session}/logout. Any 2xx is
// success. On a server that lacks that route (WAHA answers 404 "Cannot POST
// ..."), it falls back to the deprecated POST /api/sessions/logout
// {"name": session} and remembers the server's age for later calls. Note that
// the deprecated route also deletes the session.
//
// An invalid name fails at once with ErrInvalidSessionName, without an HTTP
// call. Other failures are *APIError values (see the sentinels).
func (c *Client) Logout(ctx context.Context, session string) (*LogoutResult, error) {
	if err := ValidateSessionName(session); err != nil {
		return nil, err
	}
	if c.legacy.Load() {
		res, err := c.logoutDeprecated(ctx, session)
		if !errors.Is(err, ErrRouteMissing) {
			return res, err
		}
		// The server was upgraded past the deprecated route: forget and go on.
		c.legacy.Store(false)
	}
	res, err := c.logoutCurrent(ctx, session)
	if !errors.Is(err, ErrRouteMissing) {
		return res, err
	}
	res, err2 := c.logoutDeprecated(ctx, session)
	if errors.Is(err2, ErrRouteMissing) {
		// Neither route exists: report the first answer, it names the route a
		// person would expect.
		return nil, err
	}
	if err2 == nil || !errors.Is(err2, ErrTransient) {
		// The deprecated route exists (it answered something of its own).
		c.legacy.Store(true)
	}
	return res, err2
}

func (c *Client) logoutCurrent(ctx context.Context, session string) (*LogoutResult, error) {
	status, body, err := c.do(ctx, "logout", http.MethodPost, "/api/sessions/"+session+"/logout", nil, nil, maxBodyBytes)
	if err != nil {
		return nil, err
	}
	s, err := c.decodeSessionBody("logout", status, body)
	if err != nil {
		return nil, err
	}
	return &LogoutResult{HTTPStatus: status, Session: s}, nil
}

func (c *Client) logoutDeprecated(ctx context.Context, session string) (*LogoutResult, error) {
	payload, _ := json.Marshal(struct {
		Name string `json:"name"`
	}{session})
	status, body, err := c.do(ctx, "logout", http.MethodPost, "/api/sessions/logout", nil, payload, maxBodyBytes)
	if err != nil {
		return nil, err
	}
	s, err := c.decodeSessionBody("logout", status, body)
	if err != nil {
		return nil, err
	}
	return &LogoutResult{HTTPStatus: status, Session: s, Deprecated: true}, nil
}

// GetSession returns GET /api/sessions/{name}. A missing session is an
// *APIError with Kind ErrSessionNotFound, also on WAHA Core for names other
// than "default" (only Core's logout route answers those 422).
func (c *Client) GetSession(ctx context.Context, name string) (*Session, error) {
	if err := ValidateSessionName(name); err != nil {
		return nil, err
	}
	status, body, err := c.do(ctx, "get session", http.MethodGet, "/api/sessions/"+name, nil, nil, maxBodyBytes)
	if err != nil {
		return nil, err
	}
	s, err := c.decodeSessionBody("get session", status, body)
	if err != nil {
		return nil, err
	}
	if s == nil {
		return nil, c.unexpectedBody("get session", status, "an empty body instead of a session object", nil)
	}
	return s, nil
}

// ListSessions returns GET /api/sessions; with all=true (?all=true) STOPPED
// sessions are included. It holds the whole answer (up to 64 MiB) and fails
// on any entry that is not a session; EachSession streams a listing of any
// length entry by entry and skips such entries, which is what a bulk
// teardown of "all sessions" uses.
func (c *Client) ListSessions(ctx context.Context, all bool) ([]Session, error) {
	var q url.Values
	if all {
		q = url.Values{"all": {"true"}}
	}
	status, body, err := c.do(ctx, "list sessions", http.MethodGet, "/api/sessions", q, nil, maxListBodyBytes)
	if err != nil {
		return nil, err
	}
	var out []Session
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, c.unexpectedBody("list sessions", status, "a body that is not a JSON array of sessions", nil)
	}
	if out == nil {
		out = []Session{}
	}
	return out, nil
}

// decodeSessionBody reads a 2xx body. Empty is fine (nil): the deprecated
// logout route answers 201 with no body and no Content-Type. Anything else
// must be a session object, a JSON object with a string "name" and
// "status". Other answers are ErrRejected: a body that is not JSON means
// something other than WAHA answered (a web page at a wrong base URL), and
// JSON that is not a session ([1,2,3], "ok", {}) is not WAHA's logout answer
// either; counting those as logouts would hide a misconfiguration.
func (c *Client) decodeSessionBody(op string, status int, body []byte) (*Session, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil, nil
	}
	if !json.Valid(body) {
		return nil, c.unexpectedBody(op, status, "a body that is not JSON; is BaseURL pointing at WAHA?", body)
	}
	if body[0] != '{' {
		return nil, c.unexpectedBody(op, status, "JSON that is not a session object", body)
	}
	var probe struct {
		Name   *string `json:"name"`
		Status *string `json:"status"`
	}
	var s Session
	if json.Unmarshal(body, &probe) != nil || probe.Name == nil || probe.Status == nil || json.Unmarshal(body, &s) != nil {
		return nil, c.unexpectedBody(op, status, `a JSON object that is not a session (it needs a string "name" and "status")`, body)
	}
	// WAHA's data as sent: never redacted (see redactor).
	return &s, nil
}

// maxBodyEcho caps the part of an unexpected body kept in an error.
const maxBodyEcho = 256

// unexpectedBody is the ErrRejected error for a 2xx answer that is not
// what was asked for; body, redacted and shortened, is kept in it.
func (c *Client) unexpectedBody(op string, status int, what string, body []byte) error {
	e := &APIError{Op: op, StatusCode: status, Kind: ErrRejected, Message: "unexpected answer: " + what}
	if len(body) > 0 {
		e.Body = shorten(c.redact.text(string(body)), maxBodyEcho)
		e.Message += ": " + e.Body
	}
	return e
}

// shorten cuts s to at most n bytes on a rune boundary, marking the cut.
func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// do performs one call and returns the status and (capped) body of a 2xx
// answer; anything else is classified into an *APIError.
func (c *Client) do(ctx context.Context, op, method, path string, q url.Values, body []byte, maxBody int64) (int, []byte, error) {
	callCtx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()

	u := *c.base
	u.Path = c.base.Path + path
	if q != nil {
		u.RawQuery = q.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(callCtx, method, u.String(), rd)
	if err != nil {
		// err quotes the URL: keep it out of the message.
		return 0, nil, &APIError{Op: op, Kind: ErrRejected, Message: "cannot build the request", Err: err}
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "wahaq-wahaclient/1")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.apiKey != "" {
		req.Header.Set("X-Api-Key", c.apiKey)
	}

	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, c.transportError(ctx, op, err)
	}
	defer func() {
		// Drain a little so the connection can be reused, then close.
		_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
		_ = resp.Body.Close()
	}()
	ok := resp.StatusCode >= 200 && resp.StatusCode < 300
	limit := int64(maxBodyBytes)
	if ok {
		limit = maxBody
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		if ok {
			return 0, nil, c.transportError(ctx, op, err)
		}
		// The status line arrived; classify by it even if the body broke off.
		data = nil
	}
	if int64(len(data)) > limit {
		if ok {
			// Redact a generous head, then shorten it, so no cut leaves part
			// of a secret.
			return 0, nil, &APIError{Op: op, StatusCode: resp.StatusCode, Kind: ErrRejected,
				Message: fmt.Sprintf("unexpected answer: the body exceeds %d MiB", limit>>20),
				Body:    shorten(c.redact.text(string(data[:4096])), maxBodyEcho)}
		}
		data = data[:limit]
	}
	if apiErr := classify(op, response{Status: resp.StatusCode, Header: resp.Header, Body: data, Now: c.now(), Redact: c.redact}); apiErr != nil {
		return 0, nil, apiErr
	}
	return resp.StatusCode, data, nil
}

func (c *Client) transportError(ctx context.Context, op string, err error) *APIError {
	return classify(op, response{Err: err, CallerErr: ctx.Err(), Timeout: c.timeout, Redact: c.redact})
}
