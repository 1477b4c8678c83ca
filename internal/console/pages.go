package console

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wahaq/wahaq/internal/audit"
	"github.com/wahaq/wahaq/tasks"
)

func (c *Console) overviewPage(w http.ResponseWriter, r *http.Request, s session) {
	figs := c.src.overview(r.Context())
	for i := range figs {
		figs[i].Checkable, figs[i].Check = c.checks.lastOf(figs[i].Name)
	}
	c.render(w, r, http.StatusOK, "overview", page{Title: "Overview", Nav: "overview", Session: &s,
		Live: mount + "live/overview", Data: figs})
}

func (c *Console) overviewLive(w http.ResponseWriter, r *http.Request, _ session) {
	l := live{F: map[string]string{}}
	for _, f := range c.src.overview(r.Context()) {
		for _, st := range liveStates {
			l.F[f.Name+"."+string(st)] = strconv.Itoa(f.Counts[st])
		}
		l.F[f.Name+".active"] = strconv.Itoa(f.Active)
		l.F[f.Name+".dead"] = strconv.FormatInt(f.DeadLetters, 10)
		l.F[f.Name+".oldest"] = fmtDur(f.OldestPending)
		l.F[f.Name+".rate"] = fmtRate(f.AttemptsPerMin)
		l.F[f.Name+".circuit"] = string(f.Circuit)
		l.F[f.Name+".circuitn"] = f.CircuitNote
		l.F[f.Name+".err"] = f.Err
	}
	c.writeLive(w, l)
}

// batchView is a batch with the figures its pages derive.
type batchView struct {
	B     *tasks.Batch
	Final int64
	Pct   int
	// NotStarted is how many tasks a cancel would reach.
	NotStarted int64
	// PerMin is the average of finished tasks per minute since the batch
	// started; negative before anything finished.
	PerMin float64
	ETA    string
	Status string
	Dead   []*tasks.Task
	// DeadCount is how many dead letters of the batch were found.
	DeadCount int
}

func (c *Console) viewBatch(b *tasks.Batch) *batchView {
	v := &batchView{B: b, PerMin: -1, ETA: "—"}
	v.Final = b.Counts[tasks.StateCompleted] + b.Counts[tasks.StateDead] + b.Counts[tasks.StateCanceled]
	v.Pct = pct(v.Final, b.Total)
	v.NotStarted = b.Counts[tasks.StateScheduled] + b.Counts[tasks.StatePending]
	start := b.CreatedAt
	if b.ScheduledFor != nil && b.ScheduledFor.After(start) {
		start = *b.ScheduledFor
	}
	if el := c.now().Sub(start); el > 0 && v.Final > 0 && !b.Done {
		v.PerMin = float64(v.Final) / el.Minutes()
		left := b.Total - v.Final
		v.ETA = fmtDur(time.Duration(float64(left) / v.PerMin * float64(time.Minute)))
	}
	switch {
	case b.Done:
		v.Status, v.ETA = "done", "—"
		v.Pct = 100
	case b.Paused:
		v.Status = "paused"
	case b.Discovering:
		v.Status = "listing sessions"
	case b.ScheduledFor != nil && b.ScheduledFor.After(c.now()):
		v.Status = "scheduled"
		v.ETA = "starts " + fmtTime(b.ScheduledFor)
	default:
		v.Status = "running"
	}
	return v
}

// recentShown is how many recent batches the Batches page lists.
const recentShown = 50

func (c *Console) batchesPage(w http.ResponseWriter, r *http.Request, s session) {
	if id := r.URL.Query().Get("id"); id != "" {
		http.Redirect(w, r, mount+"batches/"+url.PathEscape(trim(id)), http.StatusSeeOther)
		return
	}
	bs, err := c.src.insp.RecentBatches(r.Context(), recentShown)
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	vs := make([]*batchView, len(bs))
	for i, b := range bs {
		vs[i] = c.viewBatch(b)
	}
	c.render(w, r, http.StatusOK, "batches", page{Title: "Batches", Nav: "batches", Session: &s, Live: mount + "live/batches", Data: vs})
}

