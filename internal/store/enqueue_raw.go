package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wahaq/wahaq/internal/asynqcompat"
)

// enqueueRawScript enqueues a plain asynq task with no wahaq record: the
// discovery task of an "all" batch (base.TypeDiscover), whose id is the
// batch id.
//
// KEYS[1] asynq task, KEYS[2] asynq pending list or scheduled set.
// ARGV[1] id, ARGV[2] asynq message, ARGV[3] now (ns), ARGV[4] process-at
// (Unix s, "0" = now).
// Returns rawEnqueued, or rawExists when a task with the id exists.
var enqueueRawScript = redis.NewScript(asynqcompat.PushLua + `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if ARGV[4] == '0' then
  asynq_new(KEYS[1], ARGV[2], ARGV[3])
  redis.call('LPUSH', KEYS[2], ARGV[1])
else
  asynq_new_scheduled(KEYS[1], ARGV[2])
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
end
return 1
`)

// Replies of enqueueRawScript.
const (
	rawExists   = 0
	rawEnqueued = 1
)

// ErrTaskExists is returned by EnqueueRaw when asynq already has a task with
// the id.
var ErrTaskExists = errors.New("task id exists")

// EnqueueRaw enqueues a plain asynq task of type typ on the instance's queue,
// at at (zero for now), with asynq's own retry limit retry.
func (s *Store) EnqueueRaw(ctx context.Context, instance, id, typ string, payload []byte, at time.Time, retry int32, timeout time.Duration) error {
	k := s.Keys(instance)
	if err := s.publish(ctx, k.Queue); err != nil {
		return err
	}
	msg := asynqcompat.Encode(asynqcompat.Message{Type: typ, Payload: payload, ID: id, Queue: k.Queue, Retry: retry,
		TimeoutSeconds: timeoutSeconds(timeout)})
	list, processAt := k.Pending(), "0"
	if !at.IsZero() {
		list, processAt = k.Scheduled(), strconv.FormatInt(ceilUnix(at), 10)
	}
	n, err := enqueueRawScript.Run(ctx, s.rdb, []string{k.AsynqTask(id), list},
		id, msg, s.now().UnixNano(), processAt).Int()
	if err != nil {
		return fmt.Errorf("enqueue %s: %w", typ, err)
	}
	if n == rawExists {
		return fmt.Errorf("enqueue %s: task id %s: %w", typ, id, ErrTaskExists)
	}
	s.announce(ctx, instance)
	return nil
}
