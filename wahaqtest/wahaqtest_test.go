package wahaqtest_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/wahaq/wahaq/tasks"
	"github.com/wahaq/wahaq/wahaclient/wahafake"
	"github.com/wahaq/wahaq/wahaqtest"
	"github.com/wahaq/wahaq/worker"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestStartRunsLogouts(t *testing.T) {
	t.Parallel()
	env := wahaqtest.Start(t, wahaqtest.Options{
		Fake:     wahafake.Options{APIKey: "k", Sessions: 3},
		Instance: "eu-1",
		Tasks:    func(c *tasks.Config) { c.MaxRetries = 2 },
	})
	require.NotEmpty(t, env.Namespace)
	require.Equal(t, "eu-1", env.Instance)
	require.Equal(t, wahaqtest.DefaultRetryBase, env.WorkerConfig.RetryBase)
	require.Equal(t, wahaqtest.DefaultPollInterval, env.WorkerConfig.PollInterval)
	require.Equal(t, "k", env.WorkerConfig.Instances[0].APIKey)
	require.Equal(t, env.Fake.URL(), env.WorkerConfig.Instances[0].BaseURL)
	ctx := context.Background()

	env.Fake.Script("session-0001", wahafake.Fault{Status: 503, Times: 1})
	task, err := env.Producer.Enqueue(ctx, tasks.LogoutRequest{Instance: "eu-1", Session: "session-0001"})
	require.NoError(t, err)
	require.Equal(t, 2, task.MaxRetries)
	done := env.WaitTask(t, task.ID, 30*time.Second)
	require.Equal(t, tasks.StateCompleted, done.State)
	require.Equal(t, 2, done.Attempts)

	info, err := env.Producer.EnqueueBatch(ctx, tasks.BatchRequest{Instance: "eu-1", Sessions: []string{"session-0002", "session-0003"}})
	require.NoError(t, err)
	b := env.WaitBatch(t, info.BatchID, 30*time.Second)
	require.EqualValues(t, 2, b.Outcomes[tasks.OutcomeLoggedOut])
	require.Equal(t, 4, env.Fake.TotalLogoutCalls(), "two calls for session-0001, one for each batch session")

	// Keys live in the environment's namespace.
	keys, err := env.Redis.Keys(ctx, "*{"+env.Namespace+":eu-1}*").Result()
	require.NoError(t, err)
	require.NotEmpty(t, keys)
}

func TestNoStartAndStartWorker(t *testing.T) {
	t.Parallel()
	env := wahaqtest.Start(t, wahaqtest.Options{NoStart: true, Fake: wahafake.Options{Sessions: 1}})
	ctx := context.Background()
	task, err := env.Producer.Enqueue(ctx, tasks.LogoutRequest{Session: "session-0001"})
	require.NoError(t, err)
	time.Sleep(200 * time.Millisecond)
	got, err := env.Inspector.Task(ctx, task.ID)
	require.NoError(t, err)
	require.Equal(t, tasks.StatePending, got.State, "no worker runs with NoStart")
	require.Zero(t, env.Fake.TotalLogoutCalls())

	env.StartWorker(t, func(c *worker.Config) { c.Concurrency = 1 })
	require.Equal(t, tasks.OutcomeLoggedOut, *env.WaitTask(t, task.ID, 30*time.Second).Outcome)
}

// fatalRecorder is a testing.TB whose Fatalf records the message and ends
// the calling goroutine, like the real one.
type fatalRecorder struct {
	testing.TB
	mu  sync.Mutex
	msg string
}

func (f *fatalRecorder) Helper() {}

func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.msg = fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}

func TestWaitTaskTimeoutShowsLastState(t *testing.T) {
	t.Parallel()
	env := wahaqtest.Start(t, wahaqtest.Options{NoStart: true})
	task, err := env.Producer.Enqueue(context.Background(), tasks.LogoutRequest{Session: "stuck"})
	require.NoError(t, err)

	rec := &fatalRecorder{TB: t}
	done := make(chan *tasks.Task, 1)
	go func() {
		defer close(done)
		done <- env.WaitTask(rec, task.ID, 100*time.Millisecond)
	}()
	_, returned := <-done
	require.False(t, returned, "WaitTask must fail the test on timeout, not return")
	require.Contains(t, rec.msg, task.ID)
	require.Contains(t, rec.msg, "did not reach a final state")
	require.Contains(t, rec.msg, `"state":"pending"`)

	brec := &fatalRecorder{TB: t}
	bdone := make(chan *tasks.Batch, 1)
	info, err := env.Producer.EnqueueBatch(context.Background(), tasks.BatchRequest{Sessions: []string{"a", "b"}})
	require.NoError(t, err)
	go func() {
		defer close(bdone)
		bdone <- env.WaitBatch(brec, info.BatchID, 100*time.Millisecond)
	}()
	_, returned = <-bdone
	require.False(t, returned)
	require.True(t, strings.Contains(brec.msg, "was not done") && strings.Contains(brec.msg, `"total":2`), brec.msg)
}
