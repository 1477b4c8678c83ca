package api

import (
	"context"
	"net/http"
	"time"

	"github.com/wahaq/wahaq/internal/audit"
	"github.com/wahaq/wahaq/tasks"
)

// previewTimeout bounds a preview: it reads the server's whole listing,
// which takes longer than the Redis work of DefaultRequestTimeout, and ends
// before the server's write timeout (httpserver.DefaultWriteTimeout, 60 s).
const previewTimeout = 50 * time.Second

// previewBatch answers POST /v1/batches with "dry_run": true: what the
// batch would take now; nothing is enqueued, no logout is called.
func (s *server) previewBatch(w http.ResponseWriter, r *http.Request, req batchRequest) {
	base, ok := r.Context().Value(requestCtxKey{}).(context.Context)
	if !ok {
		base = r.Context()
	}
	ctx, cancel := context.WithTimeout(base, previewTimeout)
	defer cancel()
	pr := tasks.PreviewRequest{Instance: req.Instance, Statuses: req.Status}
	if !req.All {
		pr.Sessions = req.Sessions
	}
	pv, err := s.cfg.Producer.Preview(ctx, pr)
	if err != nil {
		s.fail(w, r.WithContext(ctx), err, details{})
		return
	}
	s.writeJSON(w, http.StatusOK, pv)
}

// actor names who calls on the batch: the token's name, or "api" when the
// API serves without authentication.
func actor(r *http.Request) context.Context {
	name := "api"
	if tok := Caller(r); tok != nil && tok.Name != "" {
		name = tok.Name
	}
	return tasks.WithActor(r.Context(), name)
}

// pauseBatch pauses a batch: none of its tasks starts until it is resumed.
func (s *server) pauseBatch(w http.ResponseWriter, r *http.Request) {
	s.pause(w, r, true)
}

// resumeBatch resumes a paused batch: its tasks go back into the queue in
// their order.
func (s *server) resumeBatch(w http.ResponseWriter, r *http.Request) {
	s.pause(w, r, false)
}

func (s *server) pause(w http.ResponseWriter, r *http.Request, pause bool) {
	id := r.PathValue("id")
	note(r, audit.Target{Batch: id}, nil)
	if !s.batchInScope(w, r, id) {
		return
	}
	call := s.cfg.Producer.ResumeBatch
	if pause {
		call = s.cfg.Producer.PauseBatch
	}
	p, err := call(actor(r), id)
	if err != nil {
		s.fail(w, r, err, details{notFound: batchNotFound(id),
			conflict: "batch " + truncate(id, 80) + " is done: every task is final, nothing is left to pause"})
		return
	}
	callOf(r).target.Instance = p.Batch.Instance
	changed := int64(0)
	if p.Changed {
		changed = 1
	}
	noteResult(r, map[string]int64{"changed": changed, "moved": p.Moved})
	s.writeJSON(w, http.StatusOK, p)
}
