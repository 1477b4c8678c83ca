package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/wahaq/wahaq/internal/audit"
	"github.com/wahaq/wahaq/internal/duration"
	"github.com/wahaq/wahaq/tasks"
	"github.com/wahaq/wahaq/wahaclient"
)

// logoutRequest is the body of POST /v1/logouts.
type logoutRequest struct {
	Instance string `json:"instance"`
	Session  string `json:"session"`
	At       string `json:"at"`
	In       string `json:"in"`
	// CallbackURL receives the task once final (see tasks.LogoutRequest).
	CallbackURL string `json:"callback_url"`
}

// batchRequest is the body of POST /v1/batches.
type batchRequest struct {
	Instance string   `json:"instance"`
	Sessions []string `json:"sessions"`
	All      bool     `json:"all"`
	Status   []string `json:"status"`
	At       string   `json:"at"`
	In       string   `json:"in"`
	// CallbackURL receives the batch once done.
	CallbackURL string `json:"callback_url"`
	// DryRun asks for the preview: what the batch would take, with nothing
	// enqueued (tasks.Producer.Preview).
	DryRun bool `json:"dry_run"`
}

// batchAccepted is the answer to POST /v1/batches: tasks.BatchInfo with
// every field always present.
type batchAccepted struct {
	BatchID      string `json:"batch_id"`
	Total        int64  `json:"total"`
	Requested    int    `json:"requested"`
	Deduplicated int    `json:"deduplicated"`
	Discovering  bool   `json:"discovering"`
}

// requeueResponse is the answer to POST /v1/dlq/requeue.
type requeueResponse struct {
	Results  []tasks.RequeueResult `json:"results"`
	Requeued int                   `json:"requeued"`
}

// purgeResponse is the answer to DELETE /v1/dlq.
type purgeResponse struct {
	Purged int `json:"purged"`
}

// statusResponse is the answer of /healthz and /readyz.
type statusResponse struct {
	Status string `json:"status"`
}

// DLQ paging limits.
const (
	defaultDLQLimit = 100
	maxDLQLimit     = 1000
)

func (s *server) postLogout(w http.ResponseWriter, r *http.Request) {
	var req logoutRequest
	if !s.decode(w, r, &req) {
		return
	}
	note(r, audit.Target{Instance: instanceOr(req.Instance)}, map[string]any{"session": req.Session, "at": req.At, "in": req.In,
		"callback_url": audit.SafeURL(req.CallbackURL)})
	if !s.inScope(w, r, req.Instance) {
		return
	}
	if req.Session == "" {
		s.problem(w, r, http.StatusBadRequest, `missing field "session": name the WAHA session to log out`)
		return
	}
	when, detail := parseWhen(req.At, req.In)
	if detail != "" {
		s.problem(w, r, http.StatusBadRequest, detail)
		return
	}
	t, err := s.cfg.Producer.Enqueue(r.Context(), tasks.LogoutRequest{Instance: req.Instance, Session: req.Session, When: when, CallbackURL: req.CallbackURL})
	if err != nil {
		s.fail(w, r, err, details{})
		return
	}
	callOf(r).target.Task = t.ID
	var dedup int64
	if t.Deduplicated {
		dedup = 1
	}
	noteResult(r, map[string]int64{"enqueued": 1 - dedup, "deduplicated": dedup})
	w.Header().Set("Location", "/v1/tasks/"+url.PathEscape(t.ID))
	status := http.StatusAccepted
	if t.Deduplicated {
		status = http.StatusOK
	}
	s.writeJSON(w, status, t)
}

