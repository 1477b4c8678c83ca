package console

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/wahaq/wahaq/internal/access"
	"github.com/wahaq/wahaq/internal/audit"
	"github.com/wahaq/wahaq/internal/duration"
	"github.com/wahaq/wahaq/tasks"
	"github.com/wahaq/wahaq/wahaclient"
)

// The roles of the console's teardown actions, as the API's: a batch of
// named sessions needs enqueue, one of every session (or some statuses)
// operate, and so does its preview; pausing and resuming need operate.
const (
	roleNamedBatch = access.RoleEnqueue
	roleAllBatch   = access.RoleOperate
	rolePause      = access.RoleOperate
)

// teardownForm is the New teardown form as the operator filled it.
type teardownForm struct {
	Server string
	// Selection is "all", "statuses" or "list".
	Selection string
	Statuses  []string
	// List is the pasted session names, one a line (or comma-separated).
	List string
	// When is "" (now), a delay ("30m", "2h", "P1D") or an RFC 3339 time.
	When string
}

// teardownView is the Data of the teardown page: the form, its choices, and
// after a preview what the batch would take.
type teardownView struct {
	Form     teardownForm
	Servers  []string
	Statuses []string
	Error    string
	Preview  *tasks.Preview
	// Names are the pasted sessions, checked.
	Names []string
	// WhenText says when the batch would run, for people.
	WhenText string
	// MoreNames is how many would-be-enqueued sessions the names leave out.
	MoreNames int64
}

// readTeardown reads and checks the form; it returns the request's parts
// or a sentence saying what is wrong.
func (c *Console) readTeardown(r *http.Request) (teardownForm, []string, tasks.When, string) {
	f := teardownForm{Server: trim(r.PostFormValue("server")), Selection: r.PostFormValue("selection"),
		List: r.PostFormValue("list"), When: trim(r.PostFormValue("when"))}
	for _, s := range r.PostForm["status"] {
		if s = trim(s); s != "" {
			f.Statuses = append(f.Statuses, s)
		}
	}
	var when tasks.When
	if !slices.Contains(c.src.insp.Instances(), f.Server) {
		return f, nil, when, fmt.Sprintf("Choose a WAHA server (there is no server named %q).", f.Server)
	}
	var names []string
	switch f.Selection {
	case "all":
		f.Statuses = nil
	case "statuses":
		if len(f.Statuses) == 0 {
			return f, nil, when, "Tick at least one status, or choose every session."
		}
		if _, err := tasks.NormalizeStatuses(f.Statuses); err != nil {
			return f, nil, when, err.Error()
		}
	case "list":
		f.Statuses = nil
		for _, line := range strings.FieldsFunc(f.List, func(r rune) bool { return r == '\n' || r == '\r' || r == ',' }) {
			if line = trim(line); line != "" {
				if err := wahaclient.ValidateSessionName(line); err != nil {
					return f, nil, when, fmt.Sprintf("The pasted list has a bad name: %v", err)
				}
				names = append(names, line)
			}
		}
		if len(names) == 0 {
			return f, nil, when, "Paste at least one session name, one a line."
		}
	default:
		return f, nil, when, "Choose every session, some statuses, or a pasted list."
	}
	switch {
	case f.When == "" || strings.EqualFold(f.When, "now"):
	case strings.ContainsAny(f.When, "T:") && !strings.HasPrefix(f.When, "P"):
		t, err := time.Parse(time.RFC3339, f.When)
		if err != nil {
			return f, nil, when, fmt.Sprintf("%q is neither a delay (30m, 2h, P1D) nor an RFC 3339 time (2030-01-02T15:04:05Z).", f.When)
		}
		when.At = t
	default:
		d, err := duration.Parse(f.When)
		if err != nil {
			return f, nil, when, fmt.Sprintf("%q is neither a delay (30m, 2h, P1D) nor an RFC 3339 time (2030-01-02T15:04:05Z).", f.When)
		}
		when.In = d
	}
	return f, names, when, ""
}

func (c *Console) teardownView(f teardownForm) *teardownView {
	if f.Selection == "" {
		f.Selection = "all"
	}
	if f.Server == "" {
		f.Server = c.src.insp.Instances()[0]
	}
	return &teardownView{Form: f, Servers: c.src.insp.Instances(), Statuses: tasks.KnownStatuses}
}

// teardownPage is the empty New teardown form.
func (c *Console) teardownPage(w http.ResponseWriter, r *http.Request, s session) {
	f := teardownForm{}
	if tok := c.tokenOf(s); tok == nil || !tok.Role.Allows(roleAllBatch) {
		f.Selection = "list"
	}
	c.render(w, r, http.StatusOK, "teardown", page{Title: "New teardown", Nav: "teardown", Session: &s, Data: c.teardownView(f)})
}

