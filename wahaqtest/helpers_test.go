package wahaqtest_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/tasks"
	"github.com/wahaq/wahaq/wahaclient/wahafake"
	"github.com/wahaq/wahaq/wahaqtest"
)

func TestWorkRunsOneAttempt(t *testing.T) {
	t.Parallel()
	env := wahaqtest.Start(t, wahaqtest.Options{Fake: wahafake.Options{Sessions: 2}, NoStart: true})
	done := env.Work(t, tasks.LogoutRequest{Session: "session-0001"})
	require.Equal(t, tasks.StateCompleted, done.State)
	require.Equal(t, tasks.OutcomeLoggedOut, *done.Outcome)
	require.Equal(t, 1, done.Attempts)
	require.Equal(t, 1, env.Fake.TotalLogoutCalls())

	env.Fake.Script("session-0002", wahafake.Fault{Status: 503, Times: 1})
	retrying := env.Work(t, tasks.LogoutRequest{Session: "session-0002"})
	require.Equal(t, tasks.StateRetrying, retrying.State, "one attempt, no retry")
	require.NotNil(t, retrying.NextAttemptAt)

	env.Fake.AddSessions("revoked", 1, wahafake.StatusWorking)
	env.Fake.Script("revoked-0001", wahafake.Fault{Status: 401, Times: 1})
	dead := env.Work(t, tasks.LogoutRequest{Session: "revoked-0001"})
	require.Equal(t, tasks.StateDead, dead.State, "as ExampleEnv_Work says")
	require.Equal(t, tasks.OutcomeAuthFailed, *dead.Outcome)
}

func TestRequireEnqueued(t *testing.T) {
	t.Parallel()
	env := wahaqtest.Start(t, wahaqtest.Options{NoStart: true})
	task, err := env.Producer.Enqueue(context.Background(), tasks.LogoutRequest{Session: "sales-bot"})
	require.NoError(t, err)
	got := env.RequireEnqueued(t, "sales-bot")
	require.Equal(t, task.ID, got.ID)
	require.Equal(t, tasks.StatePending, got.State)

	require.Contains(t, requireEnqueuedFails(t, env, "nobody"), "has no logout enqueued")
	_, err = env.Producer.Cancel(context.Background(), task.ID)
	require.NoError(t, err)
	require.Contains(t, requireEnqueuedFails(t, env, "sales-bot"), "has no logout enqueued", "a canceled task frees its session")
}

// requireEnqueuedFails runs RequireEnqueued on a recorder and returns its
// failure message; it fails the test if RequireEnqueued returned instead.
func requireEnqueuedFails(t *testing.T, env *wahaqtest.Env, session string) string {
	rec := &fatalRecorder{TB: t}
	done := make(chan *tasks.Task, 1)
	go func() {
		defer close(done)
		done <- env.RequireEnqueued(rec, session)
	}()
	_, returned := <-done
	require.False(t, returned, "RequireEnqueued must fail the test, not return")
	return rec.msg
}
