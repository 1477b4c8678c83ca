package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wahaq/wahaq/tasks"
)

// DefaultRequestTimeout bounds the Redis work of one request: a Redis that
// is down or frozen answers 503 within it instead of hanging the client.
const DefaultRequestTimeout = 4 * time.Second

// retryAfter is the Retry-After of a 503: Redis failovers and restarts take
// seconds.
const retryAfter = 2 * time.Second

// redisUnavailable reports whether err says Redis could not be reached or
// could not take the write: a connection refused or reset, a timeout (the
// request's deadline included), the client's pool exhausted, or Redis'
// LOADING, OOM, READONLY, MASTERDOWN, CLUSTERDOWN or TRYAGAIN error codes
// (the first word of a Redis error is its code). A retry may succeed.
func redisUnavailable(err error) bool {
	var ne net.Error
	switch {
	case errors.As(err, &ne), errors.Is(err, context.DeadlineExceeded), errors.Is(err, io.EOF),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, redis.ErrPoolTimeout), errors.Is(err, redis.ErrClosed):
		return true
	}
	for _, code := range []string{"LOADING", "OOM", "READONLY", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN"} {
		if redis.HasErrorPrefix(err, code) {
			return true
		}
	}
	return false
}

// batchProblem is a Problem with the extension members (RFC 9457 §3.2) of
// an interrupted batch.
type batchProblem struct {
	Problem
	// BatchID is the batch that was created.
	BatchID string `json:"batch_id"`
	// Enqueued is how many logouts it holds.
	Enqueued int64 `json:"enqueued"`
}

// failUnavailable answers an error that fail did not map to a 4xx: 503 with
// Retry-After when Redis is unreachable, else 500; a *tasks.BatchError adds
// the batch id and its count. It reports false for other errors.
func (s *server) failUnavailable(w http.ResponseWriter, r *http.Request, err error) bool {
	var be *tasks.BatchError
	isBatch := errors.As(err, &be)
	down := redisUnavailable(err)
	if !isBatch && !down {
		return false
	}
	status, detail := http.StatusInternalServerError, genericDetail
	if down {
		status = http.StatusServiceUnavailable
		detail = "redis is unavailable; retry later (a retried logout finds the task this request may have created)"
		w.Header().Set("Retry-After", strconv.Itoa(int(retryAfter/time.Second)))
	}
	s.log.Error().Err(err).Str("method", r.Method).Str("path", routePath(r.Pattern)).Int("status", status).Msg("request failed")
	if !isBatch {
		s.problem(w, r, status, detail)
		return true
	}
	detail = "the batch was created but not every logout could be enqueued; it is closed with the enqueued ones " +
		"(follow it at /v1/batches/{id}, cancel it with DELETE /v1/batches/{id}): " + detail
	h := w.Header()
	h.Set("Content-Type", problemType(r.Header.Values("Accept")))
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Add("Vary", "Accept")
	h.Set("Location", "/v1/batches/"+be.BatchID)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(batchProblem{
		Problem:  Problem{Type: "about:blank", Title: http.StatusText(status), Status: status, Detail: detail},
		BatchID:  be.BatchID,
		Enqueued: be.Enqueued,
	})
	return true
}

// requestCtxKey holds, in a request's context, its context before
// withTimeout's deadline: the preview, which reads a whole WAHA listing,
// sets a longer one of its own (previewTimeout).
type requestCtxKey struct{}

// withTimeout bounds a request's context by d, plus a long-poll's ?wait=
// (waitParam checks it): the wait is not Redis work and must not be cut.
func withTimeout(h http.Handler, d time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		total := d
		if v := r.URL.Query().Get("wait"); v != "" && r.Method == http.MethodGet {
			if wait, err := time.ParseDuration(v); err == nil && wait > 0 && wait <= tasks.MaxWait {
				total += wait
			}
		}
		ctx, cancel := context.WithTimeout(context.WithValue(r.Context(), requestCtxKey{}, r.Context()), total)
		defer cancel()
		h.ServeHTTP(w, r.WithContext(ctx))
	})
}
