package store_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/asynqcompat"
)

// TestLiveSessions: a session is live while its claim names a task that
// asynq still holds, neither archived nor completed (the enqueue script's
// dedup rule); the read writes nothing.
func TestLiveSessions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		prepare func(f *fixture) string // returns the session to ask about
		live    bool
	}{
		{name: "no logout", prepare: func(f *fixture) string { return "free" }},
		{name: "pending", live: true, prepare: func(f *fixture) string { f.enqueue("s", ""); return "s" }},
		{name: "active", live: true, prepare: func(f *fixture) string {
			p, id := f.enqueue("s", "")
			f.start(id, p)
			return "s"
		}},
		{name: "canceled: its claim is gone", prepare: func(f *fixture) string {
			_, id := f.enqueue("s", "")
			_, err := f.st.Cancel(f.ctx, []string{"default"}, id, time.Hour)
			require.NoError(f.t, err)
			return "s"
		}},
		{name: "a stale claim: the asynq task is gone", prepare: func(f *fixture) string {
			_, id := f.enqueue("s", "")
			require.NoError(f.t, f.rdb.Del(f.ctx, f.k.AsynqTask(id)).Err())
			return "s"
		}},
		{name: "a stale claim: asynq completed the task", prepare: func(f *fixture) string {
			_, id := f.enqueue("s", "")
			f.asynqState(id, asynqcompat.StateCompleted)
			return "s"
		}},
		{name: "a stale claim: asynq archived the task", prepare: func(f *fixture) string {
			_, id := f.enqueue("s", "")
			f.asynqState(id, asynqcompat.StateArchived)
			return "s"
		}},
		{name: "retrying", live: true, prepare: func(f *fixture) string {
			_, id := f.enqueue("s", "")
			f.asynqState(id, asynqcompat.StateRetry)
			return "s"
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			sess := tc.prepare(f)
			before, err := f.rdb.Keys(f.ctx, "*{"+f.k.Queue+"}*").Result()
			require.NoError(t, err)
			got, err := f.st.LiveSessions(f.ctx, "default", []string{"other", sess})
			require.NoError(t, err)
			require.Equal(t, []bool{false, tc.live}, got)
			after, err := f.rdb.Keys(f.ctx, "*{"+f.k.Queue+"}*").Result()
			require.NoError(t, err)
			require.ElementsMatch(t, before, after, "nothing written")
		})
	}
}
