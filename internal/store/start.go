package store

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wahaq/wahaq/internal/base"
)

// startScript takes a slot of the instance's concurrency cap and marks the
// task active. Slots are leases (sorted-set scores are expiry times), so a
// worker that dies holding one frees it when the lease runs out.
//
// A record that is missing (the task came from asynq's own tools) is created
// from the payload. A record that is already final (dead, completed or
// canceled) is a restart: the task was run again from outside wahaq (asynq's
// tools) or delivered twice; it leaves the dead letters, loses its outcome,
// and its batch counts it active again.
//
// When it takes the last slot, or finds none free, it closes the queue's
// gate (gate.go) so that asynq stops dequeuing the server's tasks until
// Finish frees a slot.
//
// KEYS[1] semaphore, KEYS[2] record, KEYS[3] batch, KEYS[4] dead letters,
// KEYS[5] asynq's paused key.
// ARGV[1] id, ARGV[2] now (ms), ARGV[3] lease until (ms), ARGV[4] cap (0 =
// none), ARGV[5] attempt, ARGV[6] instance, ARGV[7] session, ARGV[8] batch
// id, ARGV[9] max retries.
// Returns startStarted, or startCapped when the cap is reached (nothing
// changed).
var startScript = redis.NewScript(batchLua + gateLua + `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[2])
local cap = tonumber(ARGV[4])
if cap > 0 and not redis.call('ZSCORE', KEYS[1], ARGV[1]) and redis.call('ZCARD', KEYS[1]) >= cap then
  gate_close(KEYS[1], KEYS[5])
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
if cap > 0 and redis.call('ZCARD', KEYS[1]) >= cap then gate_close(KEYS[1], KEYS[5]) end
local old = redis.call('HGET', KEYS[2], 'state')
if not old then
  redis.call('HSET', KEYS[2], 'instance', ARGV[6], 'session', ARGV[7], 'max', ARGV[9], 'enq', ARGV[2])
  if ARGV[8] ~= '' then redis.call('HSET', KEYS[2], 'batch', ARGV[8]) end
end
redis.call('HSET', KEYS[2], 'state', 'active', 'attempts', ARGV[5])
redis.call('HDEL', KEYS[2], 'next')
local batch = ARGV[8] ~= '' and old and redis.call('EXISTS', KEYS[3]) == 1
if old == 'dead' or old == 'completed' or old == 'canceled' then
  -- run again from outside wahaq (asynq's tools) or a duplicate delivery
  redis.call('PERSIST', KEYS[2])
  redis.call('ZREM', KEYS[4], ARGV[1])
  local oo = redis.call('HGET', KEYS[2], 'outcome')
  redis.call('HDEL', KEYS[2], 'outcome', 'fin', 'result')
  if batch then
    redis.call('PERSIST', KEYS[3])
    if oo then batch_outcome(KEYS[3], oo, -1) end
  end
end
if batch and old ~= 'active' then batch_move(KEYS[3], old, 'active') end
return 1
`)

// Replies of startScript.
const (
	startCapped  = 0
	startStarted = 1
)

// Start takes a concurrency slot of the instance for the task and marks it
// active. It returns false, and changes nothing, when the instance already
// has capacity logouts in flight (capacity 0 means no cap). The slot is a
// lease that ends at lease from now, or at Finish.
func (s *Store) Start(ctx context.Context, id string, p base.Payload, attempt, capacity int, lease time.Duration) (bool, error) {
	k := s.Keys(p.Instance)
	now := s.now()
	n, err := startScript.Run(ctx, s.rdb,
		[]string{k.Slots(), k.Record(id), k.Batch(p.BatchID), k.DeadLetters(), k.Paused()},
		id, now.UnixMilli(), now.Add(lease).UnixMilli(), capacity, attempt,
		p.Instance, p.Session, p.BatchID, p.MaxRetries).Int()
	if err != nil {
		return false, fmt.Errorf("start task %s: %w", id, err)
	}
	return n == startStarted, nil
}
