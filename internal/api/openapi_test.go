package api

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"mime"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/tasks"
)

const unknownID = "0b6f3c1e-5f0e-4a44-9d55-0d8c3d1f8f20"

var httpMethods = []string{"get", "put", "post", "delete", "patch", "head", "options", "trace"}

// openapiDoc is the embedded document, decoded.
type openapiDoc map[string]any

func loadDoc(t *testing.T) openapiDoc {
	t.Helper()
	var doc openapiDoc
	require.NoError(t, json.Unmarshal(OpenAPI, &doc))
	return doc
}

func obj(v any) map[string]any { m, _ := v.(map[string]any); return m }

// resolve follows a local "$ref" ("#/components/...").
func (d openapiDoc) resolve(t *testing.T, v map[string]any) map[string]any {
	t.Helper()
	for {
		ref, ok := v["$ref"].(string)
		if !ok {
			return v
		}
		require.True(t, strings.HasPrefix(ref, "#/"), "only local refs: %s", ref)
		var cur any = map[string]any(d)
		for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
			cur = obj(cur)[part]
		}
		require.NotNil(t, cur, "dangling $ref %s", ref)
		v = obj(cur)
	}
}

// operations lists "METHOD /path" -> operation object.
func (d openapiDoc) operations() map[string]map[string]any {
	out := map[string]map[string]any{}
	for path, item := range obj(d["paths"]) {
		for _, m := range httpMethods {
			if op := obj(obj(item)[m]); op != nil {
				out[strings.ToUpper(m)+" "+path] = op
			}
		}
	}
	return out
}

func TestOpenAPIDocumentIsSound(t *testing.T) {
	t.Parallel()
	doc := loadDoc(t)
	require.True(t, strings.HasPrefix(doc["openapi"].(string), "3.1"), "openapi %v", doc["openapi"])
	require.NotEmpty(t, obj(doc["info"])["title"])
	require.NotEmpty(t, obj(doc["info"])["version"])
	require.Contains(t, obj(obj(doc["components"])["securitySchemes"]), "bearerAuth")

	// Every $ref resolves.
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if _, ok := v["$ref"]; ok {
				doc.resolve(t, v)
			}
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(map[string]any(doc))

	ids := map[string]bool{}
	for key, op := range doc.operations() {
		id, _ := op["operationId"].(string)
		require.NotEmpty(t, id, key)
		require.False(t, ids[id], "duplicate operationId %s", id)
		ids[id] = true
		require.NotEmpty(t, op["summary"], key)
		resp := obj(op["responses"])
		require.NotEmpty(t, resp, key)
		if isSecured(doc, op) {
			require.Contains(t, resp, "401", "%s needs a token, so it documents 401", key)
			require.Contains(t, resp, "403", "%s needs a role, so it documents 403", key)
		}
		if op["requestBody"] != nil {
			require.Contains(t, resp, "400", key)
			require.Contains(t, resp, "415", key)
		}
		// Path parameters are declared.
		path := strings.SplitN(key, " ", 2)[1]
		if strings.Contains(path, "{id}") {
			item := obj(obj(doc["paths"])[path])
			params, _ := item["parameters"].([]any)
			require.Len(t, params, 1, key)
			require.Equal(t, "id", obj(params[0])["name"])
			require.Equal(t, "path", obj(params[0])["in"])
		}
	}
}

// TestOpenAPIMatchesRoutes checks the route table of server.go against the
// document, both ways.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	served := e.h.(*server).routeList()
	var documented []string
	for key := range loadDoc(t).operations() {
		documented = append(documented, key)
	}
	require.ElementsMatch(t, documented, served)
	require.Len(t, served, len(routes), "the test server enables every optional route")
	for _, rt := range routes {
		op := loadDoc(t).operations()[rt.method+" "+rt.pattern]
		require.Equal(t, !rt.open, isSecured(loadDoc(t), op), "%s %s: open in code and in the document must agree", rt.method, rt.pattern)
		require.Equal(t, rt.body, op["requestBody"] != nil, "%s %s: request body in code and in the document must agree", rt.method, rt.pattern)
		if !rt.open {
			require.Equal(t, rt.role.String(), op["x-wahaq-role"], "%s %s: the role in code and in the document must agree", rt.method, rt.pattern)
		} else {
			require.Nil(t, op["x-wahaq-role"], "%s %s is open", rt.method, rt.pattern)
		}
	}
}

