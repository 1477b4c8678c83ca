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
		// Never a secret or anything else beyond the four fields.
		var m map[string]any
		require.NoError(t, json.Unmarshal(b, &m))
		for k := range m {
			require.Contains(t, []string{"instance", "session", "batch_id", "max_retries"}, k)
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
