package audit_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/audit"
	"github.com/wahaq/wahaq/internal/redistest"
	"github.com/wahaq/wahaq/internal/store"
)

func newLog(t *testing.T, now *time.Time, opts audit.Options) *audit.Log {
	t.Helper()
	st := store.New(redistest.Client(t), store.Options{Namespace: redistest.Namespace(t), Now: func() time.Time { return *now }})
	return audit.New(st, opts)
}

func TestListFilters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	l := newLog(t, &now, audit.Options{})
	start := now
	for _, e := range []audit.Entry{
		{Actor: "n8n", Via: audit.ViaHTTP, Action: "logout.enqueue", Target: audit.Target{Instance: "eu", Task: "t1"}},
		{Actor: "ops", Via: audit.ViaHTTP, Action: "batch.cancel", Target: audit.Target{Instance: "eu", Batch: "b1"}, Result: map[string]int64{"canceled": 3}},
		{Actor: "cli:alice", Via: audit.ViaCLI, Action: "dlq.purge", Target: audit.Target{Instance: "us"}},
		{Actor: "n8n", Via: audit.ViaHTTP, Action: "dlq.purge", Outcome: audit.OutcomeRefused, Status: 403},
	} {
		now = now.Add(time.Minute)
		_, err := l.Append(ctx, e)
		require.NoError(t, err)
	}
	actors := func(p *audit.Page) []string {
		var out []string
		for _, e := range p.Entries {
			out = append(out, e.Actor+" "+e.Action)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		q    audit.Query
		want []string
	}{
		{name: "all, newest first", q: audit.Query{}, want: []string{"n8n dlq.purge", "cli:alice dlq.purge", "ops batch.cancel", "n8n logout.enqueue"}},
		{name: "actor", q: audit.Query{Actor: "n8n"}, want: []string{"n8n dlq.purge", "n8n logout.enqueue"}},
		{name: "every cli user", q: audit.Query{Actor: "cli"}, want: []string{"cli:alice dlq.purge"}},
		{name: "action", q: audit.Query{Action: "dlq.purge"}, want: []string{"n8n dlq.purge", "cli:alice dlq.purge"}},
		{name: "target batch", q: audit.Query{Target: "b1"}, want: []string{"ops batch.cancel"}},
		{name: "target instance", q: audit.Query{Target: "eu"}, want: []string{"ops batch.cancel", "n8n logout.enqueue"}},
		{name: "since", q: audit.Query{Since: start.Add(3 * time.Minute)}, want: []string{"n8n dlq.purge", "cli:alice dlq.purge"}},
		{name: "until", q: audit.Query{Until: start.Add(2 * time.Minute)}, want: []string{"ops batch.cancel", "n8n logout.enqueue"}},
		{name: "nothing", q: audit.Query{Actor: "nobody"}, want: nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := l.List(ctx, tc.q)
			require.NoError(t, err)
			require.Equal(t, tc.want, actors(p))
			require.Empty(t, p.NextCursor)
			require.EqualValues(t, 4, p.Retention.Entries)
			require.Equal(t, start.Add(time.Minute), *p.Retention.Oldest)
			require.Equal(t, audit.DefaultMaxEntries, int(p.Retention.MaxEntries))
		})
	}

	// Paging: two by two, with the cursor.
	p, err := l.List(ctx, audit.Query{Limit: 2})
	require.NoError(t, err)
	require.Equal(t, []string{"n8n dlq.purge", "cli:alice dlq.purge"}, actors(p))
	require.NotEmpty(t, p.NextCursor)
	p, err = l.List(ctx, audit.Query{Limit: 2, Cursor: p.NextCursor})
	require.NoError(t, err)
	require.Equal(t, []string{"ops batch.cancel", "n8n logout.enqueue"}, actors(p))
	require.Empty(t, p.NextCursor, "the log's last entry ends the listing")
	require.Equal(t, map[string]int64{"canceled": 3}, p.Entries[0].Result)
	require.Equal(t, audit.OutcomeOK, p.Entries[0].Outcome, "Append fills a missing outcome")

	_, err = l.List(ctx, audit.Query{Cursor: "nonsense"})
	require.ErrorIs(t, err, audit.ErrBadQuery)
}

// TestBounds: the log keeps what its bounds allow and says so.
func TestBounds(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	l := newLog(t, &now, audit.Options{MaxAge: time.Hour, MaxEntries: 3})
	for i := 0; i < 5; i++ {
		now = now.Add(time.Minute)
		_, err := l.Append(ctx, audit.Entry{Actor: "a", Action: "x"})
		require.NoError(t, err)
	}
	r, err := l.Retention(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 3, r.Entries)
	require.Equal(t, "1h0m0s", r.MaxAge)
	now = now.Add(2 * time.Hour)
	_, err = l.Append(ctx, audit.Entry{Actor: "a", Action: "x"})
	require.NoError(t, err)
	r, err = l.Retention(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 1, r.Entries)
	require.Equal(t, now, *r.Oldest)
}

func TestSafeURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"": "",
		"https://user:pw@hooks.example/x?sig=secret#f": "https://hooks.example/x",
		"not a url": "(not a URL)",
	} {
		require.Equal(t, want, audit.SafeURL(in))
	}
	require.Equal(t, audit.OutcomeRefused, audit.Outcome(403))
	require.Equal(t, audit.OutcomeFailed, audit.Outcome(409))
	require.Equal(t, audit.OutcomeOK, audit.Outcome(202))
	require.Regexp(t, `^cli:.+`, audit.CLIActor())
}
