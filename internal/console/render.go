package console

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/wahaq/wahaq/internal/access"
	"github.com/wahaq/wahaq/tasks"
)

// page is what every template gets: the layout's fields and the page's Data.
type page struct {
	Title string
	// Nav names the active navigation item.
	Nav string
	// Session is set on signed-in pages: the layout needs its CSRF token for
	// the sign-out form.
	Session *session
	// Open is true without authentication (the banner).
	Open bool
	// Live is the URL of the page's live JSON fragment, if it has one.
	Live string
	// Refresh is the meta refresh of a live page without JavaScript, in
	// seconds.
	Refresh int
	// Every is how often the script fetches the fragment, in milliseconds.
	Every int64
	// TraceURL is the link to the task's trace (Config.TraceURL filled), if any.
	TraceURL string
	// Token is the signed-in token (its name, role and scope); set by
	// render from Session.
	Token *access.Token
	// Audit is true when the console has an audit log (the Audit link).
	Audit bool
	Data  any
}

// CSRF is the session's CSRF token, for forms.
func (p page) CSRF() string {
	if p.Session == nil {
		return ""
	}
	return p.Session.csrf
}

// message is the Data of the message page.
type message struct {
	Heading, Text, Link string
}

// pageNames are the templates under templates/, each rendered inside
// layout.html.
var pageNames = []string{"signin", "message", "overview", "batches", "batch", "dlq", "confirm", "task", "lookup", "audit", "teardown", "check"}

var funcs = template.FuncMap{
	"ago":      ago,
	"dur":      fmtDur,
	"pct":      pct,
	"rate":     fmtRate,
	"outcome":  fmtOutcome,
	"str":      func(p *string) string { return deref(p) },
	"when":     fmtTime,
	"states":   func() []tasks.State { return tasks.AllStates },
	"outcomes": func() []tasks.Outcome { return tasks.AllOutcomes },
	"dead":     func() []tasks.Outcome { return deadOutcomes },
	"live":     func() []tasks.State { return liveStates },
	"ptr":      func(t time.Time) *time.Time { return &t },
	"counts":   counts,
	"join":     strings.Join,
	"has":      func(ss []string, s string) bool { return slices.Contains(ss, s) },
	"deref64": func(p *int64) int64 {
		if p == nil {
			return 0
		}
		return *p
	},
	// yes and no read a *bool that may be nil (unknown): both false then.
	"yes": func(b *bool) bool { return b != nil && *b },
	"no":  func(b *bool) bool { return b != nil && !*b },
	"ms": func(f *float64) string {
		if f == nil {
			return "—"
		}
		return fmt.Sprintf("%.1f ms", *f)
	},
}

// liveStates are the states a task has in asynq's queues.
var liveStates = []tasks.State{tasks.StateScheduled, tasks.StatePending, tasks.StateActive, tasks.StateRetrying}

// deadOutcomes are the outcomes of dead letters.
var deadOutcomes = []tasks.Outcome{tasks.OutcomeAuthFailed, tasks.OutcomeRejected, tasks.OutcomeRetriesExhausted}

func (c *Console) parse() error {
	c.pages = map[string]*template.Template{}
	for _, n := range pageNames {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+n+".html")
		if err != nil {
			return fmt.Errorf("console: template %s: %w", n, err)
		}
		c.pages[n] = t
	}
	return nil
}

// render writes a page; a template error is logged and answered 500 before
// anything is sent, because the page is rendered into a buffer first.
func (c *Console) render(w http.ResponseWriter, r *http.Request, code int, name string, p page) {
	p.Open = c.open
	p.Audit = c.audit != nil
	if p.Session != nil {
		p.Token = c.tokenOf(*p.Session)
	}
	p.Every = c.refresh.Milliseconds()
	if p.Refresh == 0 && p.Live != "" {
		p.Refresh = 5
	}
	var buf bytes.Buffer
	if err := c.pages[name].Execute(&buf, p); err != nil {
		c.log.Error().Err(err).Str("page", name).Msg("console: cannot render")
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = buf.WriteTo(w)
}

// live is a live fragment: texts by data-f key, progress values by data-p
// key, and done when the figures will not change any more.
type live struct {
	F    map[string]string `json:"f"`
	P    map[string]int    `json:"p,omitempty"`
	Done bool              `json:"done,omitempty"`
}

func (c *Console) writeLive(w http.ResponseWriter, l live) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(l)
}

// fail answers a page whose data could not be read.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, s session, err error) {
	c.log.Error().Err(err).Str("path", r.URL.Path).Msg("console: cannot read")
	if isLive(r) {
		http.Error(w, "cannot read the figures", http.StatusServiceUnavailable)
		return
	}
	c.render(w, r, http.StatusServiceUnavailable, "message", page{Title: "Unavailable", Session: &s,
		Data: message{Heading: "Figures unavailable", Text: "wahaq could not read them from Redis. Try again in a moment.", Link: r.URL.RequestURI()}})
}

func (c *Console) notFound(w http.ResponseWriter, r *http.Request, s session, what string) {
	c.render(w, r, http.StatusNotFound, "message", page{Title: "Not found", Session: &s,
		Data: message{Heading: "Not found", Text: what, Link: mount}})
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return fmtDur(time.Since(t)) + " ago"
}

func fmtTime(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// fmtDur shows a duration to a person: 850ms, 42s, 3m 20s, 5h 02m, 3d 4h.
func fmtDur(d time.Duration) string {
	switch {
	case d <= 0:
		return "0s"
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm %02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh %02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd %dh", int(d.Hours())/24, int(d.Hours())%24)
}

func pct(done, total int64) int {
	if total <= 0 {
		return 0
	}
	return int(math.Floor(float64(done) * 100 / float64(total)))
}

func fmtRate(perMin float64) string {
	if perMin < 0 {
		return "—"
	}
	if perMin >= 120 {
		return fmt.Sprintf("%.0f/s", perMin/60)
	}
	return fmt.Sprintf("%.0f/min", perMin)
}

func fmtOutcome(o *tasks.Outcome) string {
	if o == nil {
		return "—"
	}
	return string(*o)
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func trim(s string) string { return strings.TrimSpace(s) }

func urlQuery(s string) string { return url.QueryEscape(s) }
