package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/redistest"
	"github.com/wahaq/wahaq/internal/store"
)

// TestLookQueues reads what the queue view learns of a queue: the pending
// length and the earliest due time of the scheduled and retry sets.
func TestLookQueues(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	ctx := context.Background()
	cases := []struct {
		name                 string
		pending              int
		scheduled, retry     []float64
		wantPending, wantDue int64
	}{
		{name: "empty"},
		{name: "pending", pending: 2, wantPending: 2},
		{name: "scheduled", scheduled: []float64{200, 100}, wantDue: 100},
		{name: "retry earlier", scheduled: []float64{200}, retry: []float64{150}, wantDue: 150},
		{name: "fraction rounds up", retry: []float64{99.5}, wantDue: 100},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st := store.New(rdb, store.Options{Namespace: redistest.Namespace(t)})
			k := st.Keys("a")
			for range tc.pending {
				require.NoError(t, rdb.LPush(ctx, k.Pending(), "x").Err())
			}
			for i, s := range tc.scheduled {
				require.NoError(t, rdb.ZAdd(ctx, k.Scheduled(), lookZ(s, i)).Err())
			}
			for i, s := range tc.retry {
				require.NoError(t, rdb.ZAdd(ctx, k.Retry(), lookZ(s, i)).Err())
			}
			looks, ok, err := st.LookQueues(ctx, []string{"a", "b"})
			require.NoError(t, err)
			require.Equal(t, []bool{true, true}, ok)
			require.Equal(t, store.QueueLook{Pending: tc.wantPending, Due: tc.wantDue}, looks[0])
			require.Equal(t, store.QueueLook{}, looks[1], "another queue")
		})
	}
}

// TestAnnounceWork: an enqueue announces work on its queue's gate channel
// once its tasks are written.
func TestAnnounceWork(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	ctx := context.Background()
	st := store.New(rdb, store.Options{Namespace: redistest.Namespace(t)})
	k := st.Keys("a")
	ps, err := store.Subscribe(ctx, rdb, k.Gate())
	require.NoError(t, err)
	t.Cleanup(func() { _ = ps.Close() })
	_, err = st.Enqueue(ctx, []store.NewTask{{Instance: "a", Session: "s", MaxRetries: 1}})
	require.NoError(t, err)
	select {
	case m := <-ps.Channel():
		require.Equal(t, store.WorkMarker, m.Payload)
		n, err := rdb.LLen(ctx, k.Pending()).Result()
		require.NoError(t, err)
		require.EqualValues(t, 1, n, "announced after the write")
	case <-time.After(10 * time.Second):
		t.Fatal("no announcement")
	}
	_, _, ok := store.ParseGate(store.WorkMarker)
	require.False(t, ok, "not a gate state")
}

func lookZ(score float64, i int) redis.Z {
	return redis.Z{Score: score, Member: string(rune('a' + i))}
}
