package console

import (
	"net/http"
	"sync"
	"time"

	"github.com/wahaq/wahaq/internal/preflight"
)

// The preflight of a WAHA server (internal/preflight), offered on the
// overview. It calls the server, so it runs only when a person asks for it
// (GET /ui/instances/{name}/check), never on the overview's refresh; the
// overview shows the last result this process got.

// checkView is one preflight as the pages show it.
type checkView struct {
	preflight.Result
	// At is when it ran.
	At time.Time
}

// checks keeps the last preflight of each server.
type checks struct {
	checker *preflight.Checker
	mu      sync.Mutex
	last    map[string]*checkView
}

// lastOf reports whether the server's preflight is offered, and its last
// result (nil before any).
func (c *checks) lastOf(name string) (bool, *checkView) {
	if c.checker == nil {
		return false, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return true, c.last[name]
}

func (c *Console) checkPage(w http.ResponseWriter, r *http.Request, s session) {
	name := r.PathValue("name")
	if c.checks.checker == nil {
		c.render(w, r, http.StatusNotFound, "message", page{Title: "Not found", Session: &s,
			Data: message{Heading: "No preflight here", Text: "This console was started without the servers' preflight.", Link: mount}})
		return
	}
	res, ok := c.checks.checker.Check(r.Context(), name)
	if !ok {
		c.render(w, r, http.StatusNotFound, "message", page{Title: "Not found", Session: &s,
			Data: message{Heading: "No such server", Text: "No WAHA server named " + name + " is configured.", Link: mount}})
		return
	}
	v := &checkView{Result: res, At: c.now()}
	c.checks.mu.Lock()
	c.checks.last[name] = v
	c.checks.mu.Unlock()
	c.log.Info().Str("instance", name).Bool("ok", res.OK).Msg("console: preflight")
	c.render(w, r, http.StatusOK, "check", page{Title: "Preflight of " + name, Nav: "overview", Session: &s, Data: v})
}
