package tasks_test

import (
	"context"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/redistest"
	"github.com/wahaq/wahaq/tasks"
)

func loopPair(t *testing.T, rdb redis.UniversalClient, ns string) (*tasks.Producer, *tasks.Inspector) {
	cfg := tasks.Config{Redis: rdb, Namespace: ns}
	p, err := tasks.NewProducer(cfg)
	require.NoError(t, err)
	i, err := tasks.NewInspector(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = i.Close() })
	return p, i
}

// TestWaitTaskWakesOnCompletion: a long-poll of MaxWait returns as soon as
// the task is final (here canceled), not when the wait ends; the test would
// need a minute otherwise and fails at 30 s. Likewise for a batch.
func TestWaitTaskWakesOnCompletion(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p, insp := loopPair(t, redistest.Client(t), redistest.Namespace(t))
	task, err := p.Enqueue(ctx, tasks.LogoutRequest{Session: "wait-a", When: tasks.When{In: time.Hour}})
	require.NoError(t, err)
	b, err := p.EnqueueBatch(ctx, tasks.BatchRequest{Sessions: []string{"wait-b"}, When: tasks.When{In: time.Hour}})
	require.NoError(t, err)

	gotTask := make(chan *tasks.Task, 1)
	gotBatch := make(chan *tasks.Batch, 1)
	go func() { tt, _ := insp.WaitTask(ctx, task.ID, tasks.MaxWait); gotTask <- tt }()
	go func() { bb, _ := insp.WaitBatch(ctx, b.BatchID, tasks.MaxWait); gotBatch <- bb }()
	// Not final: the waiters are still waiting after a pause.
	select {
	case <-gotTask:
		t.Fatal("WaitTask returned before the task was final")
	case <-time.After(200 * time.Millisecond):
	}
	_, err = p.Cancel(ctx, task.ID)
	require.NoError(t, err)
	// the batch's only task, found through deduplication
	live, err := p.Enqueue(ctx, tasks.LogoutRequest{Session: "wait-b"})
	require.NoError(t, err)
	require.True(t, live.Deduplicated)
	_, err = p.Cancel(ctx, live.ID)
	require.NoError(t, err)
	select {
	case tt := <-gotTask:
		require.NotNil(t, tt)
		require.Equal(t, tasks.StateCanceled, tt.State)
	case <-time.After(30 * time.Second):
		t.Fatal("WaitTask did not return after the task was canceled")
	}
	select {
	case bb := <-gotBatch:
		require.NotNil(t, bb)
		require.True(t, bb.Done)
	case <-time.After(30 * time.Second):
		t.Fatal("WaitBatch did not return after the batch was done")
	}
	// A wait above MaxWait is bad input.
	_, err = insp.WaitTask(ctx, task.ID, tasks.MaxWait+time.Second)
	require.ErrorIs(t, err, tasks.ErrInvalidInput)
}

var cmdstat = regexp.MustCompile(`(?m)^cmdstat_([a-z|]+):calls=(\d+)`)

func commandCalls(t *testing.T, rdb *redis.Client) map[string]int64 {
	s, err := rdb.Info(context.Background(), "commandstats").Result()
	require.NoError(t, err)
	out := map[string]int64{}
	for _, m := range cmdstat.FindAllStringSubmatch(s, -1) {
		n, _ := strconv.ParseInt(m[2], 10, 64)
		out[m[1]] = n
	}
	return out
}

// TestIdleWaitersCostRedisNothing: 200 long-polls on one Inspector cost one
// subscription and, while they wait, no command at all (INFO commandstats on
// a redis-server of this test's own, since the shared one serves other
// suites). Then one cancel wakes all 200.
func TestIdleWaitersCostRedisNothing(t *testing.T) {
	t.Parallel()
	addr, err := redistest.StartServer()
	require.NoError(t, err)
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	p, insp := loopPair(t, rdb, "idle")
	task, err := p.Enqueue(ctx, tasks.LogoutRequest{Session: "idle-waiters", When: tasks.When{In: time.Hour}})
	require.NoError(t, err)

	const waiters = 200
	before := commandCalls(t, rdb)
	var wg sync.WaitGroup
	results := make(chan *tasks.Task, waiters)
	for range waiters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tt, err := insp.WaitTask(ctx, task.ID, tasks.MaxWait)
			if err == nil {
				results <- tt
			}
		}()
	}
	// Every waiter reads the task twice (before and after subscribing),
	// then sleeps.
	require.Eventually(t, func() bool {
		return commandCalls(t, rdb)["hgetall"]-before["hgetall"] >= 2*waiters
	}, 30*time.Second, 50*time.Millisecond)
	idle := commandCalls(t, rdb)
	time.Sleep(time.Second)
	after := commandCalls(t, rdb)
	for cmd, n := range after {
		if cmd == "info" {
			require.Equal(t, idle[cmd]+1, n, "only the INFO of this test")
			continue
		}
		require.Equal(t, idle[cmd], n, "Redis served %s while 200 waiters waited", cmd)
	}
	require.LessOrEqual(t, after["ssubscribe"]-before["ssubscribe"], int64(1), "one subscription for all waiters")

	_, err = p.Cancel(ctx, task.ID)
	require.NoError(t, err)
	wg.Wait()
	close(results)
	n := 0
	for tt := range results {
		require.Equal(t, tasks.StateCanceled, tt.State)
		n++
	}
	require.Equal(t, waiters, n)
}
