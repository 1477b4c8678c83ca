package store

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wahaq/wahaq/internal/asynqcompat"
)

// takeScript is asynq's dequeue of one queue (internal/rdb's dequeueCmd,
// which it replaces through the worker's client hook) and the start script's
// work for each task it dequeues, up to a block of them, in one step: a
// logout then costs Redis no start round trip of its own, and a block costs
// one round trip for all its tasks.
//
// It starts only the common case, a record that is pending, scheduled or
// retrying. For the start script's rarer paths (a record missing, dead, or
// revived by the reconciler) it only dequeues and says so, and the worker
// runs the start script as before. A full cap dequeues nothing at all (the
// gate closes, as in the start script), so no task is dequeued only to be
// handed back. A paused queue is skipped, as asynq does.
//
// While the queue has a paused batch (pause.go), a task of a paused batch
// at the head of the pending list is held (moved into its batch's held set)
// instead of dequeued, up to maxHeldPerTake of them in one call.
//
// KEYS[1] asynq pending, KEYS[2] asynq paused, KEYS[3] asynq active,
// KEYS[4] asynq lease, KEYS[5] semaphore, KEYS[6] gate channel, KEYS[7]
// the queue's paused batches.
// ARGV[1] asynq lease end (Unix s), ARGV[2] asynq task key prefix, ARGV[3]
// now (ms), ARGV[4] slot lease until (ms), ARGV[5] cap (0 = none), ARGV[6]
// record key prefix, ARGV[7] batch key prefix, ARGV[8] dedup key prefix,
// ARGV[9] the most tasks to take (a block, TakeN).
// Returns {message, id, code, ...}, one triple per task taken in queue
// order (none when nothing was dequeued): code the attempt number
// (started), startInFlight, startEnded, or takeFallback (dequeued, not
// started).
var takeScript = redis.NewScript(beginLua + holdLua + asynqcompat.RetriedLua + asynqcompat.DequeueLua + asynqcompat.QueueLua + `
local holding = redis.call('EXISTS', KEYS[7]) == 1
-- the paused key changes within this call only by a take that fills the
-- cap (slot_take closes the gate): it is read once, not before every task
local closed = redis.call('EXISTS', KEYS[2]) == 1
-- hold the tasks of paused batches at the head; false when the queue has
-- none left to take in this call
local function hold_head()
  for _ = 1, ` + strconv.Itoa(maxHeldPerTake) + ` do
    local id = asynq_head(KEYS[1])
    if not id then return false end
    local rkey = ARGV[6] .. id
    local b = redis.call('HGET', rkey, 'batch')
    if not b or redis.call('SISMEMBER', KEYS[7], b) == 0 then return true end
    asynq_pop_head(KEYS[1])
    hold_task(ARGV[7] .. b, rkey, id, 'p', nil)
  end
  return false
end
local function take_one()
  local cap = tonumber(ARGV[5])
  local taken = 0
  if cap > 0 then
    taken = redis.call('ZCARD', KEYS[5])
    if taken >= cap then
      -- the count may hold leases that ran out (a worker that died holding
      -- them): they are pruned only when the cap looks full, not on every take
      taken = slots_prune(KEYS[5], ARGV[3])
      if taken >= cap then
        gate_close(KEYS[5], KEYS[2], KEYS[6])
        return nil
      end
    end
  end
  if holding and not hold_head() then return nil end
  local id, msg = asynq_dequeue(KEYS[1], KEYS[3], KEYS[4], ARGV[2], ARGV[1])
  if not id then return nil end
  -- the start script's work (start.go) for the common case
  if cap == 0 then redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', '(' .. ARGV[3]) end
  local rkey = ARGV[6] .. id
  local cur = redis.call('HMGET', rkey, 'state', 'rst', 'aoff', 'next', 'batch', 'session', 'abase')
  local old = cur[1]
  if not old or old == 'dead' or cur[2] then return {msg, id, ` + fmt.Sprint(takeFallback) + `} end
  -- only an active record can hold a live slot of another delivery (a lease
  -- not yet run out: the set is not pruned on every take); a slot any other
  -- record still holds is counted by slot_take's ZADD
  if old == 'active' then
    local held = redis.call('ZSCORE', KEYS[5], id)
    if held and tonumber(held) >= tonumber(ARGV[3]) then return {msg, id, ` + fmt.Sprint(startInFlight) + `} end
  end
  if old == 'completed' or old == 'canceled' then return {msg, id, ` + fmt.Sprint(startEnded) + `} end
  closed = slot_take(KEYS[5], KEYS[2], KEYS[6], id, ARGV[4], cap, taken, ARGV[3])
  local attempt = math.max(1, asynq_retried(msg) + 1 - (tonumber(cur[3]) or 0))
  local bkey = cur[5] and old ~= 'active' and ARGV[7] .. cur[5]
  if bkey and redis.call('EXISTS', bkey) == 0 then bkey = nil end
  mark_active(rkey, attempt + (tonumber(cur[7]) or 0), cur[4], bkey, old, cur[6] and ARGV[8] .. cur[6], id, ARGV[3])
  return {msg, id, attempt}
end
local out = {}
for _ = 1, tonumber(ARGV[9]) do
  -- a take that fills the cap closes the gate: the next finds it paused
  if closed then break end
  local r = take_one()
  if not r then break end
  out[#out + 1] = r[1]
  out[#out + 1] = r[2]
  out[#out + 1] = r[3]
end
return out
`)

// takeFallback is takeScript's code for a task it dequeued but did not
// start.
const takeFallback = -9

