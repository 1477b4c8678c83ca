package store

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wahaq/wahaq/internal/asynqcompat"
	"github.com/wahaq/wahaq/internal/base"
)

// startScript takes a slot of the instance's concurrency cap and marks the
// task active. Slots are leases (sorted-set scores are expiry times), so a
// worker that dies holding one frees it when the lease runs out.
//
// A record that is missing (the task came from asynq's own tools) is created
// from the payload. A dead record is a restart: the dead letter was run again
// from asynq's archive. Like a requeue, it takes the session's dedup claim
// back with fresh retries (the attempt offset "aoff" makes asynq's retry
// count start again), or, when the session has another live task, closes
// itself (canceled) in that task's favour. A record marked "rst" was revived
// by the reconciler and gets fresh retries the same way.
//
// When it takes the last slot, or finds none free, it closes the queue's
// gate (gate.go) so that asynq stops dequeuing the server's tasks until
// Finish frees a slot.
//
// Never two attempts of one id at once: an active record whose slot lease
// has not run out is in flight elsewhere (asynq delivered the id twice), so
// this delivery is refused. A completed or canceled record was delivered
// again after it ended: there is nothing to do.
//
// KEYS[1] semaphore, KEYS[2] record, KEYS[3] batch, KEYS[4] dead letters,
// KEYS[5] dedup, KEYS[6] asynq's paused key, KEYS[7] gate channel.
// ARGV[1] id, ARGV[2] now (ms), ARGV[3] lease until (ms), ARGV[4] cap (0 =
// none), ARGV[5] attempt (asynq's retry count + 1), ARGV[6] instance,
// ARGV[7] session, ARGV[8] batch id, ARGV[9] max retries, ARGV[10] asynq
// task key prefix, ARGV[11] TTL of a superseded record (s).
// Returns the attempt number (>= 1) when started, startCapped when the cap is
// reached, startInFlight, startEnded, startHeld (its batch is paused) or
// {startSuperseded, live id}: nothing was started.
var startScript = redis.NewScript(beginLua + asynqcompat.TaskLua + `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[2])
-- every record field the script reads, in one call: each redis.call costs
-- on top of its command
local cur = redis.call('HMGET', KEYS[2], 'state', 'rst', 'aoff', 'next', 'abase')
local old = cur[1]
local cap = tonumber(ARGV[4])
local held = (old == 'active' or cap > 0) and redis.call('ZSCORE', KEYS[1], ARGV[1])
if old == 'active' and held then return -1 end
if old == 'completed' or old == 'canceled' then return -2 end
local batch = ARGV[8] ~= '' and old and redis.call('EXISTS', KEYS[3]) == 1
-- a task of a paused batch does not start (pause.go)
if batch and (old == 'pending' or old == 'scheduled' or old == 'retrying') and redis.call('HEXISTS', KEYS[3], 'paused') == 1 then return -4 end
if old == 'dead' then
  -- run again from asynq's archive: a requeue, unless another task holds the session
  local live = redis.call('GET', KEYS[5])
  if live and live ~= ARGV[1] then
    if asynq_live(asynq_state(ARGV[10] .. live)) then
      redis.call('ZREM', KEYS[4], ARGV[1])
      redis.call('HSET', KEYS[2], 'state', 'canceled', 'err', 'superseded by live task ' .. live)
      redis.call('EXPIRE', KEYS[2], ARGV[11])
      if batch then batch_move(KEYS[3], 'dead', 'canceled') end
      return {-3, live}
    end
  end
end
local taken = 0
if cap > 0 then
  taken = redis.call('ZCARD', KEYS[1])
  if not held and taken >= cap then
    gate_close(KEYS[1], KEYS[6], KEYS[7])
    return 0
  end
end
slot_take(KEYS[1], KEYS[6], KEYS[7], ARGV[1], ARGV[3], cap, taken, nil)
if not old then
  redis.call('HSET', KEYS[2], 'instance', ARGV[6], 'session', ARGV[7], 'max', ARGV[9], 'enq', ARGV[2])
  if ARGV[8] ~= '' then redis.call('HSET', KEYS[2], 'batch', ARGV[8]) end
end
local aoff = tonumber(cur[3]) or 0
local abase = tonumber(cur[5]) or 0
if old == 'dead' or cur[2] then
  -- fresh retries: count attempts from this delivery on; the numbers shown
  -- count on from the history's last (attemptlog.go)
  aoff = tonumber(ARGV[5]) - 1
  redis.call('HSET', KEYS[2], 'aoff', aoff)
  if cur[2] then redis.call('HDEL', KEYS[2], 'rst') end
  abase = attempt_last(redis.call('HGET', KEYS[2], 'log'))
  if abase > 0 then redis.call('HSET', KEYS[2], 'abase', abase) end
end
if old == 'dead' then
  redis.call('PERSIST', KEYS[2])
  redis.call('ZREM', KEYS[4], ARGV[1])
  redis.call('SET', KEYS[5], ARGV[1])
  local oo = redis.call('HGET', KEYS[2], 'outcome')
  redis.call('HDEL', KEYS[2], 'outcome', 'fin', 'result')
  if batch then
    redis.call('PERSIST', KEYS[3])
    if oo then batch_outcome(KEYS[3], oo, -1) end
  end
end
local attempt = math.max(1, tonumber(ARGV[5]) - aoff)
mark_active(KEYS[2], attempt + abase, cur[4], batch and KEYS[3], old, KEYS[5], ARGV[1], ARGV[2])
return attempt
`)