func isSecured(doc openapiDoc, op map[string]any) bool {
	sec, ok := op["security"].([]any)
	if !ok {
		sec, _ = doc["security"].([]any)
	}
	return len(sec) > 0
}

// validBodies are minimal valid request bodies of the operations that take
// one; invalidBody is wrong for all of them.
var validBodies = map[string]string{
	"POST /v1/logouts":     `{"session":"doc-logout"}`,
	"POST /v1/batches":     `{"sessions":["doc-b1","doc-b2"]}`,
	"POST /v1/dlq/requeue": `{"all":true}`,
	"DELETE /v1/dlq":       `{"all":true}`,
	// signed afresh for each call (signEvent)
	eventsRoute:              `{"event":"session.status","session":"doc-live","payload":{"name":"doc-live","status":"SCAN_QR_CODE"}}`,
	"POST /v1/subscriptions": `{"url":"http://127.0.0.1:9/hook","events":["task.final"]}`,
}

// eventsRoute is WAHA's webhook route: open (no bearer token), signed.
const eventsRoute = "POST /v1/waha/{instance}/events"

const invalidBody = `{"no_such_field":1}`

// TestOpenAPIOperations calls every operation of the document on the real
// handler and checks that each answer's status is documented for it, that
// its Content-Type and headers are the documented ones, and that a JSON body
// matches the documented schema.
func TestOpenAPIOperations(t *testing.T) {
	t.Parallel()
	doc := loadDoc(t)
	for key, op := range doc.operations() {
		t.Run(key, func(t *testing.T) {
			t.Parallel()
			method, path, _ := strings.Cut(key, " ")
			e := newEnv(t, withEventSecret)
			ctx := context.Background()
			// WAHA's events are signed, with a fresh id and time each
			sign := func(r *http.Request) *http.Request { return r }
			if key == eventsRoute {
				sign = signRequest
			}

			// Something to find: a live task, a batch and a dead letter.
			live, err := e.prod.Enqueue(ctx, tasks.LogoutRequest{Session: "doc-live", When: tasks.When{In: time.Hour}})
			require.NoError(t, err)
			batch, err := e.prod.EnqueueBatch(ctx, tasks.BatchRequest{Sessions: []string{"doc-x", "doc-y"}})
			require.NoError(t, err)
			dead, err := e.prod.Enqueue(ctx, tasks.LogoutRequest{Session: "doc-dead"})
			require.NoError(t, err)
			e.kill(dead.ID, "default", "doc-dead", tasks.OutcomeAuthFailed)
			sub, err := e.prod.Subscribe(ctx, tasks.SubscriptionRequest{URL: "http://127.0.0.1:9/doc"})
			require.NoError(t, err)

			target := path
			switch {
			case strings.HasPrefix(path, "/v1/tasks/"):
				target = strings.ReplaceAll(path, "{id}", live.ID)
			case strings.HasPrefix(path, "/v1/batches/"):
				target = strings.ReplaceAll(path, "{id}", batch.BatchID)
			case key == eventsRoute:
				target = "/v1/waha/default/events"
			case strings.HasPrefix(path, "/v1/instances/"):
				target = strings.ReplaceAll(path, "{name}", "default")
			case strings.HasPrefix(path, "/v1/subscriptions/"):
				target = strings.ReplaceAll(path, "{id}", sub.ID)
			}
			body, hasBody := validBodies[key]
			require.Equal(t, op["requestBody"] != nil, hasBody, "a valid body for %s is listed in the test", key)

			// Valid, twice (the second enqueue is deduplicated, the second
			// cancel conflicts).
			seen := map[int]bool{}
			for range 2 {
				w := e.serve(sign(e.req(method, target, body)))
				checkAnswer(t, doc, op, w)
				seen[w.Code] = true
			}
			ok := okStatus(t, op)
			if key == "POST /v1/batches" {
				ok = http.StatusAccepted // 200 is the preview's (TestPreviewRoute)
			}
			require.True(t, seen[ok], "%s never answered its success status; saw %v", key, seen)

			if strings.Contains(path, "{id}") {
				w := e.do(method, strings.ReplaceAll(path, "{id}", unknownID), body)
				require.Equal(t, http.StatusNotFound, w.Code)
				checkAnswer(t, doc, op, w)
				w = e.do(method, strings.ReplaceAll(path, "{id}", "bad.id"), body)
				require.Equal(t, http.StatusBadRequest, w.Code)
				checkAnswer(t, doc, op, w)
			}
			if hasBody {
				w := e.serve(sign(e.req(method, target, invalidBody)))
				require.Equal(t, http.StatusBadRequest, w.Code)
				checkAnswer(t, doc, op, w)
				r := sign(e.req(method, target, body))
				r.Header.Set("Content-Type", "text/plain")
				w = e.serve(r)
				require.Equal(t, http.StatusUnsupportedMediaType, w.Code)
				checkAnswer(t, doc, op, w)
			}

			// Without a token.
			r := sign(e.req(method, target, body))
			r.Header.Del("Authorization")
			w := e.serve(r)
			if isSecured(doc, op) {
				require.Equal(t, http.StatusUnauthorized, w.Code)
			} else {
				require.Less(t, w.Code, 300, "open route %s", key)
			}
			checkAnswer(t, doc, op, w)
		})
	}
}

