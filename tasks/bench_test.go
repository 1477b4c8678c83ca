package tasks

import (
	"encoding/json"
	"testing"
)

var sinkBytes []byte

var benchResult = &Result{Status: "success", Message: "Session logged out successfully", HTTPStatus: 201,
	SessionAfter: []byte(`{"name":"sales-bot-0042","status":"STARTING","me":null}`)}

// BenchmarkResultEncode is the result as the worker writes it into the record
// (json.Marshal: one allocation, from encoding/json's pooled buffer).
func BenchmarkResultEncode(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if sinkBytes, err = json.Marshal(benchResult); err != nil {
			b.Fatal(err)
		}
	}
}
