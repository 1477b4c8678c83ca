// Package audit is wahaq's audit log: one entry for every call that changes
// state, over the HTTP API, in the console or from the CLI, refused and
// failed calls included: who (the token's name, or "cli:<OS user>"), what,
// on which task, batch or instance, with which parameters (never a secret),
// with what result, from where.
//
// The log is a Redis stream (store.AuditKey) bounded by age and by count
// (WAHAQ_AUDIT_MAX_AGE, 90 days, and WAHAQ_AUDIT_MAX_ENTRIES, 1,000,000):
// each append drops what falls outside both bounds. Nothing is dropped
// silently: every page of the log (GET /v1/audit, `wahaq audit`, the
// console) says how far back it goes.
package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/user"
	"strings"
	"time"

	"github.com/wahaq/wahaq/internal/store"
)

// Defaults of the log's bounds.
const (
	// DefaultMaxAge is how long entries are kept: 90 days.
	DefaultMaxAge = 90 * 24 * time.Hour
	// DefaultMaxEntries is how many entries are kept at most.
	DefaultMaxEntries = 1_000_000
)

// Where a call came from (Entry.Via).
const (
	ViaHTTP    = "http"
	ViaConsole = "console"
	ViaCLI     = "cli"
)

// Outcomes of a call (Entry.Outcome).
const (
	// OutcomeOK: the call did what it was asked (2xx).
	OutcomeOK = "ok"
	// OutcomeRefused: the caller was not allowed (403): nothing was done.
	OutcomeRefused = "refused"
	// OutcomeFailed: the call was bad (4xx) or failed (5xx).
	OutcomeFailed = "failed"
)

// Target names what a call touched; empty fields are left out.
type Target struct {
	Task     string `json:"task,omitempty"`
	Batch    string `json:"batch,omitempty"`
	Instance string `json:"instance,omitempty"`
}

// Entry is one audit entry.
type Entry struct {
	// ID is the entry's stream id; set by the log.
	ID string `json:"id"`
	// Time is when the call was recorded; set by the log.
	Time time.Time `json:"time"`
	// Actor is the token's name (the tokens file's, or "env-<hash prefix>"
	// for WAHAQ_API_TOKENS), "anonymous" without authentication, or
	// "cli:<OS user>".
	Actor string `json:"actor"`
	// Role is the actor's role (none for the CLI, which holds Redis itself).
	Role string `json:"role,omitempty"`
	// Via is http, console or cli.
	Via string `json:"via"`
	// Action names the call: logout.enqueue, batch.create, batch.cancel,
	// task.cancel, dlq.requeue, dlq.purge, … (the route table's).
	Action string `json:"action"`
	// Target is what it touched.
	Target Target `json:"target"`
	// Params are the request's parameters, secrets left out.
	Params map[string]any `json:"params,omitempty"`
	// Outcome is ok, refused or failed.
	Outcome string `json:"outcome"`
	// Status is the HTTP status answered (0 for the CLI).
	Status int `json:"status,omitempty"`
	// Detail says why a call was refused or failed.
	Detail string `json:"detail,omitempty"`
	// Result holds the call's counts (enqueued, canceled, requeued, purged, …).
	Result map[string]int64 `json:"result,omitempty"`
	// RequestID is the request's X-Request-Id.
	RequestID string `json:"request_id,omitempty"`
	// Remote is the caller's address.
	Remote string `json:"remote,omitempty"`
}

// Options bound the log.
type Options struct {
	// MaxAge drops entries older than it. Defaults to DefaultMaxAge.
	MaxAge time.Duration
	// MaxEntries keeps only the newest so many. Defaults to
	// DefaultMaxEntries.
	MaxEntries int64
}

// Log appends to and reads the audit log. It is safe for concurrent use.
type Log struct {
	st   *store.Store
	opts Options
}

// New returns the log of st's namespace.
func New(st *store.Store, opts Options) *Log {
	if opts.MaxAge <= 0 {
		opts.MaxAge = DefaultMaxAge
	}
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = DefaultMaxEntries
	}
	return &Log{st: st, opts: opts}
}

// Append records e (its ID and Time are set by the log) and returns its id.
func (l *Log) Append(ctx context.Context, e Entry) (string, error) {
	e.ID, e.Time = "", time.Time{}
	for k, v := range e.Params {
		// Unset parameters say nothing; false and 0 do.
		if v == nil || v == "" || isEmptyList(v) {
			delete(e.Params, k)
		}
	}
	if e.Outcome == "" {
		e.Outcome = OutcomeOK
	}
	data, err := json.Marshal(e)
	if err != nil {
		return "", fmt.Errorf("audit: %w", err)
	}
	return l.st.AuditAppend(ctx, data, l.opts.MaxAge, l.opts.MaxEntries)
}

func isEmptyList(v any) bool {
	switch l := v.(type) {
	case []string:
		return len(l) == 0
	case []any:
		return len(l) == 0
	}
	return false
}

