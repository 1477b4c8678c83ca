package wahaclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"
)

// Reasons EachSession gives for a listing entry that is not a session it can
// log out. Such an entry is skipped; the rest of the listing goes on.
const (
	// SkipNotObject: the entry is not a JSON object (1, "x", [], null).
	SkipNotObject = "not_object"
	// SkipNoName: the entry has no "name", or it is null.
	SkipNoName = "no_name"
	// SkipBadName: "name" is not a string, or breaks WAHA's rule
	// (ValidateSessionName): "../etc", "a/b", too long.
	SkipBadName = "bad_name"
	// SkipBadStatus: "status" is missing, not a string, or does not look
	// like a WAHA status (1 to 40 of A-Z and '_'). A well-formed status this
	// package does not know (a newer server's) is not skipped.
	SkipBadStatus = "bad_status"
)

// SkipReasons lists every reason EachSession may give, in a fixed order.
var SkipReasons = []string{SkipNotObject, SkipNoName, SkipBadName, SkipBadStatus}

// Bounds of a streamed listing. Memory does not grow with the listing (one
// entry is held at a time), so there is no cap on the body's size; these
// bound what one entry may cost and how long a listing may go on.
const (
	// MaxListEntryBytes caps one entry of a listing (give or take one read
	// of the body, a few KiB); a larger one ends the
	// listing as ErrRejected (the stream cannot be resumed after it). WAHA's
	// entries are a few hundred bytes.
	MaxListEntryBytes = 1 << 20
	// MaxListEntries bounds the entries of one listing, so that a server
	// that streams for ever cannot enqueue for ever.
	MaxListEntries = 10_000_000
)

// ListEntry is one entry of a session listing as EachSession reads it.
type ListEntry struct {
	// Session is the entry's name, status and account as WAHA sent them
	// (never redacted); set when Skip is "".
	Session Session
	// Skip is why the entry is not a session (one of the Skip* reasons),
	// or "".
	Skip string
}

// errEntryTooLarge ends a listing whose current entry exceeds
// MaxListEntryBytes.
var errEntryTooLarge = errors.New("entry too large")

// EachSession streams GET /api/sessions (with all=true, ?all=true: STOPPED
// sessions too) and calls fn for each entry in order, decoding one entry at
// a time, so memory does not grow with the listing. Entries that are not
// sessions are passed with Skip set and never fail the rest. A body that is
// not a JSON array, a syntax error, an entry over MaxListEntryBytes or more
// than MaxListEntries entries end the listing as ErrRejected; a connection
// that breaks off is ErrTransient. An error from fn stops the listing and
// is returned as it is.
//
// The per-call timeout (Config.Timeout) bounds the wait for the answer's
// headers and then each wait for more of the body, not the whole listing:
// a long listing read while its sessions are enqueued may take longer.
func (c *Client) EachSession(ctx context.Context, all bool, fn func(ListEntry) error) error {
	const op = "list sessions"
	var q url.Values
	if all {
		q = url.Values{"all": {"true"}}
	}
	body, status, done, err := c.open(ctx, op, "/api/sessions", q)
	if err != nil {
		return err
	}
	defer done()
	lr := &limitedEntryReader{r: body}
	dec := json.NewDecoder(lr)
	lr.dec = dec
	fail := func(err error) error {
		switch {
		case errors.Is(err, errEntryTooLarge):
			return c.unexpectedBody(op, status, fmt.Sprintf("a listing entry larger than %d KiB", MaxListEntryBytes>>10), nil)
		case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
			return &APIError{Op: op, StatusCode: status, Kind: ErrTransient, Message: "the listing broke off before its end", Err: err}
		}
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			return c.unexpectedBody(op, status, fmt.Sprintf("a body that is not a JSON array of sessions (syntax error at byte %d)", syn.Offset), nil)
		}
		return c.transportError(ctx, op, err)
	}
	tok, err := dec.Token()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return c.unexpectedBody(op, status, "an empty body instead of a JSON array of sessions", nil)
		}
		return fail(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return c.unexpectedBody(op, status, "a body that is not a JSON array of sessions", nil)
	}
	for n := 0; dec.More(); n++ {
		if n >= MaxListEntries {
			return c.unexpectedBody(op, status, fmt.Sprintf("a listing of more than %d entries", MaxListEntries), nil)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return fail(err)
		}
		if err := fn(c.entry(raw)); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil { // the closing ']'
		return fail(err)
	}
	return nil
}

