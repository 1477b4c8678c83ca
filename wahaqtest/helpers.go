package wahaqtest

import (
	"context"
	"errors"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/wahaq/wahaq/internal/store"
	"github.com/wahaq/wahaq/tasks"
)

// RequireEnqueued asserts that session has a live logout (scheduled,
// pending, active or retrying) on the environment's instance and returns
// it, as rivertest.RequireInserted does for River jobs. It fails the test
// otherwise.
func (e *Env) RequireEnqueued(t testing.TB, session string) *tasks.Task {
	t.Helper()
	ctx := context.Background()
	k := store.KeysFor(e.Namespace, e.Instance)
	id, err := e.Redis.Get(ctx, k.Dedup(session)).Result()
	if errors.Is(err, redis.Nil) {
		t.Fatalf("wahaqtest: session %s has no logout enqueued on %s", session, e.Instance)
		return nil
	}
	if err != nil {
		t.Fatalf("wahaqtest: reading session %s: %v", session, err)
		return nil
	}
	task, err := e.Inspector.Task(ctx, id)
	if err != nil {
		t.Fatalf("wahaqtest: session %s: task %s: %v", session, id, err)
		return nil
	}
	if task.State.Final() {
		t.Fatalf("wahaqtest: session %s has no live logout: its last, %s, is %s", session, id, task.State)
		return nil
	}
	return task
}

// Work enqueues one logout and runs one attempt of it synchronously through
// the real handler (Env.Worker's chain and policy, against the fake WAHA),
// then returns the task as stored, like rivertest's Worker.Work. The task is
// taken out of asynq's queue first, so start the environment with
// Options.NoStart: a running worker could otherwise pick it up. A retrying
// answer is returned as such; nothing runs the task again.
func (e *Env) Work(t testing.TB, r tasks.LogoutRequest) *tasks.Task {
	t.Helper()
	ctx := context.Background()
	task, err := e.Producer.Enqueue(ctx, r)
	if err != nil {
		t.Fatalf("wahaqtest: enqueue: %v", err)
		return nil
	}
	if task.Deduplicated {
		t.Fatalf("wahaqtest: session %s already has the live logout %s", r.Session, task.ID)
		return nil
	}
	ai := asynq.NewInspectorFromRedisClient(e.Redis)
	q := e.Producer.Queue(task.Instance)
	info, err := ai.GetTaskInfo(q, task.ID)
	if err != nil {
		t.Fatalf("wahaqtest: task %s in asynq: %v", task.ID, err)
		return nil
	}
	if err := ai.DeleteTask(q, task.ID); err != nil {
		t.Fatalf("wahaqtest: take task %s out of the queue (is a worker running? use Options.NoStart): %v", task.ID, err)
		return nil
	}
	if err := e.Worker.Work(ctx, task.ID, info.Payload, 0); err != nil {
		// What asynq would be told (retry, or dead); the record says the
		// same in the task's terms.
		t.Logf("wahaqtest: task %s: the handler answered %v", task.ID, err)
	}
	done, err := e.Inspector.Task(ctx, task.ID)
	if err != nil {
		t.Fatalf("wahaqtest: task %s: %v", task.ID, err)
		return nil
	}
	return done
}
