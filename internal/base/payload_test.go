package base_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/base"
)

func TestPayloadRoundTrip(t *testing.T) {
	t.Parallel()
	for _, p := range []base.Payload{
		{Instance: "default", Session: "sales-bot", MaxRetries: 10},
		{Instance: "eu-1", Session: "a", BatchID: base.NewID(), MaxRetries: 0},
		{Instance: strings.Repeat("i", base.MaxInstanceNameLen), Session: strings.Repeat("S", base.MaxSessionNameLen), MaxRetries: 1_000_000},
		{Instance: "A_b-9", Session: "-_-", BatchID: "batch_1", MaxRetries: 3},
		{Instance: "x", Session: "y", TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", MaxRetries: 3},
		{Instance: "x", Session: "y", BatchID: "b", TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", MaxRetries: 3},
	} {
		b := p.Encode()
		require.True(t, json.Valid(b), "%s", b)
		// Encode is hand-rolled: it must agree with encoding/json.
		var viaJSON base.Payload
		require.NoError(t, json.Unmarshal(b, &viaJSON))
		require.Equal(t, p, viaJSON)
		got, err := base.DecodePayload(b)
		require.NoError(t, err, "%s", b)
		require.Equal(t, p, got)
		if p.BatchID == "" {
			require.NotContains(t, string(b), "batch_id")
		}
		if p.TraceParent == "" {
			require.NotContains(t, string(b), "traceparent")
		}
		// Never a secret or anything else beyond the five fields.
		var m map[string]any
		require.NoError(t, json.Unmarshal(b, &m))
		for k := range m {
			require.Contains(t, []string{"instance", "session", "batch_id", "traceparent", "max_retries"}, k)
		}
	}
}

func TestDecodePayloadInvalid(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ name, in, want string }{
		{"not JSON", `{`, "not valid JSON"},
		{"empty", ``, "not valid JSON"},
		{"array", `[]`, "not valid JSON"},
		{"wrong type", `{"instance":"default","session":"s","max_retries":"3"}`, "not valid JSON"},
		{"no instance", `{"session":"s"}`, "instance name is empty"},
		{"bad instance", `{"instance":"a b","session":"s"}`, "instance name"},
		{"no session", `{"instance":"default"}`, "session name is empty"},
		{"session with quote", `{"instance":"default","session":"a\"b"}`, "session name"},
		{"session too long", `{"instance":"default","session":"` + strings.Repeat("a", base.MaxSessionNameLen+1) + `"}`, "session name"},
		{"session with slash", `{"instance":"default","session":"../x"}`, "session name"},
		{"bad batch id", `{"instance":"default","session":"s","batch_id":"../../etc"}`, "batch id"},
		{"negative retries", `{"instance":"default","session":"s","max_retries":-1}`, "negative"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, err := base.DecodePayload([]byte(c.in))
			require.ErrorIs(t, err, base.ErrInvalidInput)
			require.ErrorContains(t, err, c.want)
			require.Equal(t, base.Payload{}, p)
		})
	}
}

func TestTraceParent(t *testing.T) {
	t.Parallel()
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	for _, c := range []struct {
		in    string
		valid bool
		id    string
	}{
		{tp, true, "4bf92f3577b34da6a3ce929d0e0e4736"},
		{"", true, ""},
		{strings.ToUpper(tp), false, ""},
		{"01" + tp[2:], false, ""},
		{tp[:54], false, ""},
		{tp + "-x", false, ""},
		{"00-" + strings.Repeat("0", 32) + tp[35:], false, ""},
		{tp[:36] + strings.Repeat("0", 16) + tp[52:], false, ""},
		{strings.Replace(tp, "-", "_", 1), false, ""},
	} {
		require.Equal(t, c.valid, base.ValidTraceParent(c.in), c.in)
		require.Equal(t, c.id, base.TraceID(c.in), c.in)
	}
	// A broken traceparent does not fail the task: it runs outside a trace.
	p, err := base.DecodePayload([]byte(`{"instance":"x","session":"y","traceparent":"junk","max_retries":1}`))
	require.NoError(t, err)
	require.Equal(t, base.Payload{Instance: "x", Session: "y", MaxRetries: 1}, p)
}
