package asynqcompat_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/asynqcompat"
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
	msg := asynqcompat.Encode(asynqcompat.Message{Type: "wahaq:test", Payload: []byte(`{"a":1}`), ID: "id-1", Queue: q, Retry: 7, TimeoutSeconds: 90})
	require.NoError(t, rdb.SAdd(ctx, asynqcompat.AllQueues, q).Err())
	require.NoError(t, rdb.HSet(ctx, asynqcompat.TaskKey(q, "id-1"), "msg", msg, "state", "pending", "pending_since", time.Now().UnixNano()).Err())
	require.NoError(t, rdb.LPush(ctx, asynqcompat.PendingKey(q), "id-1").Err())

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
		t.Fatal("asynq did not run the task written by asynqcompat")
	}
}

func TestEncodeOmitsZeroFields(t *testing.T) {
	t.Parallel()
	require.Equal(t, []byte{0x0a, 0x01, 'x'}, asynqcompat.Encode(asynqcompat.Message{Type: "x"}))
	require.Empty(t, asynqcompat.Encode(asynqcompat.Message{}))
}

// recorder is a go-redis hook that keeps what QueueScript makes of
// every command sent.
type recorder struct {
	mu     sync.Mutex
	paused map[asynqcompat.Op][]string
	done   []string
	others int
	// digests are the script digests of every EVALSHA and EVAL, by what
	// QueueScript made of it
	digests map[asynqcompat.Op]map[string]bool
}

func (r *recorder) DialHook(next redis.DialHook) redis.DialHook { return next }
func (r *recorder) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
func (r *recorder) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		r.mu.Lock()
		args := cmd.Args()
		c := asynqcompat.QueueScript(args)
		if name, _ := args[0].(string); name == "evalsha" || name == "eval" {
			d, _ := args[1].(string)
			if name == "eval" {
				d = asynqcompat.Digest(d)
			}
			if r.digests[c.Op] == nil {
				r.digests[c.Op] = map[string]bool{}
			}
			r.digests[c.Op][d] = true
		}
		if c.Op != asynqcompat.OpNone {
			r.paused[c.Op] = append(r.paused[c.Op], c.Paused)
			if c.Op == asynqcompat.OpDone {
				r.done = append(r.done, c.TaskID)
			}
		} else {
			r.others++
		}
		r.mu.Unlock()
		return next(ctx, cmd)
	}
}

// TestQueueScriptsAreRecognized runs a real asynq server on a queue with one
// task and checks that its dequeue, forward and done calls, and nothing
// else it sends, are recognized, with the queue's paused key, the done
// task's id, and the digests of the sources this package keeps
// (scripts.go), which the Fence knows them by; asynq's Client.Enqueue runs
// the EnqueueScript and ScheduleScript kept there: an asynq upgrade that
// changes any of them fails here.
func TestQueueScriptsAreRecognized(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	q := redistest.Namespace(t) + ":default"
	rec := &recorder{paused: map[asynqcompat.Op][]string{}, digests: map[asynqcompat.Op]map[string]bool{}}
	rdb.AddHook(rec)
	srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{Queues: map[string]int{q: 1}, TaskCheckInterval: 5 * time.Millisecond,
		DelayedTaskCheckInterval: 5 * time.Millisecond, LogLevel: asynq.FatalLevel})
	info, err := asynq.NewClientFromRedisClient(rdb).Enqueue(asynq.NewTask("t", nil), asynq.Queue(q))
	require.NoError(t, err)
	// a task for later: asynq's schedule script (it stays scheduled)
	_, err = asynq.NewClientFromRedisClient(rdb).Enqueue(asynq.NewTask("t", nil), asynq.Queue(q), asynq.ProcessIn(time.Hour))
	require.NoError(t, err)
	require.NoError(t, srv.Start(asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return nil })))
	require.Eventually(t, func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return len(rec.paused[asynqcompat.OpDequeue]) >= 5 && len(rec.paused[asynqcompat.OpForward]) >= 4 && len(rec.done) == 1 && rec.others > 0
	}, 10*time.Second, 5*time.Millisecond)
	srv.Shutdown()
	// the counters asynq's done moved are the ones asynqcompat names
	require.Equal(t, "1", rdb.Get(context.Background(), asynqcompat.ProcessedTotalKey(q)).Val())
	require.Equal(t, "1", rdb.Get(context.Background(), asynqcompat.ProcessedKey(q, time.Now())).Val())
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, keys := range rec.paused {
		for _, k := range keys {
			require.Equal(t, asynqcompat.PausedKey(q), k)
		}
	}
	require.Equal(t, []string{info.ID}, rec.done)
	for op, src := range map[asynqcompat.Op]string{
		asynqcompat.OpDequeue: asynqcompat.DequeueScript,
		asynqcompat.OpForward: asynqcompat.ForwardScript,
		asynqcompat.OpDone:    asynqcompat.DoneScript,
	} {
		require.Equal(t, map[string]bool{asynqcompat.Digest(src): true}, rec.digests[op], "asynq's %s script", op)
	}
	require.True(t, rec.digests[asynqcompat.OpNone][asynqcompat.Digest(asynqcompat.EnqueueScript)], "asynq's enqueue script")
	require.True(t, rec.digests[asynqcompat.OpNone][asynqcompat.Digest(asynqcompat.ScheduleScript)], "asynq's schedule script")
	// commands that are not a dequeue are not taken for one
	for _, args := range [][]any{
		{"evalsha", "x", 4, asynqcompat.PendingKey(q), "other", "a", "l", 1, "p"},
		{"evalsha", "x", 3, asynqcompat.PendingKey(q), asynqcompat.PausedKey(q), "a", 1, "p"},
		{"get", asynqcompat.PendingKey(q), asynqcompat.PausedKey(q), "a", "l", "1", "2"},
		{"evalsha", "x", 4, "wahaq:{q}:pending", "wahaq:{q}:paused", "a", "l", 1, "p"},
		{"evalsha", "x", 2, asynqcompat.ScheduledKey(q), asynqcompat.PendingKey(q + "x"), 1, "p"},
		{"evalsha", "x", 2, asynqcompat.ArchivedKey(q), asynqcompat.PendingKey(q), 1, "p"},
		{"evalsha", "x", 5, asynqcompat.ActiveKey(q), asynqcompat.LeaseKey(q), asynqcompat.TaskKey(q, "a"), "p", asynqcompat.ProcessedTotalKey(q), "b", 1, 2},
		// the Inspector's "run all scheduled" (runAllCmd): the forwarder's
		// keys, one argument
		{"evalsha", "x", 2, asynqcompat.ScheduledKey(q), asynqcompat.PendingKey(q), asynqcompat.TaskKeyPrefix(q)},
		// a dequeue or done with another number of arguments is another script
		{"evalsha", "x", 4, asynqcompat.PendingKey(q), asynqcompat.PausedKey(q), asynqcompat.ActiveKey(q), asynqcompat.LeaseKey(q), int64(1), "p", "extra"},
		{"evalsha", "x", 5, asynqcompat.ActiveKey(q), asynqcompat.LeaseKey(q), asynqcompat.TaskKey(q, "a"), "d", asynqcompat.ProcessedTotalKey(q), "a", 1},
	} {
		require.Equal(t, asynqcompat.OpNone, asynqcompat.QueueScript(args).Op, "%v", args)
	}
}

