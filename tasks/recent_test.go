package tasks_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/redistest"
	"github.com/wahaq/wahaq/tasks"
)

// TestInspectorRecentBatches: every way of making a batch (a session list,
// a discovery, on any instance) shows in RecentBatches, newest first; a
// single logout makes none; bad limits are refused.
func TestInspectorRecentBatches(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	ctx := context.Background()
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	cfg := tasks.Config{Redis: rdb, Namespace: redistest.Namespace(t), Instances: []string{"default", "eu"},
		Now: func() time.Time { return now }}
	p, err := tasks.NewProducer(cfg)
	require.NoError(t, err)
	insp, err := tasks.NewInspector(cfg)
	require.NoError(t, err)

	first, err := p.EnqueueBatch(ctx, tasks.BatchRequest{Sessions: []string{"a", "b"}})
	require.NoError(t, err)
	now = now.Add(time.Second)
	_, err = p.Enqueue(ctx, tasks.LogoutRequest{Session: "single"})
	require.NoError(t, err)
	now = now.Add(time.Second)
	disc, err := p.EnqueueDiscovery(ctx, tasks.DiscoveryRequest{Instance: "eu"})
	require.NoError(t, err)
	now = now.Add(time.Second)
	last, err := p.EnqueueBatch(ctx, tasks.BatchRequest{Instance: "eu", Sessions: []string{"c"}})
	require.NoError(t, err)

	bs, err := insp.RecentBatches(ctx, 0)
	require.NoError(t, err)
	require.Len(t, bs, 3)
	require.Equal(t, []string{last.BatchID, disc.BatchID, first.BatchID}, []string{bs[0].BatchID, bs[1].BatchID, bs[2].BatchID})
	require.Equal(t, "eu", bs[0].Instance)
	require.EqualValues(t, 1, bs[0].Total)
	require.True(t, bs[1].Discovering)
	require.EqualValues(t, 2, bs[2].Total)
	require.Equal(t, now.Add(-3*time.Second), bs[2].CreatedAt)
	one, err := insp.Batch(ctx, first.BatchID)
	require.NoError(t, err)
	require.Equal(t, one, bs[2], "the same status Batch reads")

	bs, err = insp.RecentBatches(ctx, 1)
	require.NoError(t, err)
	require.Len(t, bs, 1)
	require.Equal(t, last.BatchID, bs[0].BatchID)

	for _, bad := range []int{-1, tasks.MaxRecentBatches + 1} {
		_, err = insp.RecentBatches(ctx, bad)
		require.ErrorIs(t, err, tasks.ErrInvalidInput, "limit %d", bad)
	}
}
