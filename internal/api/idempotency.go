package api

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/wahaq/wahaq/internal/access"
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
// caller's token (see scope; the token itself is never stored); a
// repeat with the same method, path and body gets that answer again (with
// Idempotent-Replayed: true), one with another body 422, one while the first
// is still running waits up to 3 s and then gets 409. Answers of 4xx and
// 5xx are not kept.
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
	case errors.Is(err, tasks.ErrIdempotencyLimit):
		w.Header().Set("Retry-After", "3600")
		s.problem(w, r, http.StatusTooManyRequests, fmt.Sprintf("this token holds %d Idempotency-Keys from the last 24 h, the most kept; retry later, or send the request without a key", tasks.MaxIdempotencyKeys))
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

// scope is the key space of the caller, named by its token's identity:
// the token as authentication reads it (scheme in any case, spaces
// trimmed: "bearer T" is the token of "Bearer T", issue 23, M5), keyed
// with Config.ScopeKey (HMAC-SHA256), so two tokens never see each other's
// keys and the name in Redis lets no one test a guessed token offline (M6).
func (s *server) scope(r *http.Request) string {
	if s.tokens == nil {
		return "open"
	}
	// The authenticated token's SHA-256 (the tokens file holds no more);
	// the header's token when no token is in the context.
	var sum [sha256.Size]byte
	if tok := access.FromContext(r.Context()); tok != nil {
		sum = tok.Sum()
	} else {
		_, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		sum = sha256.Sum256([]byte(strings.TrimSpace(token)))
	}
	m := hmac.New(sha256.New, s.cfg.ScopeKey)
	m.Write([]byte("idempotency-scope:"))
	m.Write(sum[:])
	return hex.EncodeToString(m.Sum(nil)[:12])
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