// TestRetriedLua reads the Retried count in Redis from messages as Encode
// writes them, a payload longer than one length byte included.
func TestRetriedLua(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	script := redis.NewScript(asynqcompat.RetriedLua + `return asynq_retried(ARGV[1])`)
	long := make([]byte, 300)
	for i := range long {
		long[i] = byte(i)
	}
	for _, tc := range []struct {
		name    string
		payload []byte
		retried int32
	}{
		{name: "never retried"},
		{name: "once", retried: 1},
		{name: "many, long payload", payload: long, retried: 300},
		{name: "a large count", payload: []byte(`{"a":1}`), retried: 1 << 20},
	} {
		msg := asynqcompat.Encode(asynqcompat.Message{Type: "wahaq:logout", Payload: tc.payload, ID: "id", Queue: "q", Retry: 1 << 30, Retried: tc.retried, TimeoutSeconds: 90})
		got, err := script.Run(context.Background(), rdb, nil, msg).Int()
		require.NoError(t, err, tc.name)
		require.EqualValues(t, tc.retried, got, tc.name)
	}
}

// TestQueueLua pins QueueLua's ends of the pending list to asynq's: the
// head is the task asynq's Client enqueued first (its dequeue takes it
// next), and a task pushed at the tail comes after every task queued.
func TestQueueLua(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := redistest.Client(t)
	q := redistest.Namespace(t) + ":q"
	c := asynq.NewClientFromRedisClient(rdb)
	var ids []string
	for range 3 {
		info, err := c.Enqueue(asynq.NewTask("wahaq:test", nil), asynq.Queue(q))
		require.NoError(t, err)
		ids = append(ids, info.ID)
	}
	t.Cleanup(func() {
		_ = rdb.Del(ctx, asynqcompat.PendingKey(q), asynqcompat.TaskKey(q, ids[0]), asynqcompat.TaskKey(q, ids[1]), asynqcompat.TaskKey(q, ids[2])).Err()
		_ = rdb.SRem(ctx, asynqcompat.AllQueues, q).Err()
	})
	head := redis.NewScript(asynqcompat.QueueLua + `return asynq_head(KEYS[1])`)
	pop := redis.NewScript(asynqcompat.QueueLua + `return asynq_pop_head(KEYS[1])`)
	push := redis.NewScript(asynqcompat.QueueLua + `return asynq_push_tail(KEYS[1], ARGV[1])`)
	pending := []string{asynqcompat.PendingKey(q)}

	got, err := head.Run(ctx, rdb, pending).Text()
	require.NoError(t, err)
	require.Equal(t, ids[0], got, "the first enqueued is dequeued first")
	got, err = pop.Run(ctx, rdb, pending).Text()
	require.NoError(t, err)
	require.Equal(t, ids[0], got)
	require.NoError(t, push.Run(ctx, rdb, pending, ids[0]).Err())
	var order []string
	for range 3 {
		id, err := pop.Run(ctx, rdb, pending).Text()
		require.NoError(t, err)
		order = append(order, id)
	}
	require.Equal(t, []string{ids[1], ids[2], ids[0]}, order, "pushed at the tail: after every task queued")
	_, err = head.Run(ctx, rdb, pending).Result()
	require.ErrorIs(t, err, redis.Nil, "empty")
}
