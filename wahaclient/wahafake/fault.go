package wahafake

import (
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
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
	// Status is the HTTP status to answer. 401, 403, 404, 422, 500 and 501
	// (WAHA's "not implemented by the engine") get WAHA's own bodies; 429, 502, 503 and 504 get an nginx-style HTML page (they come
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
	// LockTimeout answers as WAHA does when the session's operations queue
	// up past its lock's timeout (2025.6.3+, under load): 500 with the
	// exception message "async-lock timed out in queue <session>". Status
	// and Message are ignored.
	LockTimeout bool
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
	case f.LockTimeout:
		parts = append(parts, "lock timeout")
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
	Status      int       `json:"status,omitempty"`
	Message     string    `json:"message,omitempty"`
	Times       int       `json:"times,omitempty"`
	RetryAfter  *duration `json:"retry_after,omitempty"`
	Reset       bool      `json:"reset,omitempty"`
	Delay       *duration `json:"delay,omitempty"`
	LockTimeout bool      `json:"lock_timeout,omitempty"`
}

// MarshalJSON writes the control API's shape (durations as strings).
func (f Fault) MarshalJSON() ([]byte, error) {
	j := faultJSON{Status: f.Status, Message: f.Message, Times: f.Times, Reset: f.Reset, LockTimeout: f.LockTimeout}
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
	*f = Fault{Status: j.Status, Message: j.Message, Times: j.Times, Reset: j.Reset, LockTimeout: j.LockTimeout}
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

type flakySpec struct {
	rate   float64
	status int
}

// test).
func (s *Server) Script(session string, faults ...Fault) {
	for _, f := range faults {
		if err := f.validate(); err != nil {
			panic("wahafake: Script: " + err.Error())
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(faults) == 0 {
		delete(s.scripts, session)
		return
	}
	s.scripts[session] = append([]Fault(nil), faults...)
}

// SetFlaky makes a share (0..1) of the session's logout calls fail with status
// (0 means 503), drawn from the server's seeded RNG. A rate of 0 clears it.
func (s *Server) SetFlaky(session string, failureRate float64, status int) {
	if status == 0 {
		status = http.StatusServiceUnavailable
	}
	if err := (Fault{Status: status}).validate(); err != nil {
		panic("wahafake: SetFlaky: " + err.Error())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if failureRate <= 0 {
		delete(s.flaky, session)
		return
	}
	s.flaky[session] = flakySpec{rate: min(failureRate, 1), status: status}
}

// SetDefaultFault applies f to every logout of every session while set ("WAHA
// answers 503 for everyone", "keys revoked: 401 for everyone"); nil clears it.
// It takes precedence over scripts. With Times > 0 it applies to that many
// calls and then clears itself.
func (s *Server) SetDefaultFault(f *Fault) {
	if f != nil {
		if err := f.validate(); err != nil {
			panic("wahafake: SetDefaultFault: " + err.Error())
		}
		cp := *f
		f = &cp
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.defaultFault = f
}

// LogoutCalls is the number of logout calls received for session on either
// nextFault picks the fault for this call: the default fault, else the
// session's script, else its flakiness. It consumes one use.
func (s *Server) nextFault(name string) *Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f := s.defaultFault; f != nil {
		out := *f
		if f.Times > 0 {
			f.Times--
			if f.Times == 0 {
				s.defaultFault = nil
			}
		}
		return &out
	}
	if script := s.scripts[name]; len(script) > 0 {
		out := script[0]
		if script[0].Times > 0 {
			script[0].Times--
			if script[0].Times == 0 {
				script = script[1:]
			}
		}
		if len(script) == 0 {
			delete(s.scripts, name)
		} else {
			s.scripts[name] = script
		}
		return &out
	}
	if fl, ok := s.flaky[name]; ok && s.rng.Float64() < fl.rate {
		return &Fault{Status: fl.status}
	}
	return nil
}

// applyFault serves f if it ends the call; handled is false when the call
// should go on normally (no fault, or a delay-only fault).
func (s *Server) applyFault(w http.ResponseWriter, r *http.Request, session string, f *Fault) (status int, handled bool) {
	if f == nil {
		return 0, false
	}
	if f.Delay > 0 && !sleepCtx(r, f.Delay) {
		return StatusClientClosed, true
	}
	if f.Reset {
		resetConn(w)
		return 0, true
	}
	if f.LockTimeout {
		writeLockTimeout(w, r, session)
		return http.StatusInternalServerError, true
	}
	if f.Status == 0 {
		return 0, false
	}
	if f.RetryAfter > 0 {
		w.Header().Set("Retry-After", retryAfterSeconds(f.RetryAfter))
	}
	writeFault(w, r, f)
	return f.Status, true
}

// resetConn closes the connection without an answer; SO_LINGER 0 makes the
// kernel send a RST, like a crashing process or a dropping proxy.
func resetConn(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		// Not hijackable (HTTP/2): the closest thing is to abort the handler.
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

func writeFault(w http.ResponseWriter, r *http.Request, f *Fault) {
	st := f.Status
	text := http.StatusText(st)
	if f.Message != "" {
		writeJSON(w, st, errorBody{StatusCode: st, Message: f.Message, Error: text})
		return
	}
	switch st {
	case http.StatusUnauthorized, http.StatusForbidden:
		writeAuth(w, st)
	case http.StatusNotFound:
		sessionNotFound(w)
	case http.StatusUnprocessableEntity:
		coreRejected(w)
	case http.StatusInternalServerError:
		writeInternalError(w, r, "Internal server error (scripted by wahafake)")
	case http.StatusNotImplemented:
		// WAHA's NotImplementedByEngineError (2025.6.6+): the session's
		// engine does not implement the call.
		writeJSON(w, st, errorBody{StatusCode: st, Message: notImplementedMessage, Error: text})
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(st)
		_, _ = fmt.Fprintf(w, "<html>\r\n<head><title>%d %s</title></head>\r\n<body>\r\n<center><h1>%d %s</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n", st, text, st, text)
	default:
		writeJSON(w, st, errorBody{StatusCode: st, Message: text, Error: text})
	}
}

// sleepCtx waits d or until the client goes away; false means it went away.
func sleepCtx(r *http.Request, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}