// okStatus is the lowest 2xx status documented for an operation.
func okStatus(t *testing.T, op map[string]any) int {
	t.Helper()
	best := math.MaxInt
	for code := range obj(op["responses"]) {
		n, err := strconv.Atoi(code)
		require.NoError(t, err, "response code %q", code)
		if n >= 200 && n < 300 && n < best {
			best = n
		}
	}
	require.NotEqual(t, math.MaxInt, best)
	return best
}

// checkAnswer asserts that the answer is one the operation documents.
func checkAnswer(t *testing.T, doc openapiDoc, op map[string]any, w *httptest.ResponseRecorder) {
	t.Helper()
	responses := obj(op["responses"])
	var codes []string
	for c := range responses {
		codes = append(codes, c)
	}
	sort.Strings(codes)
	resp := obj(responses[strconv.Itoa(w.Code)])
	require.NotNil(t, resp, "status %d is not documented for %s (documented: %v); body: %s", w.Code, op["operationId"], codes, w.Body.String())
	resp = doc.resolve(t, resp)
	for name := range obj(resp["headers"]) {
		require.NotEmpty(t, w.Header().Get(name), "documented header %s missing on %d", name, w.Code)
	}
	content := obj(resp["content"])
	require.NotEmpty(t, content, "response %d of %s documents no content", w.Code, op["operationId"])
	mt, _, err := mime.ParseMediaType(w.Header().Get("Content-Type"))
	require.NoError(t, err)
	media := obj(content[mt])
	require.NotNil(t, media, "Content-Type %s is not documented for %d of %s", mt, w.Code, op["operationId"])
	if strings.HasSuffix(mt, "json") {
		var v any
		require.NoError(t, json.Unmarshal(w.Body.Bytes(), &v))
		c := &schemaChecker{t: t, doc: doc}
		errs := c.check(obj(media["schema"]), v, "$")
		require.Empty(t, errs, "body of %d from %s does not match its schema: %s", w.Code, op["operationId"], w.Body.String())
	}
}

// schemaChecker validates JSON values against the subset of JSON Schema the
// document uses: $ref, oneOf, type (one or a list), enum, format date-time,
// required, properties, additionalProperties false, items, minItems,
// minimum, maximum.
type schemaChecker struct {
	t   *testing.T
	doc openapiDoc
}

