// Package preflight checks the configured WAHA servers before a big batch
// is sent to them: reachable or not, WAHA's version, whether the key is
// accepted, whether the server refuses a wrong key at all, the sessions
// by status and the round-trip time (wahaclient.Client.Check). `wahaq
// instances check`, GET /v1/instances/{name}/check and the console share
// it, so that all three say the same.
package preflight

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/wahaq/wahaq/wahaclient"
)

// DefaultTimeout bounds one server's check. It stays under the HTTP API's
// request timeout (4 s), so that a server that hangs gets an answer that
// says so rather than the API's 503.
const DefaultTimeout = 3500 * time.Millisecond

// Result is one server's preflight, as the API and `wahaq instances check
// --json` show it.
type Result struct {
	// Instance is the instance's name.
	Instance string `json:"instance"`
	// BaseURL is its base URL, without user info or query.
	BaseURL string `json:"base_url"`
	// OK is false when the check found a problem (unreachable, key
	// refused, key not configured here).
	OK bool `json:"ok"`
	wahaclient.Check
}

// Target is one configured WAHA server, as the instances file and the
// settings give it (cmd/wahaq fills it from config.Instance).
type Target struct {
	// Name is the instance's name.
	Name string
	// BaseURL is the server's URL.
	BaseURL string
	// APIKey is its key, "" when this process does not have it.
	APIKey string
	// APIKeyEnv names the variable the key comes from; "" for none.
	APIKeyEnv string
	// NoKey is true when the server takes no key by configuration.
	NoKey bool
}

// Checker checks the configured instances.
type Checker struct {
	instances []Target
	timeout   time.Duration
	// redact lists every configured key, so that no server's echo of
	// another's key reaches a result.
	redact []string
}

// New returns a Checker of insts. timeout bounds each server's check;
// 0 means DefaultTimeout.
func New(insts []Target, timeout time.Duration) *Checker {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	c := &Checker{instances: insts, timeout: timeout}
	for _, in := range insts {
		c.redact = append(c.redact, in.APIKey)
	}
	return c
}

// Instances returns the names of the instances, in configuration order.
func (c *Checker) Instances() []string {
	out := make([]string, len(c.instances))
	for i, in := range c.instances {
		out[i] = in.Name
	}
	return out
}

// Check runs the preflight of the instance name; ok is false when no such
// instance is configured.
func (c *Checker) Check(ctx context.Context, name string) (r Result, ok bool) {
	for _, in := range c.instances {
		if in.Name == name {
			return c.check(ctx, in), true
		}
	}
	return Result{}, false
}

// All runs every instance's preflight, at the same time, in configuration
// order.
func (c *Checker) All(ctx context.Context) []Result {
	out := make([]Result, len(c.instances))
	done := make(chan struct{}, len(c.instances))
	for i, in := range c.instances {
		go func() {
			out[i] = c.check(ctx, in)
			done <- struct{}{}
		}()
	}
	for range c.instances {
		<-done
	}
	return out
}

func (c *Checker) check(ctx context.Context, in Target) Result {
	r := Result{Instance: in.Name, BaseURL: wahaclient.StripUserinfo(in.BaseURL)}
	// A transport of its own, closed after: a check keeps no connection.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	defer tr.CloseIdleConnections()
	cl, err := wahaclient.New(wahaclient.Config{BaseURL: in.BaseURL, APIKey: in.APIKey, Timeout: c.timeout, Redact: c.redact,
		HTTPClient: &http.Client{Transport: tr}})
	if err != nil {
		r.Problems, r.Warnings = []string{err.Error()}, []string{}
		return r
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	r.Check = *cl.Check(ctx)
	if in.APIKey == "" && !in.NoKey && in.APIKeyEnv != "" {
		// serve and the CLI do not need the keys; a check does.
		r.Problems = append(r.Problems, fmt.Sprintf("its key is not in this process's environment (%s is unset or empty): the key could not be checked; run the check with the worker's settings", in.APIKeyEnv))
	}
	r.OK = r.Check.OK()
	return r
}
