package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/wahaq/wahaq/internal/base"
	"github.com/wahaq/wahaq/tasks"
	"github.com/wahaq/wahaq/wahaclient"
)

var (
	sinkClass   class
	sinkOutcome tasks.Outcome
	sinkFinish  verdict
	sinkResult  *tasks.Result
)

func BenchmarkClassify(b *testing.B) {
	for _, c := range []struct {
		name string
		err  error
	}{
		{"success", nil},
		{"not_found", apiErr(404, wahaclient.ErrSessionNotFound)},
		{"transient_wrapped", fmt.Errorf("attempt: %w", apiErr(503, wahaclient.ErrTransient))},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				sinkClass, sinkOutcome = classify(c.err)
			}
		})
	}
}

func benchAttempt() (*Worker, *attempt) {
	w := &Worker{cfg: Config{ResultTTL: 24 * time.Hour, RetryBase: 2 * time.Second, RetryMax: 10 * time.Minute, Now: time.Now}}
	a := &attempt{ID: "0f8fad5b-d9cb-469f-a165-70867728950e", Number: 1,
		Payload: base.Payload{Instance: "default", Session: "sales-bot-0042", MaxRetries: 10}}
	return w, a
}

// BenchmarkDecide is the per-attempt policy: classify, build the n8n-shaped
// result, pick the next state.
func BenchmarkDecide(b *testing.B) {
	w, a := benchAttempt()
	res := &wahaclient.LogoutResult{HTTPStatus: 201, Session: &wahaclient.Session{Name: "sales-bot-0042", Status: "STARTING"}}
	b.Run("logged_out", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sinkFinish, _ = w.decide(a, res, nil)
		}
	})
	b.Run("transient", func(b *testing.B) {
		err := apiErr(503, wahaclient.ErrTransient)
		b.ReportAllocs()
		for b.Loop() {
			sinkFinish, _ = w.decide(a, nil, err)
		}
	})
	b.Run("timeout", func(b *testing.B) {
		err := fmt.Errorf("logout: %w", context.DeadlineExceeded)
		a := *a
		a.Number = 11
		b.ReportAllocs()
		for b.Loop() {
			sinkFinish, _ = w.decide(&a, nil, err)
		}
	})
}

// BenchmarkResultOf builds the n8n-shaped result of a successful logout,
// with the session WAHA returned (Store.Finish then encodes it; see the
// tasks package's BenchmarkResultEncode).
func BenchmarkResultOf(b *testing.B) {
	_, a := benchAttempt()
	res := &wahaclient.LogoutResult{HTTPStatus: 201, Session: &wahaclient.Session{Name: "sales-bot-0042", Status: "STARTING"}}
	b.ReportAllocs()
	for b.Loop() {
		sinkResult = resultOf(a, res, nil, tasks.OutcomeLoggedOut)
	}
}

// TestSessionJSONMatchesMarshal pins sessionJSON's fast path to json.Marshal.
func TestSessionJSONMatchesMarshal(t *testing.T) {
	for _, s := range []*wahaclient.Session{
		{Name: "sales-bot", Status: "STARTING"},
		{Name: "default", Status: "STOPPED"},
		{Name: "a<b>&", Status: "x\"y"},
		{Name: "ünï", Status: ""},
		{Name: "a", Status: "WORKING", Me: &wahaclient.Me{ID: "1@c.us", PushName: "A"}},
	} {
		want, _ := json.Marshal(struct {
			Name   string         `json:"name"`
			Status string         `json:"status"`
			Me     *wahaclient.Me `json:"me"`
		}{s.Name, s.Status, s.Me})
		if got := sessionJSON(s); string(got) != string(want) {
			t.Errorf("%+v: got %s, want %s", s, got, want)
		}
	}
}
