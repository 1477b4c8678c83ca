package wahaclient

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"time"
)

// Check is what a preflight (Client.Check) found out about one WAHA server,
// before a big batch is sent to it.
type Check struct {
	// Reachable is true when the server answered HTTP at all.
	Reachable bool `json:"reachable"`
	// Version is WAHA's version, from GET /api/version or, when that route
	// is missing, GET /api/server/version; "" when neither answered.
	Version string `json:"version"`
	// KeyAccepted says whether the server took the configured key for
	// listing sessions; nil when that could not be asked (unreachable).
	KeyAccepted *bool `json:"key_accepted"`
	// KeyEnforced says whether the server refuses a wrong key: false means
	// it accepts any key (WAHA 2024.10.x, or WAHA_NO_API_KEY=True), so a
	// wrong key will not be detected; nil when it could not be asked.
	KeyEnforced *bool `json:"key_enforced"`
	// Sessions counts the server's sessions by status (STOPPED ones
	// included); nil when the listing failed.
	Sessions map[string]int `json:"sessions"`
	// SessionsTotal is the number of sessions listed; entries that are not
	// sessions are left out.
	SessionsTotal int `json:"sessions_total"`
	// RoundTripMS is the time in milliseconds of the smallest call (the
	// version, or the wrong-key probe); nil when no call was answered.
	RoundTripMS *float64 `json:"round_trip_ms"`
	// Problems are what makes the server unfit for a batch (unreachable,
	// key refused): a preflight with any fails.
	Problems []string `json:"problems"`
	// Warnings are what a person should know but does not stop a batch
	// (the server accepts any key, its version is unknown).
	Warnings []string `json:"warnings"`
}

// OK reports whether the check found no problem.
func (c *Check) OK() bool { return len(c.Problems) == 0 }

// Check asks the server, with at most four calls, what a bulk teardown
// needs to know: whether it answers, its version (GET /api/version, or
// GET /api/server/version), whether it takes the configured key (GET
// /api/sessions?all=true, which also gives the sessions by status),
// whether it refuses a wrong key at all (GET /api/sessions/{random name}
// with a random key: WAHA 2024.10 accepts any key, newer lines answer
// 401), and the round-trip time. It never logs a session out. ctx bounds
// the whole check; a listing that does not finish within it leaves
// Sessions nil with a warning.
func (c *Client) Check(ctx context.Context) *Check {
	ch := &Check{Problems: []string{}, Warnings: []string{}}

	// The version: whichever route answers.
	for _, route := range []string{"/api/version", "/api/server/version"} {
		start := time.Now()
		_, body, err := c.do(ctx, "version", http.MethodGet, route, nil, nil, maxBodyBytes)
		rtt := time.Since(start)
		var ae *APIError
		if errors.As(err, &ae) && ae.StatusCode == 0 {
			ch.Problems = append(ch.Problems, "unreachable: "+err.Error())
			return ch
		}
		ch.Reachable = true
		ch.setRTT(rtt)
		if err == nil {
			var v struct {
				Version string `json:"version"`
			}
			if json.Unmarshal(body, &v) == nil {
				ch.Version = shorten(v.Version, 64)
			}
			break
		}
		if ae == nil || ae.StatusCode != http.StatusNotFound {
			break // a 401 or another error: the key's check below says why
		}
	}
	// Does the server refuse a wrong key? A random key and a random session
	// name: 401 says it checks keys; 404 (or 200) says any key gets in.
	probe := c.withKey("wahaq-preflight-wrong-key-" + rand.Text())
	{
		start := time.Now()
		_, err := probe.GetSession(ctx, "wahaq-preflight-"+rand.Text()[:12])
		rtt := time.Since(start)
		var ae *APIError
		switch {
		case errors.Is(err, ErrUnauthorized), errors.Is(err, ErrForbidden):
			ch.setRTT(rtt)
			ch.KeyEnforced = ptrBool(true)
		case err == nil, errors.Is(err, ErrSessionNotFound):
			ch.setRTT(rtt)
			ch.KeyEnforced = ptrBool(false)
			ch.Warnings = append(ch.Warnings, "this server accepts any key: a call with a wrong key succeeded, so a wrong key will not be detected (WAHA 2024.10.x, or WAHA_NO_API_KEY=True)")
		case errors.As(err, &ae) && ae.StatusCode != 0:
			ch.setRTT(rtt)
			ch.Warnings = append(ch.Warnings, "could not tell whether this server checks keys: "+err.Error())
		default:
			ch.Warnings = append(ch.Warnings, "could not tell whether this server checks keys: "+err.Error())
		}
	}

	// The configured key, and the sessions by status.
	counts := map[string]int{}
	total := 0
	err := c.EachSession(ctx, true, func(e ListEntry) error {
		if e.Skip != "" {
			return nil
		}
		counts[e.Session.Status]++
		total++
		return nil
	})
	var ae *APIError
	switch {
	case err == nil:
		ch.Reachable = true
		ch.KeyAccepted = ptrBool(true)
		ch.Sessions, ch.SessionsTotal = counts, total
	case errors.Is(err, ErrUnauthorized):
		ch.Reachable = true
		ch.KeyAccepted = ptrBool(false)
		if c.apiKey == "" {
			ch.Problems = append(ch.Problems, "the server requires a key and none is configured (401)")
		} else {
			ch.Problems = append(ch.Problems, "the server refuses the configured key (401): check the key, or the variable its api_key_env names")
		}
	case errors.Is(err, ErrForbidden):
		ch.Reachable = true
		ch.KeyAccepted = ptrBool(true)
		ch.Warnings = append(ch.Warnings, "the key is scoped to sessions (403 to a listing): bulk --all cannot list this server, and each logout needs the key's \"control\" action on its session")
	case errors.As(err, &ae) && ae.StatusCode == 0 && !ch.Reachable:
		ch.Problems = append(ch.Problems, "unreachable: "+err.Error())
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		ch.Warnings = append(ch.Warnings, "the listing of sessions did not finish in time: "+err.Error())
	default:
		ch.Problems = append(ch.Problems, "listing sessions failed: "+err.Error())
	}
	if ch.Version == "" && ch.Reachable && (ch.KeyAccepted == nil || *ch.KeyAccepted) {
		// (a refused key explains itself: the version routes refused it too)
		ch.Warnings = append(ch.Warnings, "the version is unknown: neither GET /api/version nor GET /api/server/version answered it")
	}
	if ch.KeyEnforced != nil && !*ch.KeyEnforced && ch.KeyAccepted != nil && !*ch.KeyAccepted {
		// A 401 to our key but not to a random one: a proxy in the way.
		ch.Warnings = append(ch.Warnings, "the server refused the configured key but not a random one: is a proxy checking keys in front of it?")
	}
	return ch
}

func (ch *Check) setRTT(d time.Duration) {
	ms := float64(d.Microseconds()) / 1000
	if ch.RoundTripMS == nil || ms < *ch.RoundTripMS {
		ch.RoundTripMS = &ms
	}
}

func ptrBool(b bool) *bool { return &b }

// withKey is a copy of c that sends key instead (same server, transport,
// timeout and redaction, which keeps c's own key redacted too).
func (c *Client) withKey(key string) *Client {
	return &Client{base: c.base, apiKey: key, hc: c.hc, timeout: c.timeout, now: c.now, redact: c.redact}
}
