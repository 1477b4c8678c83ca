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
	"github.com/stretchr/testify/assert"
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
		ShutdownGrace: 2 * time.Second,
	})
	require.NoError(t, err)
	require.NoError(t, w.Start())
	t.Cleanup(w.Shutdown)
	return w
}

// waitTask polls a task until cond holds and returns it.
func waitTask(t *testing.T, insp *tasks.Inspector, id string, cond func(*tasks.Task) bool) *tasks.Task {
	t.Helper()
	var last *tasks.Task
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		got, err := insp.Task(context.Background(), id)
		if !assert.NoError(c, err) {
			return
		}
		last = got
		assert.Truef(c, cond(got), "task %s: condition not met; last %+v", id, got)
	}, wait, 20*time.Millisecond)
	return last
}

func inState(st tasks.State) func(*tasks.Task) bool {
	return func(t *tasks.Task) bool { return t.State == st }
}

// waitBatch polls a batch until it is done and returns it.
func waitBatch(t *testing.T, insp *tasks.Inspector, id string) *tasks.Batch {
	t.Helper()
	var last *tasks.Batch
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		got, err := insp.Batch(context.Background(), id)
		if !assert.NoError(c, err) {
			return
		}
		last = got
		assert.Truef(c, got.Done, "batch %s not done; last %+v", id, got)
	}, wait, 30*time.Millisecond)
	return last
}

// requeue requeues one dead letter through wahaq, retrying while asynq is
// still archiving it (RequeueBusy).
func requeue(t *testing.T, insp *tasks.Inspector, id string) {
	t.Helper()
	var last []tasks.RequeueResult
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		res, err := insp.Requeue(context.Background(), tasks.Selection{IDs: []string{id}})
		if !assert.NoError(c, err) || !assert.Len(c, res, 1) {
			return
		}
		last = res
		assert.NotEqual(c, tasks.RequeueBusy, res[0].Status, "requeue %s: still busy", id)
	}, wait, 20*time.Millisecond)
	require.Equal(t, tasks.Requeued, last[0].Status, "requeue %s", id)
}

func outcomeOf(t *tasks.Task) tasks.Outcome {
	if t.Outcome == nil {
		return ""
	}
	return *t.Outcome
}

func isNotFound(err error) bool { return errors.Is(err, tasks.ErrNotFound) }
