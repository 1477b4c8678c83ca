package wahafake

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Fault scripts a failure (or a delay) of a logout call. Faults apply to both
// logout routes, before authentication, the way a proxy in front of WAHA or a
// failing WAHA would answer.
//
// In the control API a Fault is JSON:
//
//	{"status":503,"times":3,"retry_after":"2s","delay":"500ms","reset":false,"message":"..."}
//
// where durations are Go duration strings or numbers of seconds.
type Fault struct {
	// Status is the HTTP status to answer. 401, 403, 404, 422 and 500 get WAHA's
	// own bodies; 429, 502, 503 and 504 get an nginx-style HTML page (they come
	// from a proxy, WAHA has no rate limit); other statuses get WAHA's generic
	// {"statusCode","message","error"}. 0 with Delay only means "slow, then
	// serve normally".
	Status int
	// Message replaces the default message and forces a WAHA JSON body.
	Message string
	// Times is how many calls the fault applies to; 0 (or negative) means
	// forever, so faults after it in a script are never reached.
	Times int
	// RetryAfter, when positive, is sent as a Retry-After header in whole
	// seconds (rounded up).
	RetryAfter time.Duration
	// Reset closes the connection without answering (the client sees a
	// connection reset or EOF). Status is ignored.
	Reset bool
	// Delay is waited before the fault (or the normal answer) is served; a
	// client that gives up ends the wait.
	Delay time.Duration
}

func (f Fault) validate() error {
	if f.Status != 0 && (f.Status < 200 || f.Status > 599) {
		return fmt.Errorf("fault status %d is not an HTTP status between 200 and 599", f.Status)
	}
	if f.RetryAfter < 0 || f.Delay < 0 {
		return fmt.Errorf("fault durations must not be negative")
	}
	return nil
}

// String describes the fault for logs, e.g. "503 x3".
func (f Fault) String() string {
	var parts []string
	switch {
	case f.Reset:
		parts = append(parts, "reset")
	case f.Status != 0:
		parts = append(parts, strconv.Itoa(f.Status))
	}
	if f.Delay > 0 {
		parts = append(parts, "delay "+f.Delay.String())
	}
	if f.RetryAfter > 0 {
		parts = append(parts, "retry-after "+f.RetryAfter.String())
	}
	if f.Times > 0 {
		parts = append(parts, "x"+strconv.Itoa(f.Times))
	} else {
		parts = append(parts, "forever")
	}
	return strings.Join(parts, " ")
}

type faultJSON struct {
	Status     int       `json:"status,omitempty"`
	Message    string    `json:"message,omitempty"`
	Times      int       `json:"times,omitempty"`
	RetryAfter *duration `json:"retry_after,omitempty"`
	Reset      bool      `json:"reset,omitempty"`
	Delay      *duration `json:"delay,omitempty"`
}

// MarshalJSON writes the control API's shape (durations as strings).
func (f Fault) MarshalJSON() ([]byte, error) {
	j := faultJSON{Status: f.Status, Message: f.Message, Times: f.Times, Reset: f.Reset}
	if f.RetryAfter > 0 {
		d := duration(f.RetryAfter)
		j.RetryAfter = &d
	}
	if f.Delay > 0 {
		d := duration(f.Delay)
		j.Delay = &d
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads the control API's shape; unknown keys are an error so a
// typo in a shell script does not silently script nothing.
func (f *Fault) UnmarshalJSON(b []byte) error {
	var j faultJSON
	if err := decodeStrict(b, &j); err != nil {
		return err
	}
	*f = Fault{Status: j.Status, Message: j.Message, Times: j.Times, Reset: j.Reset}
	if j.RetryAfter != nil {
		f.RetryAfter = time.Duration(*j.RetryAfter)
	}
	if j.Delay != nil {
		f.Delay = time.Duration(*j.Delay)
	}
	return f.validate()
}

// duration is a time.Duration in JSON: "1.5s" or a number of seconds.
type duration time.Duration

func timeDuration(d duration) time.Duration { return time.Duration(d) }

func (d duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *duration) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("invalid duration %q: use a Go duration such as \"500ms\" or \"2s\", or a number of seconds", s)
		}
		*d = duration(v)
		return nil
	}
	var secs float64
	if err := json.Unmarshal(b, &secs); err != nil || math.IsNaN(secs) || secs > 1e9 {
		return fmt.Errorf("invalid duration %s: use a Go duration such as \"2s\" or a number of seconds", b)
	}
	*d = duration(time.Duration(secs * float64(time.Second)))
	return nil
}

// retryAfterSeconds renders a Retry-After value in whole seconds, rounded up
// so that a client waiting that long never comes back too early.
func retryAfterSeconds(d time.Duration) string {
	secs := int64((d + time.Second - 1) / time.Second)
	return strconv.FormatInt(max(secs, 1), 10)
}
