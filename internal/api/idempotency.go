package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/wahaq/wahaq/tasks"
)

// idempotencyHeader is the IETF Idempotency-Key header
// (draft-ietf-httpapi-idempotency-key-header).
const idempotencyHeader = "Idempotency-Key"

// replayedHeader marks an answer given again for a repeated key.
const replayedHeader = "Idempotent-Replayed"

// keptHeaders are the headers of an answer kept with it.
var keptHeaders = []string{"Content-Type", "Location", "Retry-After", "Vary"}

// idempotent serves a POST that carries an Idempotency-Key: the first
// request with a key runs and its answer is kept for 24 h, scoped to the
// caller's token (a SHA-256 of it; the token itself is never stored); a
// repeat with the same method, path and body gets that answer again (with
// Idempotent-Replayed: true), one with another body 422, one while the first
// is still running waits up to 3 s and then gets 409. Answers of 5xx are
// not kept.
func (s *server) idempotent(w http.ResponseWriter, r *http.Request, rt route) {
	key := strings.TrimSpace(r.Header.Get(idempotencyHeader))
	// The draft writes the key as a structured-field string: "abc".
	if len(key) >= 2 && key[0] == '"' && key[len(key)-1] == '"' {
		key = key[1 : len(key)-1]
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		s.problem(w, r, http.StatusRequestEntityTooLarge, "request body is larger than the limit")
		return
	}
	request := append([]byte(r.Method+" "+r.URL.Path+"\n"), body...)
	a, replayed, err := s.cfg.Producer.Idempotent(r.Context(), s.scope(r), key, request, func(ctx context.Context) (tasks.Answer, error) {
		// The handler runs detached from the client: one that times out
		// still gets its answer kept, and its retry finds it.
		rec := &recorder{h: http.Header{}}
		r2 := r.WithContext(ctx)
		r2.Body = io.NopCloser(bytes.NewReader(body))
		rt.handle(s, rec, r2)
		kept := map[string]string{}
		for _, k := range keptHeaders {
			if v := rec.h.Get(k); v != "" {
				kept[k] = v
			}
		}
		hb, _ := json.Marshal(kept)
		return tasks.Answer{Status: rec.status(), Headers: hb, Body: rec.body.Bytes()}, nil
	})
	switch {
	case errors.Is(err, tasks.ErrIdempotencyMismatch):
		s.problem(w, r, http.StatusUnprocessableEntity, "Idempotency-Key was already used with a different request; use a new key for a new request")
		return
	case errors.Is(err, tasks.ErrIdempotencyInProgress):
		w.Header().Set("Retry-After", "1")
		s.problem(w, r, http.StatusConflict, "a request with this Idempotency-Key is still being processed; retry in a moment")
		return
	case err != nil:
		s.fail(w, r, err, details{})
		return
	}
	var hdr map[string]string
	_ = json.Unmarshal(a.Headers, &hdr)
	for k, v := range hdr {
		w.Header().Set(k, v)
	}
	w.Header().Set("Cache-Control", "no-store")
	if replayed {
		w.Header().Set(replayedHeader, "true")
	}
	w.WriteHeader(a.Status)
	_, _ = w.Write(a.Body)
}

// scope is the key space of the caller: a hash of its bearer token, so two
// tokens never see each other's keys and the token is not stored.
func (s *server) scope(r *http.Request) string {
	if s.tokens == nil {
		return "open"
	}
	h := sha256.Sum256([]byte(r.Header.Get("Authorization")))
	return hex.EncodeToString(h[:12])
}

// recorder keeps a handler's answer in memory.
type recorder struct {
	h    http.Header
	code int
	body bytes.Buffer
}

func (c *recorder) Header() http.Header { return c.h }
func (c *recorder) WriteHeader(code int) {
	if c.code == 0 {
		c.code = code
	}
}
func (c *recorder) Write(b []byte) (int, error) {
	if c.code == 0 {
		c.code = http.StatusOK
	}
	return c.body.Write(b)
}
func (c *recorder) status() int {
	if c.code == 0 {
		return http.StatusOK
	}
	return c.code
}