// teardown previews the teardown the form describes (action=preview), or
// starts it once the operator has typed the server's name (action=start).
func (c *Console) teardown(w http.ResponseWriter, r *http.Request, s session) {
	f, names, when, bad := c.readTeardown(r)
	v := c.teardownView(f)
	v.Names = names
	p := page{Title: "New teardown", Nav: "teardown", Session: &s, Data: v}
	if bad != "" {
		v.Error = bad
		c.render(w, r, http.StatusBadRequest, "teardown", p)
		return
	}
	start := r.PostFormValue("action") == "start"
	need, what := roleNamedBatch, "A teardown of named sessions"
	if f.Selection != "list" {
		need, what = roleAllBatch, "A teardown of every session (or some statuses)"
	}
	entry := audit.Entry{Action: "batch.create", Target: audit.Target{Instance: f.Server}, Params: map[string]any{
		"all": f.Selection != "list", "status": f.Statuses, "sessions": len(names), "when": f.When, "dry_run": !start}}
	if !c.allowed(w, r, s, need, f.Server, what, entry) {
		return
	}
	v.WhenText = "now"
	switch {
	case !when.At.IsZero():
		v.WhenText = "at " + fmtTime(&when.At)
	case when.In > 0:
		v.WhenText = "in " + fmtDur(when.In)
	}
	if start {
		if trim(r.PostFormValue("confirm_server")) != f.Server {
			v.Error = fmt.Sprintf("Type the server's name, %s, to start the teardown. Nothing was started.", f.Server)
		} else {
			c.startTeardown(w, r, s, f, names, when, v, entry)
			return
		}
	}
	pv, err := c.src.prod.Preview(r.Context(), tasks.PreviewRequest{Instance: f.Server, Sessions: names, Statuses: f.Statuses})
	var apiErr *wahaclient.APIError
	switch {
	case errors.Is(err, tasks.ErrInvalidInput):
		v.Error = err.Error()
		c.render(w, r, http.StatusBadRequest, "teardown", p)
		return
	case errors.Is(err, tasks.ErrPreviewUnavailable):
		v.Error = fmt.Sprintf("This wahaq serve cannot list the sessions of %s, so it cannot preview the teardown.", f.Server)
		c.render(w, r, http.StatusServiceUnavailable, "teardown", p)
		return
	case errors.As(err, &apiErr):
		v.Error = "The server's sessions could not be listed: " + err.Error()
		c.render(w, r, http.StatusBadGateway, "teardown", p)
		return
	case err != nil:
		c.fail(w, r, s, err)
		return
	}
	v.Preview = pv
	v.MoreNames = pv.WouldEnqueue - int64(len(pv.Names))
	code := http.StatusOK
	if v.Error != "" {
		code = http.StatusBadRequest
	}
	c.render(w, r, code, "teardown", p)
}

// startTeardown enqueues the teardown and shows its batch.
func (c *Console) startTeardown(w http.ResponseWriter, r *http.Request, s session, f teardownForm, names []string, when tasks.When, v *teardownView, entry audit.Entry) {
	var (
		info *tasks.BatchInfo
		err  error
	)
	if f.Selection == "list" {
		info, err = c.src.prod.EnqueueBatch(r.Context(), tasks.BatchRequest{Instance: f.Server, Sessions: names, When: when})
	} else {
		info, err = c.src.prod.EnqueueDiscovery(r.Context(), tasks.DiscoveryRequest{Instance: f.Server, Statuses: f.Statuses, When: when})
	}
	if errors.Is(err, tasks.ErrInvalidInput) {
		c.recordFailed(r, s, entry, http.StatusBadRequest, err.Error())
		v.Error = err.Error() + " Nothing was started."
		c.render(w, r, http.StatusBadRequest, "teardown", page{Title: "New teardown", Nav: "teardown", Session: &s, Data: v})
		return
	}
	if err != nil {
		c.recordFailed(r, s, entry, http.StatusServiceUnavailable, "could not start: Redis failed")
		c.fail(w, r, s, err)
		return
	}
	entry.Target.Batch = info.BatchID
	entry.Result = map[string]int64{"total": info.Total, "deduplicated": int64(info.Deduplicated)}
	c.record(r, s, entry)
	c.log.Info().Str("batch_id", info.BatchID).Str("instance", f.Server).Str("selection", f.Selection).Msg("console: teardown started")
	http.Redirect(w, r, mount+"batches/"+url.PathEscape(info.BatchID), http.StatusSeeOther)
}

// pauseBatch pauses (pause) or resumes the batch of the path.
func (c *Console) pauseBatch(pause bool) func(w http.ResponseWriter, r *http.Request, s session) {
	return func(w http.ResponseWriter, r *http.Request, s session) {
		b, ok := c.batch(w, r, s)
		if !ok {
			return
		}
		action, what := "batch.resume", "Resuming a batch"
		if pause {
			action, what = "batch.pause", "Pausing a batch"
		}
		entry := audit.Entry{Action: action, Target: audit.Target{Batch: b.BatchID, Instance: b.Instance}}
		if !c.allowed(w, r, s, rolePause, b.Instance, what, entry) {
			return
		}
		ctx := tasks.WithActor(r.Context(), tokenName(c.tokenOf(s)))
		call := c.src.prod.ResumeBatch
		if pause {
			call = c.src.prod.PauseBatch
		}
		back := mount + "batches/" + url.PathEscape(b.BatchID)
		res, err := call(ctx, b.BatchID)
		if errors.Is(err, tasks.ErrBatchDone) {
			c.recordFailed(r, s, entry, http.StatusConflict, "every task of the batch is final")
			c.render(w, r, http.StatusConflict, "message", page{Title: "Nothing to pause", Nav: "batches", Session: &s,
				Data: message{Heading: "Nothing to pause", Text: "Every task of this batch is final.", Link: back}})
			return
		}
		if err != nil {
			c.recordFailed(r, s, entry, http.StatusServiceUnavailable, "could not pause or resume: Redis failed")
			c.fail(w, r, s, err)
			return
		}
		changed := int64(0)
		if res.Changed {
			changed = 1
		}
		entry.Result = map[string]int64{"changed": changed, "moved": res.Moved}
		c.record(r, s, entry)
		c.log.Info().Str("batch_id", b.BatchID).Bool("paused", res.Paused).Bool("changed", res.Changed).Int64("moved", res.Moved).
			Msg("console: batch paused or resumed")
		http.Redirect(w, r, back, http.StatusSeeOther)
	}
}