func (c *Console) batchesLive(w http.ResponseWriter, r *http.Request, s session) {
	bs, err := c.src.insp.RecentBatches(r.Context(), recentShown)
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	l := live{F: map[string]string{}, P: map[string]int{}, Done: true}
	for _, b := range bs {
		v := c.viewBatch(b)
		l.F[b.BatchID+".final"] = strconv.FormatInt(v.Final, 10)
		l.F[b.BatchID+".total"] = strconv.FormatInt(b.Total, 10)
		l.F[b.BatchID+".status"] = v.Status
		l.F[b.BatchID+".eta"] = v.ETA
		l.P[b.BatchID] = v.Pct
		l.Done = l.Done && b.Done
	}
	c.writeLive(w, l)
}

// batch reads the batch of the path, answering 404 itself when there is none.
func (c *Console) batch(w http.ResponseWriter, r *http.Request, s session) (*tasks.Batch, bool) {
	id := r.PathValue("id")
	b, err := c.src.insp.Batch(r.Context(), id)
	if errors.Is(err, tasks.ErrNotFound) || errors.Is(err, tasks.ErrInvalidInput) {
		c.notFound(w, r, s, fmt.Sprintf("There is no batch %q (finished batches are kept for WAHAQ_RESULT_TTL).", id))
		return nil, false
	}
	if err != nil {
		c.fail(w, r, s, err)
		return nil, false
	}
	return b, true
}

func (c *Console) batchPage(w http.ResponseWriter, r *http.Request, s session) {
	b, ok := c.batch(w, r, s)
	if !ok {
		return
	}
	v := c.viewBatch(b)
	var err error
	v.Dead, v.DeadCount, err = c.src.batchDeadLetters(r.Context(), b, 100)
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	p := page{Title: "Batch " + b.BatchID, Nav: "batches", Session: &s, Data: v}
	if !b.Done {
		p.Live = mount + "live/batches/" + url.PathEscape(b.BatchID)
	}
	c.render(w, r, http.StatusOK, "batch", p)
}

func (c *Console) batchLive(w http.ResponseWriter, r *http.Request, s session) {
	b, ok := c.batch(w, r, s)
	if !ok {
		return
	}
	v := c.viewBatch(b)
	l := live{F: map[string]string{"final": strconv.FormatInt(v.Final, 10), "total": strconv.FormatInt(b.Total, 10),
		"status": v.Status, "eta": v.ETA, "rate": fmtRate(v.PerMin), "notstarted": strconv.FormatInt(v.NotStarted, 10)},
		P: map[string]int{"batch": v.Pct}, Done: b.Done}
	for st, n := range b.Counts {
		l.F["s."+string(st)] = strconv.FormatInt(n, 10)
	}
	for o, n := range b.Outcomes {
		l.F["o."+string(o)] = strconv.FormatInt(n, 10)
	}
	c.writeLive(w, l)
}

// confirmation is the Data of the confirm page: a question naming how many
// tasks an action touches, and a form that repeats the request with
// confirm=yes.
type confirmation struct {
	Heading, Text, Action, Button, Back string
	Danger                              bool
	Fields                              url.Values
}