func (s *server) postBatch(w http.ResponseWriter, r *http.Request) {
	var req batchRequest
	if !s.decode(w, r, &req) {
		return
	}
	note(r, audit.Target{Instance: instanceOr(req.Instance)}, map[string]any{"all": req.All, "status": req.Status,
		"sessions": len(req.Sessions), "at": req.At, "in": req.In, "callback_url": audit.SafeURL(req.CallbackURL), "dry_run": req.DryRun})
	if req.All && !s.permitAll(w, r, `POST /v1/batches with "all": true`) {
		return
	}
	if !s.inScope(w, r, req.Instance) {
		return
	}
	var detail string
	switch {
	case req.All && req.Sessions != nil:
		detail = `give either "sessions" or "all": true, not both`
	case !req.All && req.Sessions == nil:
		detail = `give "sessions" (a non-empty list of session names) or "all": true`
	case !req.All && len(req.Sessions) == 0:
		detail = `"sessions" is empty: name at least one session, or use "all": true`
	case !req.All && len(req.Status) > 0:
		detail = `"status" filters the server's sessions and applies only with "all": true`
	}
	if detail != "" {
		s.problem(w, r, http.StatusBadRequest, detail)
		return
	}
	when, detail := parseWhen(req.At, req.In)
	if detail != "" {
		s.problem(w, r, http.StatusBadRequest, detail)
		return
	}
	if req.DryRun {
		s.previewBatch(w, r, req)
		return
	}
	var (
		info *tasks.BatchInfo
		err  error
	)
	if req.All {
		info, err = s.cfg.Producer.EnqueueDiscovery(r.Context(), tasks.DiscoveryRequest{Instance: req.Instance, Statuses: req.Status, When: when, CallbackURL: req.CallbackURL})
	} else {
		info, err = s.cfg.Producer.EnqueueBatch(r.Context(), tasks.BatchRequest{Instance: req.Instance, Sessions: req.Sessions, When: when, CallbackURL: req.CallbackURL})
	}
	if err != nil {
		s.fail(w, r, err, details{})
		return
	}
	callOf(r).target.Batch = info.BatchID
	noteResult(r, map[string]int64{"total": info.Total, "requested": int64(info.Requested), "deduplicated": int64(info.Deduplicated)})
	w.Header().Set("Location", "/v1/batches/"+url.PathEscape(info.BatchID))
	s.writeJSON(w, http.StatusAccepted, batchAccepted{BatchID: info.BatchID, Total: info.Total, Requested: info.Requested,
		Deduplicated: info.Deduplicated, Discovering: info.Discovering})
}

func (s *server) getBatch(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	wait, ok := s.waitParam(w, r)
	if !ok {
		return
	}
	wctx, cut, cancel := s.waitContext(r.Context())
	defer cancel()
	b, err := s.cfg.Inspector.WaitBatch(wctx, id, wait)
	if err != nil && cut() {
		b, err = s.cfg.Inspector.Batch(r.Context(), id) // shutting down: the current state
	}
	if err != nil {
		s.fail(w, r, err, details{notFound: batchNotFound(id)})
		return
	}
	s.writeJSON(w, http.StatusOK, b)
}

func (s *server) getTask(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	wait, ok := s.waitParam(w, r)
	if !ok {
		return
	}
	wctx, cut, cancel := s.waitContext(r.Context())
	defer cancel()
	t, err := s.cfg.Inspector.WaitTask(wctx, id, wait)
	if err != nil && cut() {
		t, err = s.cfg.Inspector.Task(r.Context(), id) // shutting down: the current state
	}
	if err != nil {
		s.fail(w, r, err, details{notFound: taskNotFound(id)})
		return
	}
	s.writeJSON(w, http.StatusOK, t)
}

func (s *server) deleteTask(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	note(r, audit.Target{Task: id}, nil)
	if !s.taskInScope(w, r, id) {
		return
	}
	t, err := s.cfg.Producer.Cancel(r.Context(), id)
	if err != nil {
		d := details{notFound: taskNotFound(id)}
		if errors.Is(err, tasks.ErrAlreadyStarted) {
			// Say which state it is in, when it can still be read.
			d.conflict = fmt.Sprintf("task %s has already started; only a scheduled or pending task can be canceled", id)
			if cur, gerr := s.cfg.Inspector.Task(r.Context(), id); gerr == nil {
				d.conflict = fmt.Sprintf("task %s is %s; only a scheduled or pending task can be canceled", id, cur.State)
			}
		}
		s.fail(w, r, err, d)
		return
	}
	callOf(r).target.Instance = t.Instance
	noteResult(r, map[string]int64{"canceled": 1})
	s.writeJSON(w, http.StatusOK, t)
}

