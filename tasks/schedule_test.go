package tasks_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/asynqcompat"
	"github.com/wahaq/wahaq/internal/redistest"
	"github.com/wahaq/wahaq/tasks"
)

// TestScheduledNeverDueEarly: asynq keeps scheduled times in whole Unix
// seconds and runs a task as soon as the current second reaches its score.
// The score must therefore be the scheduled time rounded up, never down, or
// a logout "at 12:00:00.750" would run at 12:00:00.000.
func TestScheduledNeverDueEarly(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	ns := redistest.Namespace(t)
	ctx := context.Background()
	for _, c := range []struct {
		name string
		now  time.Time
		in   time.Duration
		want time.Time // the score, as a time
	}{
		{"fraction rounds up", time.Date(2030, 1, 1, 12, 0, 0, 250e6, time.UTC), 500 * time.Millisecond, time.Date(2030, 1, 1, 12, 0, 1, 0, time.UTC)},
		{"just past a second", time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC), time.Nanosecond, time.Date(2030, 1, 1, 12, 0, 1, 0, time.UTC)},
		{"whole second kept", time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC), 2 * time.Second, time.Date(2030, 1, 1, 12, 0, 2, 0, time.UTC)},
	} {
		t.Run(c.name, func(t *testing.T) {
			now := c.now
			cfg := tasks.Config{Redis: rdb, Namespace: ns, Now: func() time.Time { return now }}
			p, err := tasks.NewProducer(cfg)
			require.NoError(t, err)
			task, err := p.Enqueue(ctx, tasks.LogoutRequest{Session: "s-" + uuid.NewString()[:8], When: tasks.When{In: c.in}})
			require.NoError(t, err)
			require.Equal(t, tasks.StateScheduled, task.State)
			q := p.Queue("default")
			score, err := rdb.ZScore(ctx, asynqcompat.ScheduledKey(q), task.ID).Result()
			require.NoError(t, err)
			due := time.Unix(int64(score), 0).UTC()
			require.Equal(t, c.want, due)
			require.False(t, due.Before(*task.ScheduledFor), "due %s before scheduled_for %s", due, task.ScheduledFor)

			// The same for a discovery batch scheduled at that time.
			info, err := p.EnqueueDiscovery(ctx, tasks.DiscoveryRequest{When: tasks.When{In: c.in}})
			require.NoError(t, err)
			score, err = rdb.ZScore(ctx, asynqcompat.ScheduledKey(q), info.BatchID).Result()
			require.NoError(t, err)
			require.Equal(t, c.want, time.Unix(int64(score), 0).UTC())
		})
	}
}
