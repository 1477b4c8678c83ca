package api

import (
	"fmt"
	"net/http"
)

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