// Query selects entries; empty fields select everything.
type Query struct {
	// Actor is a token's name; "cli" selects every CLI user.
	Actor string
	// Action is an action's name.
	Action string
	// Target is a task id, batch id or instance name.
	Target string
	// Since and Until bound the entries' time (inclusive).
	Since, Until time.Time
	// Cursor continues a listing: the NextCursor of the page before.
	Cursor string
	// Limit is how many entries a page holds at most. Defaults to
	// DefaultLimit; at most MaxLimit.
	Limit int
}

// Paging bounds.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
	// maxScan bounds the entries one page reads when a filter skips most
	// of them: the page then ends early with a NextCursor.
	maxScan = 20_000
	chunk   = 500
)

// Retention says how far back the log goes.
type Retention struct {
	// MaxAge is the age bound ("2160h").
	MaxAge string `json:"max_age"`
	// MaxEntries is the count bound.
	MaxEntries int64 `json:"max_entries"`
	// Entries is how many entries the log holds now.
	Entries int64 `json:"entries"`
	// Oldest is the time of the oldest entry kept; null when the log is empty.
	Oldest *time.Time `json:"oldest"`
}

// Page is one page of entries, newest first.
type Page struct {
	Entries []Entry `json:"entries"`
	// NextCursor continues the listing; empty at its end.
	NextCursor string `json:"next_cursor,omitempty"`
	// Retention says how far back the log goes.
	Retention Retention `json:"retention"`
}

// Retention reads how far back the log goes.
func (l *Log) Retention(ctx context.Context) (Retention, error) {
	n, oldest, err := l.st.AuditSpan(ctx)
	if err != nil {
		return Retention{}, err
	}
	r := Retention{MaxAge: l.opts.MaxAge.String(), MaxEntries: l.opts.MaxEntries, Entries: n}
	if !oldest.IsZero() {
		r.Oldest = &oldest
	}
	return r, nil
}

// List returns a page of the entries q selects, newest first.
func (l *Log) List(ctx context.Context, q Query) (*Page, error) {
	if q.Limit <= 0 {
		q.Limit = DefaultLimit
	}
	q.Limit = min(q.Limit, MaxLimit)
	if q.Cursor != "" && store.AuditIDTime(q.Cursor).IsZero() {
		return nil, fmt.Errorf("%w: cursor %q is not one this log gave", ErrBadQuery, q.Cursor)
	}
	before := q.Cursor
	if before == "" && !q.Until.IsZero() {
		// Every entry of the Until millisecond is included.
		before = fmt.Sprintf("%d", q.Until.UnixMilli()+1)
	}
	from := ""
	if !q.Since.IsZero() {
		from = fmt.Sprintf("%d", q.Since.UnixMilli())
	}
	p := &Page{Entries: []Entry{}}
	scanned := 0
	for {
		got, err := l.st.AuditBefore(ctx, before, from, chunk)
		if err != nil {
			return nil, err
		}
		stop := false
		for i, se := range got {
			scanned++
			before = se.ID
			var e Entry
			if json.Unmarshal(se.JSON, &e) == nil {
				e.ID, e.Time = se.ID, store.AuditIDTime(se.ID)
				if q.matches(e) {
					p.Entries = append(p.Entries, e)
				}
			}
			if len(p.Entries) == q.Limit || scanned >= maxScan {
				// More may follow unless this was the log's last entry.
				if i < len(got)-1 || len(got) == chunk {
					p.NextCursor = se.ID
				}
				stop = true
				break
			}
		}
		if stop || len(got) < chunk {
			break
		}
	}
	var err error
	if p.Retention, err = l.Retention(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

func (q Query) matches(e Entry) bool {
	switch {
	case q.Actor != "" && e.Actor != q.Actor && !(q.Actor == ViaCLI && strings.HasPrefix(e.Actor, ViaCLI+":")):
		return false
	case q.Action != "" && e.Action != q.Action:
		return false
	case q.Target != "" && e.Target.Task != q.Target && e.Target.Batch != q.Target && e.Target.Instance != q.Target:
		return false
	}
	return true
}

// ErrBadQuery marks a query that cannot be answered (a cursor not from this
// log).
var ErrBadQuery = fmt.Errorf("bad audit query")

// CLIActor names the person running the CLI: "cli:<OS user>".
func CLIActor() string {
	name := ""
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	if name == "" {
		name = os.Getenv("USER")
	}
	if name == "" {
		name = "unknown"
	}
	return ViaCLI + ":" + name
}

// SafeURL is a URL as the audit log may keep it: scheme, host and path; its
// user info, query and fragment (where secrets travel) left out.
func SafeURL(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(not a URL)"
	}
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
}

// Outcome classifies an HTTP status.
func Outcome(status int) string {
	switch {
	case status == 401 || status == 403:
		return OutcomeRefused
	case status >= 400:
		return OutcomeFailed
	}
	return OutcomeOK
}
