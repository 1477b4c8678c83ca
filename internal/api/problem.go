package api

import (
	"encoding/json"
	"mime"
	"net/http"
	"strconv"
	"strings"
)

// Problem is an RFC 9457 problem detail, the body of every error answer
// (Content-Type application/problem+json when the client's Accept names it,
// application/json otherwise).
type Problem struct {
	// Type is "about:blank": the status code says what kind of problem it is.
	Type string `json:"type"`
	// Title is the HTTP status phrase.
	Title string `json:"title"`
	// Status is the HTTP status code.
	Status int `json:"status"`
	// Detail says what is wrong with this request, for people.
	Detail string `json:"detail"`
}

// genericDetail answers unexpected errors; the error itself goes to the log.
const genericDetail = "internal error; the server logged the cause"

// problem writes a problem answer. Its Content-Type is
// application/problem+json when the request's Accept names that type, and
// application/json otherwise (the same body): clients such as n8n's HTTP
// Request node parse only application/json, and would hand the problem on
// as a doubly escaped string.
func (s *server) problem(w http.ResponseWriter, r *http.Request, status int, detail string) {
	callOf(r).detail = detail
	h := w.Header()
	h.Set("Content-Type", problemType(r.Header.Values("Accept")))
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Add("Vary", "Accept")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(Problem{Type: "about:blank", Title: http.StatusText(status), Status: status, Detail: detail})
}

// Media types of problem answers.
const (
	problemJSON = "application/problem+json"
	plainJSON   = "application/json"
)

// problemType picks the Content-Type of a problem answer from the Accept
// header lines: problemJSON only when one of their media ranges names it
// exactly with a non-zero quality; wildcards ("*/*", "application/*") do
// not count, because a client that merely accepts anything is better
// served by the type every JSON parser recognises.
func problemType(accept []string) string {
	for _, line := range accept {
		for _, rng := range strings.Split(line, ",") {
			mt, params, err := mime.ParseMediaType(strings.TrimSpace(rng))
			if err != nil || mt != problemJSON {
				continue
			}
			if q, ok := params["q"]; ok {
				if f, err := strconv.ParseFloat(q, 64); err != nil || f <= 0 {
					continue
				}
			}
			return problemJSON
		}
	}
	return plainJSON
}

// writeJSON writes a JSON answer.
func (s *server) writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		s.log.Warn().Err(err).Msg("writing http response")
	}
}