func (s *server) getDLQ(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	for k := range q {
		if k != "instance" && k != "batch_id" && k != "offset" && k != "limit" {
			s.problem(w, r, http.StatusBadRequest, fmt.Sprintf("unknown query parameter %q; known: instance, batch_id, offset, limit", truncate(k, 40)))
			return
		}
	}
	offset, limit := int64(0), int64(defaultDLQLimit)
	if v := q.Get("offset"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			s.problem(w, r, http.StatusBadRequest, fmt.Sprintf("offset %q is not a non-negative integer", truncate(v, 40)))
			return
		}
		offset = n
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 || n > maxDLQLimit {
			s.problem(w, r, http.StatusBadRequest, fmt.Sprintf("limit %q is not an integer from 1 to %d", truncate(v, 40), maxDLQLimit))
			return
		}
		limit = n
	}
	var (
		page *tasks.DeadLetterPage
		err  error
	)
	if b := q.Get("batch_id"); b != "" {
		page, err = s.cfg.Inspector.DeadLettersOfBatch(r.Context(), q.Get("instance"), b, offset, limit)
	} else {
		page, err = s.cfg.Inspector.DeadLetters(r.Context(), q.Get("instance"), offset, limit)
	}
	if err != nil {
		s.fail(w, r, err, details{})
		return
	}
	s.writeJSON(w, http.StatusOK, page)
}

func (s *server) postRequeue(w http.ResponseWriter, r *http.Request) {
	var sel tasks.Selection
	if !s.decode(w, r, &sel) {
		return
	}
	noteSelection(r, sel)
	if !s.selectionInScope(w, r, sel) {
		return
	}
	res, err := s.cfg.Inspector.Requeue(r.Context(), sel)
	if err != nil {
		s.fail(w, r, err, details{})
		return
	}
	out := requeueResponse{Results: res}
	counts := map[string]int64{}
	for _, x := range res {
		if x.Status == tasks.Requeued {
			out.Requeued++
		}
		counts[string(x.Status)]++
	}
	noteResult(r, counts)
	s.writeJSON(w, http.StatusOK, out)
}

func (s *server) deleteDLQ(w http.ResponseWriter, r *http.Request) {
	var sel tasks.Selection
	if !s.decode(w, r, &sel) {
		return
	}
	noteSelection(r, sel)
	if !s.selectionInScope(w, r, sel) {
		return
	}
	n, err := s.cfg.Inspector.Purge(r.Context(), sel)
	noteResult(r, map[string]int64{"purged": int64(n)})
	if err != nil {
		s.fail(w, r, err, details{})
		return
	}
	s.writeJSON(w, http.StatusOK, purgeResponse{Purged: n})
}

func (s *server) healthz(w http.ResponseWriter, _ *http.Request) {
	s.writeJSON(w, http.StatusOK, statusResponse{Status: "ok"})
}

func (s *server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		defer cancel()
		if err := s.cfg.Ready(ctx); err != nil {
			s.log.Warn().Err(err).Msg("readiness check failed")
			s.problem(w, r, http.StatusServiceUnavailable, "not ready: the readiness check (Redis) failed; the server logged the cause")
			return
		}
	}
	s.writeJSON(w, http.StatusOK, statusResponse{Status: "ready"})
}

func (s *server) metrics(w http.ResponseWriter, r *http.Request) {
	s.cfg.Metrics.ServeHTTP(w, r)
}

func (s *server) openapi(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(OpenAPI)
}

// instanceOr names the default instance for an empty name.
func instanceOr(name string) string {
	if name == "" {
		return tasks.DefaultInstance
	}
	return name
}