func (c *Console) cancelBatch(w http.ResponseWriter, r *http.Request, s session) {
	b, ok := c.batch(w, r, s)
	if !ok {
		return
	}
	back := mount + "batches/" + url.PathEscape(b.BatchID)
	entry := audit.Entry{Action: "batch.cancel", Target: audit.Target{Batch: b.BatchID, Instance: b.Instance}}
	if !c.allowed(w, r, s, roleCancel, b.Instance, "Canceling a batch", entry) {
		return
	}
	if r.PostFormValue("confirm") != "yes" {
		v := c.viewBatch(b)
		c.render(w, r, http.StatusOK, "confirm", page{Title: "Cancel batch", Nav: "batches", Session: &s, Data: confirmation{
			Heading: "Cancel this batch?",
			Text: fmt.Sprintf("This cancels the %s of batch %s that have not started (scheduled or pending). Tasks already running or retrying are not stopped.",
				countOf(int(v.NotStarted), "task"), b.BatchID),
			Action: back + "/cancel", Button: "Cancel " + countOf(int(v.NotStarted), "task"), Back: back, Danger: true,
		}})
		return
	}
	res, err := c.src.prod.CancelBatch(r.Context(), b.BatchID)
	if err != nil {
		c.recordFailed(r, s, entry, http.StatusServiceUnavailable, "could not cancel: Redis failed")
		c.fail(w, r, s, err)
		return
	}
	entry.Result = map[string]int64{"canceled": res.Canceled, "already_started": res.AlreadyStarted, "already_final": res.AlreadyFinal}
	c.record(r, s, entry)
	c.log.Info().Str("batch_id", b.BatchID).Int64("canceled", res.Canceled).Int64("already_started", res.AlreadyStarted).Msg("console: batch canceled")
	c.render(w, r, http.StatusOK, "message", page{Title: "Batch canceled", Nav: "batches", Session: &s, Data: message{
		Heading: "Batch canceled",
		Text: fmt.Sprintf("Canceled %s of batch %s; %d had already started.", countOf(int(res.Canceled), "task"), b.BatchID,
			res.AlreadyStarted), Link: back,
	}})
}

// dlqFilter is the dead-letter page's filter.
type dlqFilter struct {
	Instance string
	Outcome  tasks.Outcome
}

// filter reads and checks the filter of a dead-letter request.
func (c *Console) filter(v func(string) string) (dlqFilter, string) {
	f := dlqFilter{Instance: trim(v("instance")), Outcome: tasks.Outcome(trim(v("outcome")))}
	if f.Instance != "" && !slices.Contains(c.src.insp.Instances(), f.Instance) {
		return f, fmt.Sprintf("There is no WAHA server named %q.", f.Instance)
	}
	if f.Outcome != "" && !slices.Contains(deadOutcomes, f.Outcome) {
		return f, fmt.Sprintf("%q is not a dead-letter outcome (auth_failed, rejected, retries_exhausted).", f.Outcome)
	}
	return f, ""
}

func (c *Console) dlqPage(w http.ResponseWriter, r *http.Request, s session) {
	f, bad := c.filter(r.URL.Query().Get)
	if bad != "" {
		c.render(w, r, http.StatusBadRequest, "message", page{Title: "Bad filter", Nav: "dlq", Session: &s,
			Data: message{Heading: "Bad filter", Text: bad, Link: mount + "dlq"}})
		return
	}
	ts, n, err := c.src.deadLetters(r.Context(), f.Instance, f.Outcome, 200)
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	c.render(w, r, http.StatusOK, "dlq", page{Title: "Dead letters", Nav: "dlq", Session: &s, Data: map[string]any{
		"Filter": f, "Tasks": ts, "Count": n, "Servers": c.src.insp.Instances(),
	}})
}

