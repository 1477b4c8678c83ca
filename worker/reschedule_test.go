package worker_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/tasks"
	"github.com/wahaq/wahaq/wahaclient/wahafake"
	"github.com/wahaq/wahaq/wahaqtest"
)

// "In 7 days" then "now" for one session: the urgent request pulls the
// scheduled logout forward, and WAHA is called once, now.
func TestNowMeansNow(t *testing.T) {
	t.Parallel()
	env := wahaqtest.Start(t, wahaqtest.Options{})
	ctx := context.Background()
	env.Fake.AddSession("s", wahafake.StatusWorking)

	later, err := env.Producer.Enqueue(ctx, tasks.LogoutRequest{Session: "s", When: tasks.When{In: 7 * 24 * time.Hour}})
	require.NoError(t, err)
	require.Equal(t, tasks.StateScheduled, later.State)
	now, err := env.Producer.Enqueue(ctx, tasks.LogoutRequest{Session: "s"})
	require.NoError(t, err)
	require.Equal(t, later.ID, now.ID)
	require.True(t, now.Deduplicated)
	require.True(t, now.Rescheduled)
	require.Contains(t, []tasks.State{tasks.StatePending, tasks.StateActive}, now.State, "a worker may have it already")
	require.Nil(t, now.ScheduledFor)

	done := env.WaitTask(t, now.ID, wait)
	require.Equal(t, tasks.StateCompleted, done.State)
	require.Equal(t, 1, env.Fake.LogoutCalls("s"))

	// The horizon: a year and a day ahead is bad input, nothing written.
	_, err = env.Producer.Enqueue(ctx, tasks.LogoutRequest{Session: "s", When: tasks.When{In: tasks.DefaultMaxSchedule + time.Hour}})
	require.ErrorIs(t, err, tasks.ErrInvalidInput)
	_, err = env.Producer.Enqueue(ctx, tasks.LogoutRequest{Session: "s", When: tasks.When{At: time.Now().AddDate(9999-time.Now().Year(), 0, 0)}})
	require.ErrorIs(t, err, tasks.ErrInvalidInput)
}
