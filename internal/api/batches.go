package api

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/wahaq/wahaq/internal/audit"
	"github.com/wahaq/wahaq/tasks"
)

// batchList is the answer of GET /v1/batches.
type batchList struct {
	Batches []*tasks.Batch `json:"batches"`
}

// listBatches answers the recent batches, newest first.
func (s *server) listBatches(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	for k := range q {
		if k != "limit" {
			s.problem(w, r, http.StatusBadRequest, fmt.Sprintf("unknown query parameter %q; known: limit", truncate(k, 40)))
			return
		}
	}
	limit := tasks.DefaultRecentBatches
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > tasks.MaxRecentBatches {
			s.problem(w, r, http.StatusBadRequest, fmt.Sprintf("limit %q is not an integer from 1 to %d", truncate(v, 40), tasks.MaxRecentBatches))
			return
		}
		limit = n
	}
	bs, err := s.cfg.Inspector.RecentBatches(r.Context(), limit)
	if err != nil {
		s.fail(w, r, err, details{})
		return
	}
	s.writeJSON(w, http.StatusOK, batchList{Batches: bs})
}

// deleteBatch cancels every task of a batch that has not started.
func (s *server) deleteBatch(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	note(r, audit.Target{Batch: id}, nil)
	if !s.batchInScope(w, r, id) {
		return
	}
	c, err := s.cfg.Producer.CancelBatch(r.Context(), id)
	if err != nil {
		s.fail(w, r, err, details{notFound: batchNotFound(id)})
		return
	}
	noteResult(r, map[string]int64{"canceled": c.Canceled, "already_started": c.AlreadyStarted, "already_final": c.AlreadyFinal})
	s.writeJSON(w, http.StatusOK, c)
}

// getBatchTasks lists a batch's tasks, paged by an opaque cursor, filtered
// by ?state= and ?outcome=.
func (s *server) getBatchTasks(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	q := r.URL.Query()
	for k := range q {
		if k != "state" && k != "outcome" && k != "cursor" && k != "limit" {
			s.problem(w, r, http.StatusBadRequest, fmt.Sprintf("unknown query parameter %q; known: state, outcome, cursor, limit", truncate(k, 40)))
			return
		}
	}
	p := tasks.Page{Cursor: q.Get("cursor")}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > tasks.MaxPageLimit {
			s.problem(w, r, http.StatusBadRequest, fmt.Sprintf("limit %q is not an integer from 1 to %d", truncate(v, 40), tasks.MaxPageLimit))
			return
		}
		p.Limit = n
	}
	f := tasks.TaskFilter{State: tasks.State(q.Get("state")), Outcome: tasks.Outcome(q.Get("outcome"))}
	page, err := s.cfg.Inspector.BatchTasks(r.Context(), id, f, p)
	if err != nil {
		s.fail(w, r, err, details{notFound: batchNotFound(id)})
		return
	}
	s.writeJSON(w, http.StatusOK, page)
}

// batchInScope checks the instance of batch id for a scoped token. A batch
// that cannot be read is left to the handler (it answers 400 or 404).
func (s *server) batchInScope(w http.ResponseWriter, r *http.Request, id string) bool {
	if !scoped(r) {
		return true
	}
	b, err := s.cfg.Inspector.Batch(r.Context(), id)
	if err != nil {
		return true
	}
	callOf(r).target.Instance = b.Instance
	return s.inScope(w, r, b.Instance)
}

func batchNotFound(id string) string {
	return fmt.Sprintf("no batch with id %q (unknown, or expired after WAHAQ_RESULT_TTL)", truncate(id, 80))
}
