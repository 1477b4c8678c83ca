package redistopo

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/base"
	"github.com/wahaq/wahaq/internal/redistest"
	"github.com/wahaq/wahaq/tasks"
	"github.com/wahaq/wahaq/wahaclient/wahafake"
	"github.com/wahaq/wahaq/worker"
)

// TestAsynqToolsSeeWahaqQueues shows, through asynq.Inspector (the API behind
// the asynq CLI and asynqmon), that wahaq's queues are ordinary asynq queues:
// a dead-lettered wahaq task is listed as archived with its payload, and
// running it again from there completes it in wahaq's model and takes it
// out of wahaq's dead-letter queue.
func TestAsynqToolsSeeWahaqQueues(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	ns := redistest.Namespace(t)
	ctx := context.Background()
	fake := wahafake.NewT(t, wahafake.Options{APIKey: "rotated"}) // the worker's key is refused: 401
	fake.AddSession("sales-bot", wahafake.StatusWorking)
	startWorker(t, rdb, ns, worker.Instance{Name: "default", BaseURL: fake.URL(), APIKey: "key-1"})
	cfg := tasks.Config{Redis: rdb, Namespace: ns}
	prod, err := tasks.NewProducer(cfg)
	require.NoError(t, err)
	insp, err := tasks.NewInspector(cfg)
	require.NoError(t, err)
	aq := asynq.NewInspectorFromRedisClient(rdb)
	q := ns + ":default"

	task, err := prod.Enqueue(ctx, tasks.LogoutRequest{Session: "sales-bot"})
	require.NoError(t, err)
	dead := waitTask(t, insp, task.ID, inState(tasks.StateDead))
	require.Equal(t, tasks.OutcomeAuthFailed, outcomeOf(dead))

	// asynq dash / asynq task ls --queue <ns>:default --state archived
	var archived []*asynq.TaskInfo
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		got, err := aq.ListArchivedTasks(q)
		if assert.NoError(c, err) && assert.NotEmpty(c, got) {
			archived = got
		}
	}, wait, 20*time.Millisecond)
	require.Len(t, archived, 1)
	a := archived[0]
	require.Equal(t, task.ID, a.ID)
	require.Equal(t, q, a.Queue)
	require.Equal(t, tasks.TypeLogout, a.Type)
	require.Equal(t, asynq.TaskStateArchived, a.State)
	require.Contains(t, a.LastErr, "auth_failed")
	var p base.Payload
	require.NoError(t, json.Unmarshal(a.Payload, &p))
	require.Equal(t, "default", p.Instance)
	require.Equal(t, "sales-bot", p.Session)
	require.NotContains(t, string(a.Payload), "key-1", "no secret in the payload")

	// asynq stats
	info, err := aq.GetQueueInfo(q)
	require.NoError(t, err)
	require.Equal(t, 1, info.Archived)
	require.Equal(t, 0, info.Pending)
	require.GreaterOrEqual(t, info.Failed, 1)

	// Fix the key, then `asynq task run --queue <q> --id <id>`.
	fake.SetAPIKey("key-1")
	require.NoError(t, aq.RunTask(q, task.ID))
	done := waitTask(t, insp, task.ID, inState(tasks.StateCompleted))
	require.Equal(t, tasks.OutcomeLoggedOut, outcomeOf(done))
	require.Equal(t, "success", done.Result.Status)
	// asynq runs it with the retry count it archived it with (fresh
	// retries); the attempt numbers count on from the history, so the
	// record reads attempt 2, as WAHA saw two calls.
	require.Equal(t, 2, done.Attempts)
	require.True(t, done.AttemptsLog[len(done.AttemptsLog)-1].Requeued)
	require.Equal(t, 2, fake.LogoutCalls("sales-bot"))
	page, err := insp.DeadLetters(ctx, "", 0, 10)
	require.NoError(t, err)
	require.EqualValues(t, 0, page.Total, "the task left wahaq's dead-letter queue")
	info, err = aq.GetQueueInfo(q)
	require.NoError(t, err)
	require.Equal(t, 0, info.Archived)
}
