package wahafake

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/wahaq/wahaq/wahaclient"
)

type (
	errorBody struct {
		StatusCode int    `json:"statusCode"`
		Message    any    `json:"message"`
		Error      string `json:"error"`
	}
	authBody struct {
		Message    string `json:"message"`
		StatusCode int    `json:"statusCode"`
	}
	wireSession struct {
		Name   string          `json:"name"`
		Status string          `json:"status"`
		Config json.RawMessage `json:"config"`
		Me     *wahaclient.Me  `json:"me"`
		Engine json.RawMessage `json:"engine,omitempty"`
	}
	internalErrorBody struct {
		StatusCode int    `json:"statusCode"`
		Timestamp  string `json:"timestamp"`
		Exception  struct {
			Message string `json:"message"`
			Name    string `json:"name"`
			Stack   string `json:"stack"`
		} `json:"exception"`
		Request struct {
			Path   string            `json:"path"`
			Method string            `json:"method"`
			Body   map[string]any    `json:"body"`
			Query  map[string]string `json:"query"`
		} `json:"request"`
		Version struct {
			Version string `json:"version"`
			Engine  string `json:"engine"`
			Tier    string `json:"tier"`
			Browser any    `json:"browser"`
		} `json:"version"`
	}
)

var nullJSON = json.RawMessage("null")

func engineOf(status string) json.RawMessage {
	if status == StatusStopped {
		return json.RawMessage(`{}`)
	}
	return json.RawMessage(`{"engine":"NOWEB"}`)
}

func copyMe(me *wahaclient.Me) *wahaclient.Me {
	if me == nil {
		return nil
	}
	cp := *me
	return &cp
}

func sessionNotFound(w http.ResponseWriter) int {
	writeJSON(w, http.StatusNotFound, errorBody{StatusCode: 404, Message: "Session not found", Error: "Not Found"})
	return http.StatusNotFound
}

func coreRejected(w http.ResponseWriter) int {
	writeJSON(w, http.StatusUnprocessableEntity, errorBody{StatusCode: 422, Message: CoreMessage, Error: "Unprocessable Entity"})
	return http.StatusUnprocessableEntity
}

func writeAuth(w http.ResponseWriter, status int) int {
	writeJSON(w, status, authBody{Message: http.StatusText(status), StatusCode: status})
	return status
}

// writeJSON writes like Express: no HTML escaping, no trailing newline, and
// a weak ETag of the body.
func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	body := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("ETag", etag(body))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// expressHeaders sets the headers every answer of a real WAHA carries
// (Express, its CORS middleware and Node's keep-alive), so that a client
// tested against the fake does not depend on their absence.
func expressHeaders(h http.Header) {
	h.Set("X-Powered-By", "Express")
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Keep-Alive", "timeout=5")
}

// etag is Express's default weak ETag: W/"<hex length>-<sha1, base64, 27 chars>".
func etag(body []byte) string {
	sum := sha1.Sum(body)
	return fmt.Sprintf(`W/"%x-%s"`, len(body), base64.StdEncoding.EncodeToString(sum[:])[:27])
}

// authorize checks the key for an action on target ("" for the session list).
