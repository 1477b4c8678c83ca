package worker_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/store"
	"github.com/wahaq/wahaq/tasks"
	"github.com/wahaq/wahaq/wahaclient/wahafake"
	"github.com/wahaq/wahaq/wahaqtest"
	"github.com/wahaq/wahaq/worker"
)

// TestLogoutsAwaitEvents: on an instance whose events wahaq receives, a
// completed logout of a running session awaits WAHA's session.status
// events (it is the session's LastLogout and waits for a confirmation);
// a STOPPED session's, a not_found one's and any on an instance without
// events do not.
func TestLogoutsAwaitEvents(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		events  bool
		session string
		status  string // "" = no such session
		awaits  bool
	}{
		{name: "running session", events: true, session: "bot", status: wahafake.StatusWorking, awaits: true},
		{name: "STOPPED session: WAHA emits nothing", events: true, session: "bot", status: wahafake.StatusStopped},
		{name: "not found", events: true, session: "ghost"},
		{name: "instance without events", session: "bot", status: wahafake.StatusWorking},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := wahaqtest.Start(t, wahaqtest.Options{NoStart: true, Worker: func(c *worker.Config) { c.Instances[0].AwaitEvents = tc.events }})
			if tc.status != "" {
				env.Fake.AddSession(tc.session, tc.status)
			}
			task := env.Work(t, tasks.LogoutRequest{Session: tc.session})
			require.Equal(t, tasks.StateCompleted, task.State)
			k := store.New(env.Redis, store.Options{Namespace: env.Namespace}).Keys(env.Instance)
			last, _ := env.Redis.Get(context.Background(), k.LastLogout(tc.session)).Result()
			awaiting, err := env.Redis.ZRange(context.Background(), k.Awaiting(), 0, -1).Result()
			require.NoError(t, err)
			if tc.awaits {
				require.Equal(t, task.ID, last)
				require.Equal(t, []string{task.ID}, awaiting)
			} else {
				require.Empty(t, last)
				require.Empty(t, awaiting)
			}
		})
	}
}
