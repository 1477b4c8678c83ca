package store

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wahaq/wahaq/internal/asynqcompat"
	"github.com/wahaq/wahaq/internal/base"
)

// cancelScript cancels a task that has not started: it leaves asynq (pending,
// scheduled or retry), its record becomes canceled and expires, its dedup
// entry goes, and its batch counts it canceled.
//
// Like the finish script, it enqueues the task's (and a batch made done by
// it, the batch's) callback delivery and publishes the completion.
//
// KEYS[1] record, KEYS[2] asynq task, KEYS[3] asynq pending, KEYS[4] asynq
// scheduled, KEYS[5] asynq retry, KEYS[6] batch, KEYS[7] dedup, KEYS[8]
// callback delivery set, KEYS[9] the queue's subscriptions, KEYS[10]
// completion channel.
// ARGV[1] id, ARGV[2] now (ms), ARGV[3] result TTL (s), ARGV[4] task
// delivery id, ARGV[5] batch delivery id, ARGV[6] now (ns).
// Returns cancelDone, cancelNotFound, or cancelStarted (already started or
// finished).
var cancelScript = redis.NewScript(batchLua + callbackLua + asynqcompat.TaskLua + `
local st = redis.call('HGET', KEYS[1], 'state')
if not st then return 0 end
if st ~= 'scheduled' and st ~= 'pending' then return -1 end
local ast = asynq_state(KEYS[2])
if ast == ASYNQ_PENDING then
  redis.call('LREM', KEYS[3], 0, ARGV[1])
elseif ast == ASYNQ_SCHEDULED then
  redis.call('ZREM', KEYS[4], ARGV[1])
elseif ast == ASYNQ_RETRY then
  redis.call('ZREM', KEYS[5], ARGV[1])
elseif ast then
  return -1
end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[1], 'state', 'canceled', 'fin', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
if redis.call('GET', KEYS[7]) == ARGV[1] then redis.call('DEL', KEYS[7]) end
local b = redis.call('HGET', KEYS[1], 'batch')
if b and redis.call('EXISTS', KEYS[6]) == 1 then
  batch_move(KEYS[6], st, 'canceled')
  if batch_done(KEYS[6], ARGV[3]) then
    batch_finished(KEYS[6], KEYS[8], KEYS[9], ARGV[5], ARGV[6], KEYS[10], b)
  end
end
cb_enqueue(KEYS[1], KEYS[8], KEYS[9], ARGV[4], 't:' .. ARGV[1], ARGV[6])
notify(KEYS[10], 't:' .. ARGV[1])
return 1
`)

// Replies of cancelScript.
const (
	cancelStarted  = -1
	cancelNotFound = 0
	cancelDone     = 1
)

// Cancel cancels a task that has not started and returns its record. It
// returns an error wrapping base.ErrNotFound for an unknown id and
// base.ErrAlreadyStarted once the task has started or finished.
func (s *Store) Cancel(ctx context.Context, instances []string, id string, resultTTL time.Duration) (*Record, error) {
	inst, r, err := s.find(ctx, instances, id)
	if err != nil {
		return nil, err
	}
	k := s.Keys(inst)
	cb := s.callbackArgs(k)
	keys := append([]string{k.Record(id), k.AsynqTask(id), k.Pending(), k.Scheduled(), k.Retry(), k.Batch(r.BatchID), k.Dedup(r.Session)}, cb.keys...)
	args := append([]any{id, s.now().UnixMilli(), ttlSeconds(resultTTL)}, cb.args...)
	n, err := cancelScript.Run(ctx, s.rdb, keys, args...).Int()
	if err != nil {
		return nil, fmt.Errorf("cancel task %s: %w", id, err)
	}
	switch n {
	case cancelNotFound:
		return nil, fmt.Errorf("task %s: %w", id, base.ErrNotFound)
	case cancelStarted:
		return nil, fmt.Errorf("task %s is %s: %w", id, r.State, base.ErrAlreadyStarted)
	}
	return s.Get(ctx, []string{inst}, id)
}
