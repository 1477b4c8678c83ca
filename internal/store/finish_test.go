package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/base"
	"github.com/wahaq/wahaq/internal/redistest"
	"github.com/wahaq/wahaq/internal/store"
	"github.com/wahaq/wahaq/tasks"
)

// TestFinishTwiceCountsOnce: a worker whose Finish reply was lost in a Redis
// crash sends it again once Redis is back (the fault suite's Redis restart
// found this). The second application must not count the outcome twice.
func TestFinishTwiceCountsOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := redistest.Client(t)
	ns := redistest.Namespace(t)
	p, err := tasks.NewProducer(tasks.Config{Redis: rdb, Namespace: ns})
	require.NoError(t, err)
	info, err := p.EnqueueBatch(ctx, tasks.BatchRequest{Sessions: []string{"a", "b"}})
	require.NoError(t, err)
	insp, err := tasks.NewInspector(tasks.Config{Redis: rdb, Namespace: ns})
	require.NoError(t, err)

	st := store.New(rdb, store.Options{Namespace: ns})
	ids, err := rdb.LRange(ctx, st.Keys("default").Pending(), 0, -1).Result()
	require.NoError(t, err)
	require.Len(t, ids, 2)
	for i, id := range ids {
		task, err := insp.Task(ctx, id)
		require.NoError(t, err)
		pl := base.Payload{Instance: "default", Session: task.Session, BatchID: info.BatchID, MaxRetries: 10}
		ok, err := st.Start(ctx, id, pl, 1, 4, time.Minute)
		require.NoError(t, err)
		require.True(t, ok)
		fin := store.Finish{State: store.StateCompleted, Outcome: string(tasks.OutcomeLoggedOut), ResultTTL: time.Hour}
		if i == 1 {
			fin = store.Finish{State: store.StateDead, Outcome: string(tasks.OutcomeAuthFailed), ResultTTL: time.Hour}
		}
		require.NoError(t, st.Finish(ctx, id, pl, fin))
		require.NoError(t, st.Finish(ctx, id, pl, fin), "the same Finish again")
	}
	b, err := insp.Batch(ctx, info.BatchID)
	require.NoError(t, err)
	require.Equal(t, int64(1), b.Counts[tasks.StateCompleted])
	require.Equal(t, int64(1), b.Counts[tasks.StateDead])
	require.Equal(t, int64(1), b.Outcomes[tasks.OutcomeLoggedOut])
	require.Equal(t, int64(1), b.Outcomes[tasks.OutcomeAuthFailed])
	require.True(t, b.Done)
	n, err := st.CountDeadLetters(ctx, "default")
	require.NoError(t, err)
	require.Equal(t, int64(1), n)
}
