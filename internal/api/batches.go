package api

import (
	"fmt"
	"net/http"
	"strconv"

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
	c, err := s.cfg.Producer.CancelBatch(r.Context(), id)
	if err != nil {
		s.fail(w, r, err, details{notFound: fmt.Sprintf("no batch with id %q (unknown, or expired after WAHAQ_RESULT_TTL)", truncate(id, 80))})
		return
	}
	s.writeJSON(w, http.StatusOK, c)
}
