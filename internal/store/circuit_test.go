package store_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/store"
)

// TestCircuitReports: each worker's last report counts until its score;
// closing removes it; a stale one (a dead worker's) reads as closed and is
// trimmed.
func TestCircuitReports(t *testing.T) {
	t.Parallel()
	type report struct {
		worker string
		st     store.CircuitState
		for_   time.Duration // how long the report lasts
		after  time.Duration // clock advance after this report
	}
	tests := []struct {
		name    string
		reports []report
		want    store.CircuitReport
		members int // members left in the set after the read
	}{
		{name: "none", want: store.CircuitReport{}},
		{name: "one open", reports: []report{{worker: "a", st: store.CircuitOpen, for_: 5 * time.Second}},
			want: store.CircuitReport{Open: 1}, members: 1},
		{name: "open then half-open replaces", reports: []report{
			{worker: "a", st: store.CircuitOpen, for_: 5 * time.Second, after: 5 * time.Second},
			{worker: "a", st: store.CircuitHalfOpen, for_: 30 * time.Second}},
			want: store.CircuitReport{HalfOpen: 1}, members: 1},
		{name: "closed removes", reports: []report{
			{worker: "a", st: store.CircuitOpen, for_: 5 * time.Second},
			{worker: "a", st: store.CircuitClosed}},
			want: store.CircuitReport{}},
		{name: "two workers", reports: []report{
			{worker: "a", st: store.CircuitOpen, for_: 5 * time.Second},
			{worker: "b", st: store.CircuitOpen, for_: 5 * time.Second},
			{worker: "c", st: store.CircuitHalfOpen, for_: 5 * time.Second}},
			want: store.CircuitReport{Open: 2, HalfOpen: 1}, members: 3},
		{name: "stale is ignored and trimmed", reports: []report{
			{worker: "dead", st: store.CircuitOpen, for_: 5 * time.Second, after: 6 * time.Second},
			{worker: "b", st: store.CircuitHalfOpen, for_: 5 * time.Second, after: 6 * time.Second}},
			want: store.CircuitReport{}},
		{name: "a write trims the stale", reports: []report{
			{worker: "dead", st: store.CircuitOpen, for_: time.Second, after: 2 * time.Second},
			{worker: "b", st: store.CircuitOpen, for_: 5 * time.Second}},
			want: store.CircuitReport{Open: 1}, members: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			for _, r := range tc.reports {
				require.NoError(t, f.st.ReportCircuit(f.ctx, "default", r.worker, r.st, f.now.Add(r.for_)))
				f.now = f.now.Add(r.after)
			}
			got, err := f.st.Circuits(f.ctx, []string{"default", "other"})
			require.NoError(t, err)
			require.Equal(t, map[string]store.CircuitReport{"default": tc.want, "other": {}}, got)
			require.Len(t, f.zmembers(f.k.Circuit()), tc.members)
			if tc.members > 0 {
				ttl, err := f.rdb.PTTL(f.ctx, f.k.Circuit()).Result()
				require.NoError(t, err)
				require.Positive(t, ttl, "the set expires")
			}
		})
	}
}