func (c *Console) dlqAction(w http.ResponseWriter, r *http.Request, s session) {
	f, bad := c.filter(r.PostFormValue)
	action := r.PostFormValue("action")
	if bad == "" && action != "requeue" && action != "purge" {
		bad = "Choose requeue or purge."
	}
	sel := tasks.Selection{Instance: f.Instance, Outcome: f.Outcome}
	n := 0
	if r.PostFormValue("scope") == "all" {
		sel.All = true
		if bad == "" {
			var err error
			if _, n, err = c.src.deadLetters(r.Context(), f.Instance, f.Outcome, 0); err != nil {
				c.fail(w, r, s, err)
				return
			}
		}
	} else {
		sel.IDs = r.PostForm["id"]
		n = len(sel.IDs)
		if bad == "" && n == 0 {
			bad = "Select at least one dead letter, or choose every dead letter matching the filter."
		}
	}
	back := mount + "dlq?" + url.Values{"instance": {f.Instance}, "outcome": {string(f.Outcome)}}.Encode()
	entry := audit.Entry{Action: "dlq." + action, Target: audit.Target{Instance: f.Instance},
		Params: map[string]any{"all": sel.All, "ids": len(sel.IDs), "outcome": string(f.Outcome)}}
	if len(sel.IDs) == 1 {
		entry.Target.Task = sel.IDs[0]
	}
	need, what := roleRequeue, "Requeuing dead letters"
	if action == "purge" {
		need, what = rolePurge, "Purging dead letters"
	}
	if bad == "" && !c.allowed(w, r, s, need, f.Instance, what, entry) {
		return
	}
	if tok := c.tokenOf(s); bad == "" && f.Instance == "" && sel.All && len(tok.Instances) > 0 {
		c.refuse(w, r, s, fmt.Sprintf("This token (%s) may touch only the servers %s: choose one in the filter.", tok.Name, strings.Join(tok.Instances, ", ")), entry)
		return
	}
	if bad == "" && f.Instance == "" && !sel.All && len(c.tokenOf(s).Instances) > 0 {
		// A scoped token may name ids of its own servers only.
		for _, id := range sel.IDs {
			if t, err := c.src.insp.Task(r.Context(), id); err == nil {
				e := entry
				e.Target = audit.Target{Task: id, Instance: t.Instance}
				if !c.allowed(w, r, s, need, t.Instance, what, e) {
					return
				}
			}
		}
	}
	if bad != "" {
		c.render(w, r, http.StatusBadRequest, "message", page{Title: "Nothing done", Nav: "dlq", Session: &s,
			Data: message{Heading: "Nothing done", Text: bad, Link: back}})
		return
	}
	if r.PostFormValue("confirm") != "yes" {
		fields := url.Values{"action": {action}, "instance": {f.Instance}, "outcome": {string(f.Outcome)}, "scope": {r.PostFormValue("scope")}, "id": sel.IDs}
		verb := map[string]string{"requeue": "Requeue", "purge": "Purge"}[action]
		text := fmt.Sprintf("%s %s", verb, letters(n))
		if action == "purge" {
			text += ". Purged tasks are deleted for good."
		} else {
			text += " with fresh retries."
		}
		c.render(w, r, http.StatusOK, "confirm", page{Title: verb + " dead letters", Nav: "dlq", Session: &s, Data: confirmation{
			Heading: verb + " " + letters(n) + "?", Text: text, Action: mount + "dlq",
			Button: verb + " " + letters(n), Back: back, Danger: action == "purge", Fields: fields,
		}})
		return
	}
	var text string
	if action == "requeue" {
		rs, err := c.src.insp.Requeue(r.Context(), sel)
		if errors.Is(err, tasks.ErrInvalidInput) {
			c.recordFailed(r, s, entry, http.StatusBadRequest, err.Error())
			c.render(w, r, http.StatusBadRequest, "message", page{Title: "Nothing done", Nav: "dlq", Session: &s,
				Data: message{Heading: "Nothing requeued", Text: err.Error(), Link: back}})
			return
		}
		if err != nil {
			c.recordFailed(r, s, entry, http.StatusServiceUnavailable, "could not requeue: Redis failed")
			c.fail(w, r, s, err)
			return
		}
		count := map[tasks.RequeueStatus]int{}
		for _, x := range rs {
			count[x.Status]++
		}
		text = fmt.Sprintf("Requeued %s.", letters(count[tasks.Requeued]))
		if k := count[tasks.RequeueSuperseded]; k > 0 {
			text += fmt.Sprintf(" %d were closed because their session already has a live logout.", k)
		}
		if k := count[tasks.RequeueBusy] + count[tasks.RequeueNotDead]; k > 0 {
			text += fmt.Sprintf(" %d could not be requeued now (still being archived, or no longer dead); try again.", k)
		}
		entry.Result = map[string]int64{}
		for st, n := range count {
			entry.Result[string(st)] = int64(n)
		}
		c.record(r, s, entry)
		c.log.Info().Int("requeued", count[tasks.Requeued]).Str("token", tokenName(c.tokenOf(s))).Msg("console: dead letters requeued")
	} else {
		k, err := c.src.insp.Purge(r.Context(), sel)
		if errors.Is(err, tasks.ErrInvalidInput) {
			c.recordFailed(r, s, entry, http.StatusBadRequest, err.Error())
			c.render(w, r, http.StatusBadRequest, "message", page{Title: "Nothing done", Nav: "dlq", Session: &s,
				Data: message{Heading: "Nothing purged", Text: err.Error(), Link: back}})
			return
		}
		if err != nil {
			c.recordFailed(r, s, entry, http.StatusServiceUnavailable, "could not purge: Redis failed")
			c.fail(w, r, s, err)
			return
		}
		text = fmt.Sprintf("Purged %s.", letters(k))
		entry.Result = map[string]int64{"purged": int64(k)}
		c.record(r, s, entry)
		c.log.Info().Int("purged", k).Str("token", tokenName(c.tokenOf(s))).Msg("console: dead letters purged")
	}
	c.render(w, r, http.StatusOK, "message", page{Title: "Done", Nav: "dlq", Session: &s, Data: message{Heading: "Done", Text: text, Link: back}})
}

