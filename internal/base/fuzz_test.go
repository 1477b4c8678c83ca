package base_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/wahaq/wahaq/internal/base"
)

// FuzzDecodePayload feeds arbitrary bytes to the worker's payload decoder, the
// first thing a worker does with a message it pulled from Redis. It must never
// panic; whatever it accepts must survive a round trip through Encode
// unchanged (Encode is hand-rolled and trusts validated names); whatever it
// refuses must be an ErrInvalidInput, so the worker dead-letters it instead of
// retrying forever.
func FuzzDecodePayload(f *testing.F) {
	for _, s := range []string{
		`{"instance":"default","session":"sales-bot","max_retries":10}`,
		`{"instance":"default","session":"s","batch_id":"0b5e6f1c-5d7e-4c1a-9a57-9a0d3f1e2b3c","max_retries":0}`,
		`{"instance":"default","session":"a\"b","max_retries":1}`,
		`{"instance":"default","session":"s","max_retries":-1}`,
		`{"instance":"","session":"s"}`,
		`{"instance":"default","session":"` + string(bytes.Repeat([]byte("a"), 55)) + `"}`,
		`{"instance":"default","session":"s\u0000"}`,
		`{"instance":"x","session":"y","max_retries":1e3}`,
		`{"instance":"x","session":"y","max_retries":9223372036854775808}`,
		`{"instance":"x","session":"y","batch_id":"../../etc"}`,
		`{"instance":"x","session":"y","instance":"z"}`,
		`{"instance":"x","session":"y","traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01","max_retries":2}`,
		`{"instance":"x","session":"y","traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7","max_retries":2}`,
		`{"instance":"x","session":"y","traceparent":"nope\"","max_retries":2}`,
		`[]`, `null`, `"x"`, ``, `{`, "\xff\xfe",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := base.DecodePayload(b)
		if err != nil {
			if !errors.Is(err, base.ErrInvalidInput) {
				t.Fatalf("DecodePayload(%q) error %v does not wrap ErrInvalidInput", b, err)
			}
			if p != (base.Payload{}) {
				t.Fatalf("DecodePayload(%q) returned %+v with an error", b, p)
			}
			return
		}
		if base.ValidateInstanceName(p.Instance) != nil || base.ValidateSessionName(p.Session) != nil || p.MaxRetries < 0 ||
			!base.ValidTraceParent(p.TraceParent) {
			t.Fatalf("DecodePayload(%q) accepted an invalid payload %+v", b, p)
		}
		enc := p.Encode()
		q, err := base.DecodePayload(enc)
		if err != nil {
			t.Fatalf("re-encoded payload %q of input %q does not decode: %v", enc, b, err)
		}
		if q != p {
			t.Fatalf("round trip changed the payload: %+v -> %q -> %+v", p, enc, q)
		}
		if again := q.Encode(); !bytes.Equal(again, enc) {
			t.Fatalf("Encode is not stable: %q then %q", enc, again)
		}
	})
}
