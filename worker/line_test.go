package worker_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/tasks"
	"github.com/wahaq/wahaq/wahaclient/wahafake"
	"github.com/wahaq/wahaq/wahaqtest"
	"github.com/wahaq/wahaq/worker"
)

// TestCurrentLine runs logouts against the fake playing WAHA's current
// line (2025.10.3+, scoped keys of 2026.4.3+): the answers that line adds
// and what the worker makes of each.
func TestCurrentLine(t *testing.T) {
	t.Parallel()
	str := func(s string) *string { return &s }
	cases := []struct {
		name      string
		fake      wahafake.Options
		fault     *wahafake.Fault
		workerKey *string // nil: the key the fake requires
		state     tasks.State
		outcome   tasks.Outcome
		attempts  int
		calls     int
		lastError string
		status    int
	}{
		{name: "the required key", fake: wahafake.Options{CurrentLine: true},
			state: tasks.StateCompleted, outcome: tasks.OutcomeLoggedOut, attempts: 1, calls: 1, status: http.StatusCreated},
		{name: "no key: 401, one call, dead", fake: wahafake.Options{CurrentLine: true}, workerKey: str(""),
			state: tasks.StateDead, outcome: tasks.OutcomeAuthFailed, attempts: 1, calls: 1, lastError: "401 Unauthorized", status: http.StatusUnauthorized},
		{name: "an unset key (123) is no key", fake: wahafake.Options{CurrentLine: true, APIKey: "123"}, workerKey: str("123"),
			state: tasks.StateDead, outcome: tasks.OutcomeAuthFailed, attempts: 1, calls: 1, lastError: "401 Unauthorized", status: http.StatusUnauthorized},
		{name: "a scoped key without control: 403, one call, dead",
			fake:      wahafake.Options{CurrentLine: true, Keys: []wahafake.Key{{Key: "reader", Sessions: []string{"bot"}, Actions: []string{"read"}}}},
			workerKey: str("reader"),
			state:     tasks.StateDead, outcome: tasks.OutcomeAuthFailed, attempts: 1, calls: 1,
			lastError: `403 Forbidden: the key is valid but scoped: it lacks the "control" action for this session`, status: http.StatusForbidden},
		{name: "a scoped key for another session: 403",
			fake:      wahafake.Options{CurrentLine: true, Keys: []wahafake.Key{{Key: "other", Sessions: []string{"someone-else"}, Actions: []string{"control"}}}},
			workerKey: str("other"),
			state:     tasks.StateDead, outcome: tasks.OutcomeAuthFailed, attempts: 1, calls: 1,
			lastError: "or it is bound to other sessions", status: http.StatusForbidden},
		{name: "a scoped key with control", workerKey: str("ops"),
			fake:  wahafake.Options{CurrentLine: true, Keys: []wahafake.Key{{Key: "ops", Sessions: []string{"bot"}, Actions: []string{"control"}}}},
			state: tasks.StateCompleted, outcome: tasks.OutcomeLoggedOut, attempts: 1, calls: 1, status: http.StatusCreated},
		{name: "501: rejected, no retry", fake: wahafake.Options{CurrentLine: true}, fault: &wahafake.Fault{Status: 501},
			state: tasks.StateDead, outcome: tasks.OutcomeRejected, attempts: 1, calls: 1,
			lastError: "501 Not Implemented: The method is not implemented by 'NOWEB' engine", status: http.StatusNotImplemented},
		{name: "the lock timeout: retried", fake: wahafake.Options{CurrentLine: true}, fault: &wahafake.Fault{LockTimeout: true, Times: 2},
			state: tasks.StateCompleted, outcome: tasks.OutcomeLoggedOut, attempts: 3, calls: 3, status: http.StatusCreated},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			env := wahaqtest.Start(t, wahaqtest.Options{Fake: c.fake, Worker: func(cfg *worker.Config) {
				if c.workerKey != nil {
					cfg.Instances[0].APIKey = *c.workerKey
				}
			}})
			env.Fake.AddSession("bot", wahafake.StatusWorking)
			if c.fault != nil {
				env.Fake.Script("bot", *c.fault)
			}
			enq, err := env.Producer.Enqueue(context.Background(), tasks.LogoutRequest{Session: "bot"})
			require.NoError(t, err)
			task := env.WaitTask(t, enq.ID, wait)
			require.Equal(t, c.state, task.State, "last_error: %v", task.LastError)
			require.Equal(t, c.outcome, outcome(t, task))
			require.Equal(t, c.attempts, task.Attempts)
			require.Equal(t, c.calls, env.Fake.LogoutCalls("bot"))
			require.Equal(t, c.status, task.Result.HTTPStatus)
			if c.lastError != "" {
				require.NotNil(t, task.LastError)
				require.Contains(t, *task.LastError, c.lastError)
			}
			if c.fault != nil && c.fault.LockTimeout {
				require.Len(t, task.AttemptsLog, 3)
				for _, a := range task.AttemptsLog[:2] {
					require.Equal(t, tasks.AttemptRetrying, a.Outcome)
					require.Equal(t, http.StatusInternalServerError, a.HTTPStatus)
					require.Contains(t, *a.Error, "async-lock timed out in queue bot")
				}
			}
		})
	}
}
