package wahaqtest_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/tasks"
	"github.com/wahaq/wahaq/wahaclient/wahafake"
	"github.com/wahaq/wahaq/wahaqtest"
)

// A test of code that enqueues logouts: a whole wahaq (Redis namespace, fake
// WAHA, worker) inside the test, torn down when it ends.
func ExampleStart() {
	_ = func(t *testing.T) { // func TestTeardown(t *testing.T)
		t.Parallel()
		env := wahaqtest.Start(t, wahaqtest.Options{Fake: wahafake.Options{Sessions: 1}})
		task, err := env.Producer.Enqueue(context.Background(), tasks.LogoutRequest{Session: "session-0001"})
		require.NoError(t, err)
		done := env.WaitTask(t, task.ID, 10*time.Second)
		require.Equal(t, tasks.OutcomeLoggedOut, *done.Outcome)
	}
}

// Assert that code under test enqueued a logout, without running it.
func ExampleEnv_RequireEnqueued() {
	_ = func(t *testing.T) { // func TestSignupCleanup(t *testing.T)
		env := wahaqtest.Start(t, wahaqtest.Options{NoStart: true})
		_, err := env.Producer.Enqueue(context.Background(), tasks.LogoutRequest{Session: "sales-bot"})
		require.NoError(t, err) // the code under test would do this
		task := env.RequireEnqueued(t, "sales-bot")
		require.Equal(t, tasks.StatePending, task.State)
	}
}

// Run one attempt synchronously through the real handler, e.g. to see how
// wahaq answers a fault of the WAHA server.
func ExampleEnv_Work() {
	_ = func(t *testing.T) { // func TestKeyRevoked(t *testing.T)
		env := wahaqtest.Start(t, wahaqtest.Options{Fake: wahafake.Options{Sessions: 1}, NoStart: true})
		env.Fake.Script("session-0001", wahafake.Fault{Status: 401, Times: 1})
		task := env.Work(t, tasks.LogoutRequest{Session: "session-0001"})
		require.Equal(t, tasks.StateDead, task.State)
		require.Equal(t, tasks.OutcomeAuthFailed, *task.Outcome)
	}
}