func jsonType(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case float64:
		if v == math.Trunc(v) {
			return "integer"
		}
		return "number"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

func (c *schemaChecker) check(s map[string]any, v any, at string) []string {
	s = c.doc.resolve(c.t, s)
	var errs []string
	if alts, ok := s["oneOf"].([]any); ok {
		n := 0
		for _, a := range alts {
			if len(c.check(obj(a), v, at)) == 0 {
				n++
			}
		}
		if n != 1 {
			errs = append(errs, fmt.Sprintf("%s: matches %d of the oneOf alternatives", at, n))
		}
	}
	if typ, ok := s["type"]; ok {
		var types []string
		switch typ := typ.(type) {
		case string:
			types = []string{typ}
		case []any:
			for _, x := range typ {
				types = append(types, x.(string))
			}
		}
		got := jsonType(v)
		if !slices.Contains(types, got) && !(got == "integer" && slices.Contains(types, "number")) {
			return append(errs, fmt.Sprintf("%s: %s, want %v", at, got, types))
		}
	}
	if enum, ok := s["enum"].([]any); ok && !slices.Contains(enum, v) {
		errs = append(errs, fmt.Sprintf("%s: %v is not one of %v", at, v, enum))
	}
	if str, ok := v.(string); ok && s["format"] == "date-time" {
		if _, err := time.Parse(time.RFC3339Nano, str); err != nil {
			errs = append(errs, fmt.Sprintf("%s: %q is not a date-time", at, str))
		}
	}
	if n, ok := v.(float64); ok {
		if m, ok := s["minimum"].(float64); ok && n < m {
			errs = append(errs, fmt.Sprintf("%s: %v < minimum %v", at, n, m))
		}
		if m, ok := s["maximum"].(float64); ok && n > m {
			errs = append(errs, fmt.Sprintf("%s: %v > maximum %v", at, n, m))
		}
	}
	if m, ok := v.(map[string]any); ok {
		props := obj(s["properties"])
		for _, r := range asStrings(s["required"]) {
			if _, ok := m[r]; !ok {
				errs = append(errs, fmt.Sprintf("%s: required %q missing", at, r))
			}
		}
		for k, x := range m {
			if p, ok := props[k]; ok {
				errs = append(errs, c.check(obj(p), x, at+"."+k)...)
			} else if s["additionalProperties"] == false {
				errs = append(errs, fmt.Sprintf("%s: undocumented property %q", at, k))
			}
		}
	}
	if a, ok := v.([]any); ok {
		if mi, ok := s["minItems"].(float64); ok && float64(len(a)) < mi {
			errs = append(errs, fmt.Sprintf("%s: %d items < minItems %v", at, len(a), mi))
		}
		if items := obj(s["items"]); items != nil {
			for i, x := range a {
				errs = append(errs, c.check(items, x, fmt.Sprintf("%s[%d]", at, i))...)
			}
		}
	}
	return errs
}

func asStrings(v any) []string {
	xs, _ := v.([]any)
	out := make([]string, 0, len(xs))
	for _, x := range xs {
		out = append(out, x.(string))
	}
	return out
}

// TestSchemaChecker makes sure the checker above does reject what it
// should, so a passing TestOpenAPIOperations means something.
func TestSchemaChecker(t *testing.T) {
	t.Parallel()
	doc := loadDoc(t)
	c := &schemaChecker{t: t, doc: doc}
	task := map[string]any{"$ref": "#/components/schemas/Task"}
	good := map[string]any{"id": "x", "instance": "default", "session": "s", "state": "pending", "outcome": nil,
		"attempts": 0.0, "max_retries": 10.0, "batch_id": nil, "enqueued_at": "2030-01-02T15:04:05Z", "scheduled_for": nil,
		"next_attempt_at": nil, "finished_at": nil, "last_error": nil, "result": nil,
		"attempts_log": []any{map[string]any{"attempt": 1.0, "started_at": "2030-01-02T15:04:05Z", "finished_at": "2030-01-02T15:04:05Z",
			"outcome": "retrying", "http_status": 503.0, "error": "busy"}}, "trace_id": nil, "confirmed": nil}
	require.Empty(t, c.check(task, good, "$"))
	for name, mutate := range map[string]func(m map[string]any){
		"missing required": func(m map[string]any) { delete(m, "state") },
		"bad enum":         func(m map[string]any) { m["state"] = "sleeping" },
		"wrong type":       func(m map[string]any) { m["attempts"] = "1" },
		"not an integer":   func(m map[string]any) { m["attempts"] = 1.5 },
		"bad date-time":    func(m map[string]any) { m["enqueued_at"] = "yesterday" },
		"extra property":   func(m map[string]any) { m["secret"] = "x" },
		"bad oneOf":        func(m map[string]any) { m["outcome"] = "lost" },
		"bad nested":       func(m map[string]any) { m["result"] = map[string]any{"status": "success"} },
	} {
		m := map[string]any{}
		for k, v := range good {
			m[k] = v
		}
		mutate(m)
		require.NotEmpty(t, c.check(task, m, "$"), name)
	}
}