// noteSelection notes a dead-letter selection in the audit entry: its
// filters and how many ids it names (the ids themselves can be thousands).
func noteSelection(r *http.Request, sel tasks.Selection) {
	p := map[string]any{"all": sel.All, "ids": len(sel.IDs)}
	if sel.Outcome != "" {
		p["outcome"] = sel.Outcome
	}
	if len(sel.IDs) == 1 {
		note(r, audit.Target{Task: sel.IDs[0], Instance: sel.Instance}, p)
		return
	}
	note(r, audit.Target{Instance: sel.Instance}, p)
}

// details are the problem details a route gives for the errors it expects;
// an empty field means the error's own text.
type details struct {
	notFound string // tasks.ErrNotFound
	conflict string // tasks.ErrAlreadyStarted, tasks.ErrBatchDone
}

// statusOf maps an error of the tasks package to its HTTP status, by type
// (errors.Is), never by its text. It is the only place that does; 0 means
// "not an error of the caller's making".
func statusOf(err error) int {
	switch {
	case errors.Is(err, tasks.ErrInvalidInput):
		return http.StatusBadRequest
	case errors.Is(err, tasks.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, tasks.ErrAlreadyStarted), errors.Is(err, tasks.ErrBatchDone), errors.Is(err, tasks.ErrTooManyCallbacks), errors.Is(err, tasks.ErrTooManySubscriptions):
		return http.StatusConflict
	case errors.Is(err, tasks.ErrPreviewUnavailable):
		return http.StatusNotImplemented
	}
	var apiErr *wahaclient.APIError
	if errors.As(err, &apiErr) {
		return http.StatusBadGateway
	}
	return 0
}

// fail answers an error from the tasks package. A client error's detail is
// the error's whole text (the tasks package words them for people), or the
// route's own sentence from d.
func (s *server) fail(w http.ResponseWriter, r *http.Request, err error, d details) {
	switch status := statusOf(err); {
	case status != 0:
		detail := err.Error()
		switch {
		case status == http.StatusNotFound && d.notFound != "":
			detail = d.notFound
		case status == http.StatusConflict && d.conflict != "":
			detail = d.conflict
		}
		s.problem(w, r, status, detail)
	case s.failUnavailable(w, r, err):
	case r.Context().Err() != nil:
		// The client went away; nobody reads this answer.
		s.log.Debug().Err(err).Str("method", r.Method).Str("path", routePath(r.Pattern)).Msg("request canceled by the client")
		s.problem(w, r, http.StatusServiceUnavailable, "the request was canceled")
	default:
		s.log.Error().Err(err).Str("method", r.Method).Str("path", routePath(r.Pattern)).Msg("request failed")
		s.problem(w, r, http.StatusInternalServerError, genericDetail)
	}
}

func taskNotFound(id string) string {
	return fmt.Sprintf("no task with id %q (unknown, or expired after WAHAQ_RESULT_TTL)", truncate(id, 80))
}

// parseWhen reads "at" and "in"; an empty string means not given. It returns
// a detail for a 400 answer when they are unusable.
func parseWhen(at, in string) (tasks.When, string) {
	var w tasks.When
	if at != "" && in != "" {
		return w, `give either "at" or "in", not both`
	}
	if at != "" {
		t, err := time.Parse(time.RFC3339, at)
		if err != nil {
			return w, fmt.Sprintf(`"at" %q is not an RFC 3339 time such as "2030-01-02T15:04:05Z"`, truncate(at, 80))
		}
		if t.IsZero() { // tasks reads a zero time as "now"
			return w, fmt.Sprintf(`"at" %s is in the past`, at)
		}
		w.At = t
	}
	if in != "" {
		d, err := duration.Parse(in)
		if err != nil {
			return w, fmt.Sprintf(`"in" %q is not a duration such as "30m", "1h30m", "7d" or ISO 8601 "PT30M"`, truncate(in, 80))
		}
		if d < 0 {
			return w, fmt.Sprintf(`"in" %s is negative`, in)
		}
		w.In = d
	}
	return w, ""
}

