package api

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/wahaq/wahaq/tasks"
)

// waitSlack is added to a long-poll's write deadline: the answer is written
// after the wait, and the server's own WriteTimeout would cut it.
const waitSlack = 10 * time.Second

// waitParam reads ?wait= (a Go duration such as 30s, at most
// tasks.MaxWait) of a long-poll GET, and extends the connection's write
// deadline to cover it. It answers the
// problem itself and returns false on bad input.
func (s *server) waitParam(w http.ResponseWriter, r *http.Request) (time.Duration, bool) {
	v := r.URL.Query().Get("wait")
	if v == "" {
		return 0, true
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 || d > tasks.MaxWait {
		s.problem(w, r, http.StatusBadRequest, fmt.Sprintf("wait %q is not a duration from 0s to %s, such as 30s", truncate(v, 40), tasks.MaxWait))
		return 0, false
	}
	// Errors mean the writer cannot change deadlines (a test recorder):
	// then there is no server deadline to extend either.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(d + waitSlack))
	return d, true
}

// waitContext is the context a long-poll waits under: ctx, also ended when
// the server begins to shut down (Config.Stopping). Then the wait stops and
// the handler answers the current state at once (cut reports whether the
// wait was cut so), instead of holding the client until the shutdown
// grace cuts it off with no answer (issue 23, M9).
func (s *server) waitContext(ctx context.Context) (wctx context.Context, cut func() bool, cancel context.CancelFunc) {
	if s.cfg.Stopping == nil {
		return ctx, func() bool { return false }, func() {}
	}
	wctx, cancel = context.WithCancel(ctx)
	go func() {
		select {
		case <-s.cfg.Stopping:
			cancel()
		case <-wctx.Done():
		}
	}()
	return wctx, func() bool { return wctx.Err() != nil && ctx.Err() == nil }, cancel
}
