package asynqwire_test

import (
	"context"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/asynqwire"
	"github.com/wahaq/wahaq/internal/redistest"
)

// TestWireFormatMatchesAsynq writes a task the way wahaq does and reads it
// back through asynq's own Inspector and Server: if an asynq upgrade changes
// the message format or key layout, this fails.
func TestWireFormatMatchesAsynq(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	q := redistest.Namespace(t) + ":default"
	ctx := context.Background()
	msg := asynqwire.Encode(asynqwire.Message{Type: "wahaq:test", Payload: []byte(`{"a":1}`), ID: "id-1", Queue: q, Retry: 7, TimeoutSeconds: 90})
	require.NoError(t, rdb.SAdd(ctx, asynqwire.AllQueues, q).Err())
	require.NoError(t, rdb.HSet(ctx, asynqwire.TaskKey(q, "id-1"), "msg", msg, "state", "pending", "pending_since", time.Now().UnixNano()).Err())
	require.NoError(t, rdb.LPush(ctx, asynqwire.PendingKey(q), "id-1").Err())

	insp := asynq.NewInspectorFromRedisClient(rdb)
	info, err := insp.GetTaskInfo(q, "id-1")
	require.NoError(t, err)
	require.Equal(t, "wahaq:test", info.Type)
	require.Equal(t, `{"a":1}`, string(info.Payload))
	require.Equal(t, 7, info.MaxRetry)
	require.Equal(t, 90*time.Second, info.Timeout)
	require.Equal(t, asynq.TaskStatePending, info.State)

	got := make(chan string, 1)
	srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{Queues: map[string]int{q: 1}, TaskCheckInterval: 10 * time.Millisecond,
		LogLevel: asynq.FatalLevel})
	mux := asynq.NewServeMux()
	mux.HandleFunc("wahaq:test", func(ctx context.Context, task *asynq.Task) error {
		id, _ := asynq.GetTaskID(ctx)
		max, _ := asynq.GetMaxRetry(ctx)
		require.Equal(t, 7, max)
		got <- id + " " + string(task.Payload())
		return nil
	})
	require.NoError(t, srv.Start(mux))
	defer srv.Shutdown()
	select {
	case v := <-got:
		require.Equal(t, `id-1 {"a":1}`, v)
	case <-time.After(10 * time.Second):
		t.Fatal("asynq did not run the task written by asynqwire")
	}
}

func TestEncodeOmitsZeroFields(t *testing.T) {
	t.Parallel()
	require.Equal(t, []byte{0x0a, 0x01, 'x'}, asynqwire.Encode(asynqwire.Message{Type: "x"}))
	require.Empty(t, asynqwire.Encode(asynqwire.Message{}))
}
