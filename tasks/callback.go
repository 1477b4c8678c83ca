package tasks

import (
	"fmt"
	"strings"
	"time"

	"github.com/wahaq/wahaq/internal/callback"
	"github.com/wahaq/wahaq/internal/store"
)

// Callback is the delivery of a completion callback, as the task and batch
// JSON show it. The URL itself is not shown: an n8n resume URL is a
// capability.
type Callback struct {
	// State is "waiting" (the task is not final yet), "pending" (queued or
	// being retried), "delivered" (the
	// receiver answered 2xx) or "failed" (given up: CallbackRetryFor passed,
	// or the receiver answered a redirect or a 4xx other than 408/429).
	State string `json:"state"`
	// Attempts counts delivery attempts so far.
	Attempts int `json:"attempts"`
	// LastStatus is the receiver's last HTTP status; 0 when none came.
	LastStatus int `json:"last_status"`
	// LastError says why the last attempt failed, if it did.
	LastError *string `json:"last_error"`
	// Joined is how many more callback URLs the task holds: those of the
	// requests that joined it. Each gets a delivery of its own (its own
	// webhook-id) when the task ends; the fields above are the first
	// request's.
	Joined int `json:"joined,omitempty"`
}

// CallbackRetryFor is how long a callback is retried, with backoff, before
// it is given up (state "failed").
const CallbackRetryFor = 24 * time.Hour

// MaxCallbacks is how many callback URLs one task may hold: the request
// that created it and the requests that joined it (deduplicated onto it, or
// pulling it forward), each delivered once when it ends.
const MaxCallbacks = 16

// CallbackWaiting is a Callback's State before its task is final.
const CallbackWaiting = "waiting"

func newCallback(c *store.Callback) *Callback {
	if c == nil {
		return nil
	}
	out := &Callback{State: c.State, Attempts: c.Attempts, LastStatus: c.Status, Joined: c.Joined}
	if out.State == "" {
		out.State = CallbackWaiting
	}
	if c.LastError != "" {
		e := c.LastError
		out.LastError = &e
	}
	return out
}

// checkCallback validates a callback URL against Config.CallbackAllow; ""
// (none) is valid. A refused URL is an error wrapping ErrInvalidInput.
func (p *Producer) checkCallback(url string) error {
	if url == "" {
		return nil
	}
	if err := p.allow.Check(url); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidInput, err)
	}
	return nil
}

func parseAllow(entries []string) (*callback.Allow, error) {
	a, err := callback.ParseAllow(strings.Join(entries, ","))
	if err != nil {
		return nil, fmt.Errorf("tasks: Config.CallbackAllow: %w", err)
	}
	return a, nil
}