// entry judges one raw listing entry.
func (c *Client) entry(raw json.RawMessage) ListEntry {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return ListEntry{Skip: SkipNotObject}
	}
	var probe struct {
		Name   json.RawMessage `json:"name"`
		Status json.RawMessage `json:"status"`
		Me     json.RawMessage `json:"me"`
	}
	if json.Unmarshal(raw, &probe) != nil {
		return ListEntry{Skip: SkipNotObject}
	}
	if len(probe.Name) == 0 || string(probe.Name) == "null" {
		return ListEntry{Skip: SkipNoName}
	}
	var s Session
	if json.Unmarshal(probe.Name, &s.Name) != nil {
		return ListEntry{Skip: SkipBadName}
	}
	if ValidateSessionName(s.Name) != nil {
		return ListEntry{Skip: SkipBadName}
	}
	if json.Unmarshal(probe.Status, &s.Status) != nil || !LooksLikeStatus(s.Status) {
		return ListEntry{Skip: SkipBadStatus}
	}
	if len(probe.Me) > 0 {
		// The account is informative only: a malformed one is dropped, the
		// session is still listed.
		var me Me
		if json.Unmarshal(probe.Me, &me) == nil && string(probe.Me) != "null" {
			s.Me = &me
		}
	}
	// WAHA's data as sent: names and statuses are never redacted (see
	// redactor).
	return ListEntry{Session: s}
}

// LooksLikeStatus reports whether s is shaped like a WAHA session status:
// 1 to 40 of A-Z and '_'. Newer servers add statuses, so the known ones are
// not a closed list; the shape is the rule (listing entries, status
// filters).
func LooksLikeStatus(s string) bool {
	if s == "" || len(s) > 40 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 'A' || c > 'Z') && c != '_' {
			return false
		}
	}
	return true
}

// limitedEntryReader fails a read once the decoder has buffered more than
// MaxListEntryBytes beyond its position, i.e. the entry being decoded is too
// large to hold.
type limitedEntryReader struct {
	r    io.Reader
	dec  *json.Decoder
	read int64
}

func (l *limitedEntryReader) Read(p []byte) (int, error) {
	// The decoder's read-ahead is its buffer: at most one entry plus one
	// read's worth (a few KiB), so this bounds memory too.
	if l.read-l.dec.InputOffset() > MaxListEntryBytes {
		return 0, errEntryTooLarge
	}
	n, err := l.r.Read(p)
	l.read += int64(n)
	return n, err
}

// open sends a GET and returns the body of a 2xx answer to be streamed:
// the per-call timeout bounds the wait for the headers and then each read
// of the body (idleBody). Anything but a 2xx is classified into an
// *APIError as do does. done must be called once the body is read.
func (c *Client) open(ctx context.Context, op, path string, q url.Values) (io.Reader, int, func(), error) {
	callCtx, cancel := context.WithCancel(ctx)
	var fired atomic.Bool
	timer := time.AfterFunc(c.timeout, func() { fired.Store(true); cancel() })
	stop := func() { timer.Stop(); cancel() }
	u := *c.base
	u.Path = c.base.Path + path
	if q != nil {
		u.RawQuery = q.Encode()
	}
	req, err := http.NewRequestWithContext(callCtx, http.MethodGet, u.String(), nil)
	if err != nil {
		stop()
		return nil, 0, nil, &APIError{Op: op, Kind: ErrRejected, Message: "cannot build the request", Err: err}
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "wahaq-wahaclient/1")
	if c.apiKey != "" {
		req.Header.Set("X-Api-Key", c.apiKey)
	}
	timedOut := func(err error) error {
		if fired.Load() && ctx.Err() == nil {
			return context.DeadlineExceeded
		}
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		stop()
		return nil, 0, nil, c.transportError(ctx, op, timedOut(err))
	}
	timer.Stop()
	closeBody := func() {
		_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
		_ = resp.Body.Close()
		stop()
	}
	if resp.StatusCode < 200 || resp.StatusCode >= 300 {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, maxBodyBytes))
		closeBody()
		return nil, 0, nil, classify(op, response{Status: resp.StatusCode, Header: resp.Header, Body: data, Now: c.now(), Redact: c.redact})
	}
	return &idleBody{r: resp.Body, timer: timer, d: c.timeout, timedOut: timedOut}, resp.StatusCode, closeBody, nil
}

// idleBody arms the per-call timeout around each read of a streamed body:
// time the caller spends between reads (enqueueing what it read) is not
// the server's.
type idleBody struct {
	r        io.Reader
	timer    *time.Timer
	d        time.Duration
	timedOut func(error) error
}

func (b *idleBody) Read(p []byte) (int, error) {
	b.timer.Reset(b.d)
	n, err := b.r.Read(p)
	b.timer.Stop()
	if err != nil && err != io.EOF {
		err = b.timedOut(err)
	}
	return n, err
}