// maxHeldPerTake bounds the tasks of paused batches one take call holds, so
// one call stays short; the queue looks empty to that call when it is
// reached, and the next holds on.
const maxHeldPerTake = 1000

// Taken is one task TakeN dequeued.
type Taken struct {
	// Message is the task's asynq message, as asynq's dequeue returns it.
	Message string
	// ID is the task's id.
	ID string
	// Started is false when the start script must still run (a rare path
	// the take leaves to it); else Start says what the start did.
	Started bool
	Start   StartResult
}

// TakeN dequeues up to n tasks of instance's queue for asynq, in queue
// order, with their asynq lease ending at asynqLease, and starts each as
// Begin would (capacity and lease as there). It stops early, and returns
// none when there is nothing to take, at an empty or paused queue or a full
// cap.
func (s *Store) TakeN(ctx context.Context, instance string, asynqLease time.Time, capacity int, lease time.Duration, n int) ([]Taken, error) {
	k := s.Keys(instance)
	now := s.now()
	v, err := takeScript.Run(ctx, s.rdb,
		[]string{k.Pending(), k.Paused(), asynqcompat.ActiveKey(k.Queue), asynqcompat.LeaseKey(k.Queue), k.Slots(), k.Gate(), k.HeldBatches()},
		asynqLease.Unix(), k.AsynqTaskPrefix(), now.UnixMilli(), now.Add(lease).UnixMilli(), capacity,
		k.Record(""), k.Batch(""), k.Dedup(""), max(n, 1)).Slice()
	if err != nil {
		return nil, fmt.Errorf("take tasks of %s: %w", instance, err)
	}
	if len(v)%3 != 0 {
		return nil, fmt.Errorf("take tasks of %s: unexpected reply %v", instance, v)
	}
	ts := make([]Taken, 0, len(v)/3)
	for i := 0; i < len(v); i += 3 {
		msg, _ := v[i].(string)
		id, _ := v[i+1].(string)
		code, _ := v[i+2].(int64)
		t := Taken{Message: msg, ID: id, Started: code != takeFallback}
		if t.Started {
			t.Start = startResult(code)
		}
		ts = append(ts, t)
	}
	return ts, nil
}

// giveBackScript undoes takes whose tasks no handler got: a block take
// (TakeN) dequeues tasks for asks of asynq still to come, and a worker
// that stops, or whose asks went elsewhere, hands the rest back. Each task
// goes back to the head of its queue as asynq's pending task; one the take
// started gives back its slot and is pending again in its record and batch
// (asynq holds it pending, so that is what it is, whatever it was before
// the take). A task asynq no longer holds as active (the reconciler or an
// operator moved it meanwhile) is left alone.
//
// KEYS[1] asynq pending, KEYS[2] asynq active, KEYS[3] asynq lease, KEYS[4]
// semaphore, KEYS[5] asynq paused, KEYS[6] gate channel.
// ARGV[1] asynq task key prefix, ARGV[2] record key prefix, ARGV[3] batch
// key prefix, ARGV[4] now (ns), then per task, last taken first: id and
// the attempt its take started (0: not started by it).
// Returns the number of tasks given back.
var giveBackScript = redis.NewScript(batchLua + notifyLua + gateLua + asynqcompat.RequeueLua + `
local n, freed = 0, false
for i = 5, #ARGV, 2 do
  local id, attempt = ARGV[i], tonumber(ARGV[i + 1])
  if asynq_requeue(KEYS[1], KEYS[2], KEYS[3], ARGV[1] .. id, id, ARGV[4]) then
    n = n + 1
    local rkey = ARGV[2] .. id
    local cur = redis.call('HMGET', rkey, 'state', 'batch', 'abase')
    if attempt > 0 and cur[1] == 'active' and redis.call('ZREM', KEYS[4], id) == 1 then
      freed = true
      local shown = attempt - 1 + (tonumber(cur[3]) or 0)
      if shown > 0 then
        redis.call('HSET', rkey, 'state', 'pending', 'attempts', shown)
      else
        redis.call('HSET', rkey, 'state', 'pending')
        redis.call('HDEL', rkey, 'attempts')
      end
      local bkey = cur[2] and ARGV[3] .. cur[2]
      if bkey and redis.call('EXISTS', bkey) == 1 then batch_move(bkey, 'active', 'pending') end
    end
  end
end
if freed then gate_open(KEYS[5], KEYS[6]) end
return n
`)

// GiveBack hands tasks of instance's queue that TakeN dequeued, and no
// handler got, back to the head of the queue, in the order they were
// taken, and undoes the starts the take did (slot, record, batch). It
// returns how many it gave back.
func (s *Store) GiveBack(ctx context.Context, instance string, ts []Taken) (int, error) {
	if len(ts) == 0 {
		return 0, nil
	}
	k := s.Keys(instance)
	args := make([]any, 0, 4+2*len(ts))
	args = append(args, k.AsynqTaskPrefix(), k.Record(""), k.Batch(""), s.now().UnixNano())
	for i := len(ts) - 1; i >= 0; i-- {
		attempt := 0
		if t := ts[i]; t.Started && t.Start.Code == StartStarted {
			attempt = max(t.Start.Attempt, 1)
		}
		args = append(args, ts[i].ID, attempt)
	}
	n, err := giveBackScript.Run(ctx, s.rdb,
		[]string{k.Pending(), asynqcompat.ActiveKey(k.Queue), asynqcompat.LeaseKey(k.Queue), k.Slots(), k.Paused(), k.Gate()},
		args...).Int()
	if err != nil {
		return 0, fmt.Errorf("give back tasks of %s: %w", instance, err)
	}
	s.announce(ctx, instance)
	return n, nil
}
