package base

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Payload is the asynq payload of a logout task. It names the WAHA server and
// the session, and never carries a secret: keys stay in the worker's
// environment.
type Payload struct {
	// Instance is the name of the WAHA server.
	Instance string `json:"instance"`
	// Session is the WAHA session name.
	Session string `json:"session"`
	// BatchID is the batch the task belongs to, if any.
	BatchID string `json:"batch_id,omitempty"`
	// TraceParent is the W3C traceparent of the trace the task was enqueued
	// in (version 00), so the worker's attempts join it; "" when not traced.
	TraceParent string `json:"traceparent,omitempty"`
	// MaxRetries is the retry limit fixed when the task was enqueued.
	MaxRetries int `json:"max_retries"`
}

// Encode returns the payload as JSON.
func (p Payload) Encode() []byte {
	// Names are validated before a payload is built (no quotes, no escapes),
	// so a hand-rolled append is exact and allocates once.
	b := make([]byte, 0, 64+len(p.Instance)+len(p.Session)+len(p.BatchID)+len(p.TraceParent)+16)
	b = append(b, `{"instance":"`...)
	b = append(b, p.Instance...)
	b = append(b, `","session":"`...)
	b = append(b, p.Session...)
	if p.BatchID != "" {
		b = append(b, `","batch_id":"`...)
		b = append(b, p.BatchID...)
	}
	if p.TraceParent != "" {
		b = append(b, `","traceparent":"`...)
		b = append(b, p.TraceParent...)
	}
	b = append(b, `","max_retries":`...)
	b = appendInt(b, p.MaxRetries)
	b = append(b, '}')
	return b
}

func appendInt(b []byte, n int) []byte {
	if n < 0 {
		b = append(b, '-')
		n = -n
	}
	var tmp [20]byte
	i := len(tmp)
	for {
		i--
		tmp[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	return append(b, tmp[i:]...)
}

// DecodePayload parses and validates a payload. A payload that does not
// decode, or names an invalid instance or session, is an error wrapping
// ErrInvalidInput: retrying it cannot help.
func DecodePayload(b []byte) (Payload, error) {
	if p, ok := decodeFast(b); ok {
		return p, nil
	}
	return decodeSlow(b)
}

// decodeSlow is DecodePayload for any input: encoding/json, then the
// validators.
func decodeSlow(b []byte) (Payload, error) {
	var p Payload
	if err := json.Unmarshal(b, &p); err != nil {
		return Payload{}, fmt.Errorf("%w: payload is not valid JSON: %v", ErrInvalidInput, err)
	}
	if err := ValidateInstanceName(p.Instance); err != nil {
		return Payload{}, err
	}
	if err := ValidateSessionName(p.Session); err != nil {
		return Payload{}, err
	}
	if p.BatchID != "" {
		if err := ValidateID("batch id", p.BatchID); err != nil {
			return Payload{}, err
		}
	}
	if p.MaxRetries < 0 {
		return Payload{}, fmt.Errorf("%w: max_retries %d is negative", ErrInvalidInput, p.MaxRetries)
	}
	if !ValidTraceParent(p.TraceParent) {
		// A broken trace header must not fail the logout: the task runs
		// outside any trace.
		p.TraceParent = ""
	}
	return p, nil
}

// decodeFast parses exactly what Encode writes, with names that pass
// validation, with one allocation (the names share one string). Anything
// else (another key order or spacing, escapes, invalid names, a number out of
// range) returns false and goes through encoding/json and the validators, so
// both paths accept the same payloads and return the same values.
func decodeFast(b []byte) (Payload, bool) {
	var p Payload
	rest, ok := strings.CutPrefix(string(b), `{"instance":"`)
	if !ok {
		return p, false
	}
	if p.Instance, rest, ok = strings.Cut(rest, `"`); !ok || !nameOK(p.Instance, MaxInstanceNameLen) {
		return p, false
	}
	if rest, ok = strings.CutPrefix(rest, `,"session":"`); !ok {
		return p, false
	}
	if p.Session, rest, ok = strings.Cut(rest, `"`); !ok || !nameOK(p.Session, MaxSessionNameLen) {
		return p, false
	}
	if after, isBatch := strings.CutPrefix(rest, `,"batch_id":"`); isBatch {
		if p.BatchID, rest, ok = strings.Cut(after, `"`); !ok || !nameOK(p.BatchID, MaxIDLen) {
			return p, false
		}
	}
	if after, isTrace := strings.CutPrefix(rest, `,"traceparent":"`); isTrace {
		if p.TraceParent, rest, ok = strings.Cut(after, `"`); !ok || p.TraceParent == "" || !ValidTraceParent(p.TraceParent) {
			return p, false
		}
	}
	if rest, ok = strings.CutPrefix(rest, `,"max_retries":`); !ok {
		return p, false
	}
	digits, ok := strings.CutSuffix(rest, "}")
	// At most 9 digits (no overflow), no sign, no leading zero: numbers on
	// which JSON and this loop agree.
	if !ok || len(digits) == 0 || len(digits) > 9 || (digits[0] == '0' && len(digits) > 1) {
		return p, false
	}
	for i := 0; i < len(digits); i++ {
		c := digits[i]
		if c < '0' || c > '9' {
			return p, false
		}
		p.MaxRetries = p.MaxRetries*10 + int(c-'0')
	}
	return p, true
}

// ValidTraceParent reports whether s is empty or a W3C traceparent of
// version 00 as OpenTelemetry writes it: 00-<32 hex trace id>-<16 hex span
// id>-<2 hex flags>, lower case, ids not all zero.
func ValidTraceParent(s string) bool {
	if s == "" {
		return true
	}
	if len(s) != 55 || s[:3] != "00-" || s[35] != '-' || s[52] != '-' {
		return false
	}
	return lowerHex(s[3:35]) && lowerHex(s[36:52]) && lowerHex(s[53:55]) &&
		s[3:35] != strings.Repeat("0", 32) && s[36:52] != strings.Repeat("0", 16)
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// TraceID is the trace id of a valid traceparent, or "".
func TraceID(traceParent string) string {
	if traceParent == "" || !ValidTraceParent(traceParent) {
		return ""
	}
	return traceParent[3:35]
}

// DiscoverPayload is the payload of a discovery task.
type DiscoverPayload struct {
	// Instance is the WAHA server whose sessions are listed.
	Instance string `json:"instance"`
	// BatchID is the batch to fill.
	BatchID string `json:"batch_id"`
	// Statuses keeps only sessions in these statuses; empty keeps all.
	Statuses []string `json:"statuses,omitempty"`
	// MaxRetries is the retry limit of the logouts it enqueues, fixed when
	// the batch was requested.
	MaxRetries int `json:"max_retries"`
	// TraceParent is the W3C traceparent of the trace the batch was
	// requested in, so the discovery and the logouts it enqueues join it;
	// "" when not traced.
	TraceParent string `json:"traceparent,omitempty"`
	// Retries is the retry limit of the discovery itself; 0 (a payload
	// from before it was written) means asynq's limit of the task decides.
	Retries int `json:"retries,omitempty"`
}

// DefaultDiscoverRetries bounds the retries of a discovery: listing
// sessions is cheap and a person is waiting for the batch.
const DefaultDiscoverRetries = 5
