package redistopo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/tasks"
	"github.com/wahaq/wahaq/worker"
)

func TestMain(m *testing.M) {
	// go-redis logs every refused dial while a master is down: hundreds of
	// lines that bury the figures. The tests assert on what matters.
	redis.SetLogger(quietLogger{})
	os.Exit(m.Run())
}

type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

// wait bounds one task or batch in the happy paths; generous because a noisy
// 2-core machine under -race stalls for seconds. Nothing asserts on it.
const wait = 30 * time.Second

// namespace returns a namespace of its own for a test.
func namespace() string {
	var b [5]byte
	_, _ = rand.Read(b[:])
	return "ha" + hex.EncodeToString(b[:])
}

// startWorker starts a worker with fast retries and stops it when the test
// ends.
func startWorker(t *testing.T, rdb redis.UniversalClient, ns string, instances ...worker.Instance) *worker.Worker {
	t.Helper()
	w, err := worker.New(worker.Config{
		Redis: rdb, Namespace: ns, Instances: instances,
		Concurrency: 16, RetryBase: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond,
		SlotWait: time.Second, ShutdownGrace: 2 * time.Second,
	})
	require.NoError(t, err)
	require.NoError(t, w.Start())
	t.Cleanup(w.Shutdown)
	return w
}

// waitTask polls a task until cond holds and returns it.
func waitTask(t *testing.T, insp *tasks.Inspector, id string, cond func(*tasks.Task) bool) *tasks.Task {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(wait)
	var last *tasks.Task
	var lastErr error
	for time.Now().Before(deadline) {
		last, lastErr = insp.Task(ctx, id)
		if lastErr == nil && cond(last) {
			return last
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("task %s: condition not met within %s; last %+v, err %v", id, wait, last, lastErr)
	return nil
}

func inState(st tasks.State) func(*tasks.Task) bool {
	return func(t *tasks.Task) bool { return t.State == st }
}

// waitBatch polls a batch until it is done and returns it.
func waitBatch(t *testing.T, insp *tasks.Inspector, id string) *tasks.Batch {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(wait)
	var last *tasks.Batch
	var lastErr error
	for time.Now().Before(deadline) {
		last, lastErr = insp.Batch(ctx, id)
		if lastErr == nil && last.Done {
			return last
		}
		time.Sleep(30 * time.Millisecond)
	}
	t.Fatalf("batch %s not done within %s; last %+v, err %v", id, wait, last, lastErr)
	return nil
}

// requeue requeues one dead letter through wahaq, retrying while asynq is
// still archiving it (RequeueBusy).
func requeue(t *testing.T, insp *tasks.Inspector, id string) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(wait)
	for {
		res, err := insp.Requeue(ctx, tasks.Selection{IDs: []string{id}})
		require.NoError(t, err)
		require.Len(t, res, 1)
		if res[0].Status == tasks.Requeued {
			return
		}
		require.Equal(t, tasks.RequeueBusy, res[0].Status, "requeue %s", id)
		require.True(t, time.Now().Before(deadline), "requeue %s: still busy after %s", id, wait)
		time.Sleep(20 * time.Millisecond)
	}
}

func outcomeOf(t *tasks.Task) tasks.Outcome {
	if t.Outcome == nil {
		return ""
	}
	return *t.Outcome
}

func isNotFound(err error) bool { return errors.Is(err, tasks.ErrNotFound) }
