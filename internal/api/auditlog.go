package api

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/wahaq/wahaq/internal/audit"
)

// getAudit answers a page of the audit log, newest first, filtered by
// ?actor=, ?action=, ?target= (a task id, batch id or instance), ?since= and
// ?until= (RFC 3339), paged by ?cursor= and ?limit=. Every page says how
// far back the log goes ("retention").
func (s *server) getAudit(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var aq audit.Query
	for k := range q {
		switch k {
		case "actor", "action", "target", "since", "until", "cursor", "limit":
		default:
			s.problem(w, r, http.StatusBadRequest, fmt.Sprintf("unknown query parameter %q; known: actor, action, target, since, until, cursor, limit", truncate(k, 40)))
			return
		}
	}
	aq.Actor, aq.Action, aq.Target, aq.Cursor = q.Get("actor"), q.Get("action"), q.Get("target"), q.Get("cursor")
	for _, p := range []struct {
		name string
		to   *time.Time
	}{{"since", &aq.Since}, {"until", &aq.Until}} {
		if v := q.Get(p.name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				s.problem(w, r, http.StatusBadRequest, fmt.Sprintf("%s %q is not an RFC 3339 time such as 2030-01-02T15:04:05Z", p.name, truncate(v, 40)))
				return
			}
			*p.to = t
		}
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > audit.MaxLimit {
			s.problem(w, r, http.StatusBadRequest, fmt.Sprintf("limit %q is not an integer from 1 to %d", truncate(v, 40), audit.MaxLimit))
			return
		}
		aq.Limit = n
	}
	page, err := s.cfg.Audit.List(r.Context(), aq)
	if errors.Is(err, audit.ErrBadQuery) {
		s.problem(w, r, http.StatusBadRequest, err.Error())
		return
	}
	if err != nil {
		s.fail(w, r, err, details{})
		return
	}
	s.writeJSON(w, http.StatusOK, page)
}