// beginLua defines the steps of an attempt's start that the start script
// and the take script (take.go) share, so the two cannot drift apart.
//
// slots_prune(slots, now) drops the slot leases that ran out before now
// (ms; a worker that died holding them) and returns the slots left.
//
// slot_take(slots, paused, gate channel, id, lease until, cap, taken,
// prune_before) takes id's slot, taken being the slots counted before (id's
// own, if it holds one, included), and closes the gate when that fills the
// cap. prune_before (ms) is set when taken may still count leases that ran
// out (a worker that died holding them): they are pruned before the gate
// closes on them. It returns true when it closed the gate.
//
// mark_active(record, attempt as shown (attemptlog.go), has next, batch
// key or nil, old state,
// dedup key or nil, id, now) marks the record active with its attempt,
// moves the batch's count from the old state, and re-arms the session's
// claim when the task holds it (an attempt starting keeps its claim,
// dedup.go).
var beginLua = batchLua + notifyLua + gateLua + claimLua + attemptBaseLua + `
local function slots_prune(slots, now)
  redis.call('ZREMRANGEBYSCORE', slots, '-inf', '(' .. now)
  return redis.call('ZCARD', slots)
end
local function slot_take(slots, paused, channel, id, until_ms, cap, taken, prune_before)
  -- ZADD answers 1 for a slot it adds, 0 for one id held already
  taken = taken + redis.call('ZADD', slots, until_ms, id)
  if cap > 0 and taken >= cap then
    if prune_before then taken = slots_prune(slots, prune_before) end
    if taken >= cap then
      gate_close(slots, paused, channel)
      return true
    end
  end
  return false
end
local function mark_active(rec, attempt, hasnext, batch, old, dedup, id, now)
  redis.call('HSET', rec, 'state', 'active', 'attempts', attempt)
  if hasnext then redis.call('HDEL', rec, 'next') end
  if batch and old ~= 'active' then batch_move(batch, old, 'active') end
  if dedup and redis.call('GET', dedup) == id then claim_arm(dedup, nil, now) end
end
`

// supersededTTL is how long a dead letter closed in favour of a live task
// by a restart keeps its record: the default result TTL.
const supersededTTL = 24 * time.Hour

// Replies of startScript other than an attempt number.
const (
	startCapped     = 0
	startInFlight   = -1
	startEnded      = -2
	startSuperseded = -3
	startHeld       = -4
)

// StartCode says what Begin did.
type StartCode int

// Start codes.
const (
	// StartStarted: the slot is taken and the task is active.
	StartStarted StartCode = iota
	// StartCapped: the instance's cap is reached; nothing changed.
	StartCapped
	// StartInFlight: another attempt of the same id holds a live slot
	// lease (a second delivery); nothing changed. Hand it back.
	StartInFlight
	// StartEnded: the task is already completed or canceled (a delivery
	// after its end); nothing to do.
	StartEnded
	// StartSuperseded: a dead letter run again from asynq's archive while
	// the session has another live task; it was closed (canceled) in that
	// task's favour.
	StartSuperseded
	// StartHeld: the task's batch is paused (pause.go); nothing changed.
	// Hand it back without spending a retry.
	StartHeld
)

// StartResult is what Begin did.
type StartResult struct {
	Code StartCode
	// Attempt is the attempt number as wahaq counts it (fresh retries
	// after a restart), set when Code is StartStarted.
	Attempt int
	// LiveID is the session's live task when Code is StartSuperseded.
	LiveID string
}

// Start takes a concurrency slot of the instance for the task and marks it
// active. It returns false, and changes nothing, when the instance already
// has capacity logouts in flight (capacity 0 means no cap) or the task
// cannot start (see Begin). The slot is a lease that ends at lease from
// now, or at Finish.
func (s *Store) Start(ctx context.Context, id string, p base.Payload, attempt, capacity int, lease time.Duration) (bool, error) {
	r, err := s.Begin(ctx, id, p, attempt, capacity, lease)
	return r.Code == StartStarted, err
}

// Begin is Start with the reason when the task did not start.
func (s *Store) Begin(ctx context.Context, id string, p base.Payload, attempt, capacity int, lease time.Duration) (StartResult, error) {
	k := s.Keys(p.Instance)
	now := s.now()
	v, err := startScript.Run(ctx, s.rdb,
		[]string{k.Slots(), k.Record(id), k.Batch(p.BatchID), k.DeadLetters(), k.Dedup(p.Session), k.Paused(), k.Gate()},
		id, now.UnixMilli(), now.Add(lease).UnixMilli(), capacity, attempt,
		p.Instance, p.Session, p.BatchID, p.MaxRetries, k.AsynqTaskPrefix(), ttlSeconds(supersededTTL)).Result()
	if err != nil {
		return StartResult{Code: StartCapped}, fmt.Errorf("start task %s: %w", id, err)
	}
	switch v := v.(type) {
	case int64:
		return startResult(v), nil
	case []any:
		live, _ := v[1].(string)
		return StartResult{Code: StartSuperseded, LiveID: live}, nil
	}
	return StartResult{Code: StartCapped}, fmt.Errorf("start task %s: unexpected reply %v", id, v)
}

// startResult reads a start code of the start or the take script: an
// attempt number, startInFlight, startEnded, startHeld or startCapped.
func startResult(code int64) StartResult {
	switch {
	case code > 0:
		return StartResult{Code: StartStarted, Attempt: int(code)}
	case code == startInFlight:
		return StartResult{Code: StartInFlight}
	case code == startEnded:
		return StartResult{Code: StartEnded}
	case code == startHeld:
		return StartResult{Code: StartHeld}
	}
	return StartResult{Code: StartCapped}
}
