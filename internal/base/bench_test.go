package base

import (
	"strings"
	"testing"
)

var benchPayload = Payload{Instance: "default", Session: "sales-bot-0042", BatchID: "0f8fad5b-d9cb-469f-a165-70867728950e", MaxRetries: 10}

var sinkBytes []byte

func BenchmarkPayloadEncode(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		sinkBytes = benchPayload.Encode()
	}
}

func BenchmarkDecodePayload(b *testing.B) {
	for _, c := range []struct {
		name string
		p    Payload
	}{
		{"single", Payload{Instance: "default", Session: "sales-bot", MaxRetries: 10}},
		{"batch", benchPayload},
	} {
		raw := c.p.Encode()
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				p, err := DecodePayload(raw)
				if err != nil || p.Session != c.p.Session {
					b.Fatal(p, err)
				}
			}
		})
	}
}

// TestDecodeFastMatchesJSON pins the fast path of DecodePayload to the
// encoding/json path: whatever the fast path accepts, the slow path accepts
// with the same value.
func TestDecodeFastMatchesJSON(t *testing.T) {
	inputs := []string{
		`{"instance":"default","session":"sales-bot","max_retries":10}`,
		`{"instance":"default","session":"sales-bot","batch_id":"0f8fad5b-d9cb-469f-a165-70867728950e","max_retries":0}`,
		`{"instance":"a","session":"b","max_retries":123456789}`,
		`{"instance":"a","session":"b","max_retries":1234567890}`,
		`{"instance":"a","session":"b","max_retries":007}`,
		`{"instance":"a","session":"b","max_retries":-1}`,
		`{"instance":"a","session":"b","max_retries":1.5}`,
		`{"instance":"a","session":"b","max_retries":1} `,
		`{"instance":"a","session":"b","max_retries":1}}`,
		`{"instance":"a","session":"b","session":"c","max_retries":1}`,
		`{"instance":"a","instance":"z","session":"b","max_retries":1}`,
		`{"instance":"a","session":"b","max_retries":1,"x":2}`,
		`{"instance":"a","session":"b","batch_id":"","max_retries":1}`,
		`{"instance":"a","session":"b\u0041","max_retries":1}`,
		`{"instance":"a","session":"b c","max_retries":1}`,
		`{"instance":"","session":"b","max_retries":1}`,
		`{"session":"b","instance":"a","max_retries":1}`,
		`{ "instance":"a","session":"b","max_retries":1}`,
		`{"instance":"a","session":"` + strings.Repeat("s", MaxSessionNameLen+1) + `","max_retries":1}`,
		`{"instance":"a","session":"` + strings.Repeat("s", MaxSessionNameLen) + `","max_retries":1}`,
		`{"instance":"a","session":"b","traceparent":"%[1]s","max_retries":1}`,
		`{"instance":"a","session":"b","batch_id":"c","traceparent":"%[1]s","max_retries":1}`,
		`{"instance":"a","session":"b","traceparent":"","max_retries":1}`,
		`{"instance":"a","session":"b","traceparent":"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01","max_retries":1}`,
		`{"instance":"a","session":"b","traceparent":"00-00000000000000000000000000000000-00f067aa0ba902b7-01","max_retries":1}`,
		`{"instance":"a","session":"b","traceparent":"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01","max_retries":1}`,
		`{"instance":"a","session":"b","traceparent":"junk","max_retries":1}`,
		`{"instance":"a","session":"b","max_retries":1,"traceparent":"%[1]s"}`,
	}
	for i, in := range inputs {
		inputs[i] = strings.ReplaceAll(in, "%[1]s", "TP")
		inputs[i] = strings.ReplaceAll(inputs[i], `"TP"`, `"`+testTraceParent+`"`)
	}
	for _, in := range inputs {
		fast, ok := decodeFast([]byte(in))
		slow, err := decodeSlow([]byte(in))
		if ok && (err != nil || fast != slow) {
			t.Errorf("%s: fast %+v, json %+v %v", in, fast, slow, err)
		}
		got, gerr := DecodePayload([]byte(in))
		if (gerr == nil) != (err == nil) || got != slow {
			t.Errorf("%s: DecodePayload %+v %v, json %+v %v", in, got, gerr, slow, err)
		}
	}
	for _, p := range []Payload{{Instance: "x", Session: "y"}, benchPayload, {Instance: "x", Session: "y", BatchID: "b", TraceParent: testTraceParent}} {
		if _, ok := decodeFast(p.Encode()); !ok {
			t.Errorf("fast path refuses Encode's own output %s", p.Encode())
		}
	}
}

// testTraceParent is the W3C specification's example traceparent.
const testTraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