func (c *Console) taskLookup(w http.ResponseWriter, r *http.Request, s session) {
	q := r.URL.Query()
	if id := trim(q.Get("id")); id != "" {
		http.Redirect(w, r, mount+"tasks/"+url.PathEscape(id), http.StatusSeeOther)
		return
	}
	data := map[string]any{"Session": trim(q.Get("session")), "Instance": trim(q.Get("instance")), "Servers": c.src.insp.Instances()}
	if sess := trim(q.Get("session")); sess != "" {
		inst := trim(q.Get("instance"))
		if inst != "" && !slices.Contains(c.src.insp.Instances(), inst) {
			data["Error"] = fmt.Sprintf("There is no WAHA server named %q.", inst)
		} else {
			ts, err := c.src.findSession(r.Context(), inst, sess)
			if err != nil {
				c.fail(w, r, s, err)
				return
			}
			data["Tasks"] = ts
			data["Searched"] = true
		}
	}
	c.render(w, r, http.StatusOK, "lookup", page{Title: "Find a task", Nav: "tasks", Session: &s, Data: data})
}

// task reads the task of the path, answering 404 itself when there is none.
func (c *Console) task(w http.ResponseWriter, r *http.Request, s session) (*tasks.Task, bool) {
	id := r.PathValue("id")
	t, err := c.src.insp.Task(r.Context(), id)
	if errors.Is(err, tasks.ErrNotFound) || errors.Is(err, tasks.ErrInvalidInput) {
		c.notFound(w, r, s, fmt.Sprintf("There is no task %q (finished tasks are kept for WAHAQ_RESULT_TTL).", id))
		return nil, false
	}
	if err != nil {
		c.fail(w, r, s, err)
		return nil, false
	}
	return t, true
}

func (c *Console) taskPage(w http.ResponseWriter, r *http.Request, s session) {
	t, ok := c.task(w, r, s)
	if !ok {
		return
	}
	p := page{Title: "Task " + t.ID, Nav: "tasks", Session: &s, Data: t}
	if t.TraceID != nil && c.traceURL != "" {
		p.TraceURL = strings.ReplaceAll(c.traceURL, "{trace_id}", *t.TraceID)
	}
	if !t.State.Final() {
		p.Live = mount + "live/tasks/" + url.PathEscape(t.ID)
	}
	c.render(w, r, http.StatusOK, "task", p)
}

func (c *Console) taskLive(w http.ResponseWriter, r *http.Request, s session) {
	t, ok := c.task(w, r, s)
	if !ok {
		return
	}
	lastErr := deref(t.LastError)
	if lastErr == "" {
		lastErr = "none"
	}
	c.writeLive(w, live{F: map[string]string{"state": string(t.State), "attempts": strconv.Itoa(t.Attempts),
		"outcome": fmtOutcome(t.Outcome), "error": lastErr}, Done: t.State.Final()})
}

// countOf is "1 task", "2 tasks".
func countOf(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

func letters(n int) string { return countOf(n, "dead letter") }