// contentTypeOK accepts a missing Content-Type or application/json (with an
// optional UTF-8 charset).
func contentTypeOK(ct string) (string, bool) {
	if ct == "" {
		return "", true
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err == nil && mt == "application/json" {
		if cs, ok := params["charset"]; !ok || strings.EqualFold(cs, "utf-8") {
			return "", true
		}
	}
	return fmt.Sprintf("Content-Type %q is not supported; send application/json", truncate(ct, 80)), false
}

// decode reads the request body as exactly one JSON object into v. On
// failure it answers 400 with what is wrong and returns false (see
// strictDecode).
func (s *server) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	// The body is read whole (at most MaxBodyBytes) so that the shape and
	// key checks see the same bytes the decoder read.
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	if err == nil {
		err = strictDecode(data, v)
	}
	if err != nil {
		s.problem(w, r, http.StatusBadRequest, s.decodeDetail(err, v))
		return false
	}
	return true
}

// errTrailing is a body with more after its JSON object.
var errTrailing = errors.New("unexpected data after the JSON object; send exactly one JSON object")

// strictDecode decodes data, exactly one JSON object, into v. Beyond what
// encoding/json checks, a body nested too deep or too long is refused
// before anything walks it (*shapeError), and a key given twice or
// matching a field only when case is ignored is refused (*keyError), for
// every body the API takes.
func strictDecode(data []byte, v any) error {
	if err := checkShape(data); err != nil {
		return err
	}
	// Keys next: a key error is the client's intent misread, whatever
	// else is wrong. Data that is not JSON is left to the decoder.
	var ke *keyError
	if err := checkKeys(data, reflect.TypeOf(v)); errors.As(err, &ke) {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields() // checkKeys found none; kept as a second guard
	if err := dec.Decode(v); err != nil {
		return err
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return errTrailing
	}
	return nil
}

func isTooLarge(err error) bool {
	var mbe *http.MaxBytesError
	return errors.As(err, &mbe)
}

// decodeDetail says what is wrong with a body that did not decode.
func (s *server) decodeDetail(err error, v any) string {
	var (
		syn   *json.SyntaxError
		typ   *json.UnmarshalTypeError
		shape *shapeError
		key   *keyError
	)
	switch {
	case errors.As(err, &shape), errors.As(err, &key), errors.Is(err, errTrailing):
		return err.Error()
	case isTooLarge(err):
		return fmt.Sprintf("request body is larger than %d bytes", s.cfg.MaxBodyBytes)
	case errors.Is(err, io.EOF):
		return "request body is empty; send a JSON object"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "request body ends in the middle of its JSON"
	case errors.As(err, &syn):
		return fmt.Sprintf("request body is not valid JSON (at byte %d): %s", syn.Offset, strings.TrimPrefix(syn.Error(), "json: "))
	case errors.As(err, &typ):
		if typ.Field == "" {
			return fmt.Sprintf("request body must be a JSON object, not %s", typ.Value)
		}
		return fmt.Sprintf("field %q must be %s, not %s", typ.Field, jsonKind(typ.Type), typ.Value)
	}
	return "request body is not valid: " + err.Error()
}

// jsonKind names the JSON type a Go type decodes from.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		return "an array of " + strings.TrimPrefix(strings.TrimPrefix(jsonKind(t.Elem()), "a "), "an ") + "s"
	case reflect.Int, reflect.Int64, reflect.Int32:
		return "an integer"
	case reflect.Pointer:
		return jsonKind(t.Elem())
	}
	return "an object"
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// checkInstance is the preflight of one WAHA server (internal/preflight):
// 200 with the result whether or not the server passed (its "ok" says),
// 404 for an instance that is not configured.
func (s *server) checkInstance(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	res, ok := s.cfg.Preflight.Check(r.Context(), name)
	if !ok {
		s.problem(w, r, http.StatusNotFound, fmt.Sprintf("no instance named %q is configured; the configured ones are %s",
			name, strings.Join(s.cfg.Preflight.Instances(), ", ")))
		return
	}
	s.writeJSON(w, http.StatusOK, res)
}
