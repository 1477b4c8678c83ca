package tasks

import "github.com/redis/go-redis/v9"

// Every state change of a task is one of these scripts. Each touches only keys
// that share the queue's hash tag ({<queue>}): asynq's keys for the queue and
// wahaq's record, dedup, batch, semaphore and dead-letter keys. So each change
// is atomic, and valid on Redis Cluster.
//
// Record fields: state instance session batch attempts max enq sched next fin
// outcome err result (times in Unix milliseconds).

// enqueueManyScript creates tasks, each unless its session already has a
// live one (scheduled, pending, active or retrying in asynq), for a group of
// tasks that share an instance, a process time, a batch and a retry limit:
// one script call creates up to enqueueGroup tasks. Most of a single
// script's cost in Redis is the call itself, so a 50,000-session teardown
// runs 500 calls, not 50,000. Ids are random UUIDs (122 random bits) that never collide in
// practice, so no collision check is paid for; the record does not repeat
// the instance (its key names the queue) nor a zero attempt count.
//
// KEYS[1] asynq pending list or scheduled set, KEYS[2] batch, then per task
// j (0-based): KEYS[3+3j] record, KEYS[4+3j] dedup, KEYS[5+3j] asynq task.
// ARGV[1] now (ns), ARGV[2] process-at (Unix s, "0" = now), ARGV[3]
// batch id, ARGV[4] now (ms), ARGV[5] max retries, ARGV[6]
// scheduled-for (ms or ""), ARGV[7] asynq task key prefix, then per task j:
// ARGV[8+3j] id, ARGV[9+3j] asynq message, ARGV[10+3j] session.
// Returns {id1, flag1, id2, flag2, ...}: flag 0 created, 1 deduplicated onto
// the returned live id.
var enqueueManyScript = redis.NewScript(`
local n = (#KEYS - 2) / 3
local state = 'pending'
if ARGV[2] ~= '0' then state = 'scheduled' end
-- the record's fields shared by the group; the session goes last
local rec = {'state', state, 'max', ARGV[5], 'enq', ARGV[4]}
if ARGV[3] ~= '' then rec[#rec + 1] = 'batch'; rec[#rec + 1] = ARGV[3] end
if ARGV[6] ~= '' then rec[#rec + 1] = 'sched'; rec[#rec + 1] = ARGV[6] end
local ns = #rec + 1
rec[ns] = 'session'
local out, ids, created = {}, {}, 0
for j = 0, n - 1 do
  local dedup, id = KEYS[4 + 3*j], ARGV[8 + 3*j]
  -- claim the session; the reply is the previous holder, if any
  local live = redis.call('SET', dedup, id, 'NX', 'GET')
  local dup = false
  if live then
    local st = redis.call('HGET', ARGV[7] .. live, 'state')
    if st and st ~= 'archived' and st ~= 'completed' then
      dup = true
    else
      redis.call('SET', dedup, id) -- a stale claim: the task is gone
    end
  end
  if dup then
    out[#out + 1] = live
    out[#out + 1] = 1
  else
    rec[ns + 1] = ARGV[10 + 3*j]
    redis.call('HSET', KEYS[3 + 3*j], unpack(rec))
    if state == 'pending' then
      redis.call('HSET', KEYS[5 + 3*j], 'msg', ARGV[9 + 3*j], 'state', 'pending', 'pending_since', ARGV[1])
      ids[#ids + 1] = id
    else
      redis.call('HSET', KEYS[5 + 3*j], 'msg', ARGV[9 + 3*j], 'state', 'scheduled')
      ids[#ids + 1] = ARGV[2]
      ids[#ids + 1] = id
    end
    created = created + 1
    out[#out + 1] = id
    out[#out + 1] = 0
  end
end
if #ids > 0 then
  if state == 'pending' then
    redis.call('LPUSH', KEYS[1], unpack(ids))
  else
    redis.call('ZADD', KEYS[1], unpack(ids))
  end
end
if ARGV[3] ~= '' and created > 0 then
  redis.call('HINCRBY', KEYS[2], 'total', created)
  redis.call('HINCRBY', KEYS[2], state, created)
end
return out
`)

// startScript takes a slot of the instance's concurrency cap and marks the
// task active. Slots are leases (sorted-set scores are expiry times), so a
// worker that dies holding one frees it when the lease runs out.
//
// KEYS[1] semaphore, KEYS[2] record, KEYS[3] batch, KEYS[4] dead letters.
// ARGV[1] id, ARGV[2] now (ms), ARGV[3] lease until (ms), ARGV[4] cap (0 =
// none), ARGV[5] attempt, ARGV[6] instance, ARGV[7] session, ARGV[8] batch
// id, ARGV[9] max retries.
// Returns 1 when started, 0 when the cap is reached.
var startScript = redis.NewScript(`
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[2])
local cap = tonumber(ARGV[4])
if cap > 0 and not redis.call('ZSCORE', KEYS[1], ARGV[1]) and redis.call('ZCARD', KEYS[1]) >= cap then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
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
    if oo then redis.call('HINCRBY', KEYS[3], 'o:' .. oo, -1) end
  end
end
if batch and old ~= 'active' then
  redis.call('HINCRBY', KEYS[3], old, -1)
  redis.call('HINCRBY', KEYS[3], 'active', 1)
end
return 1
`)

// batchDoneLua sets the batch to expire once every task in it is final.
const batchDoneLua = `
local function batch_done(key, ttl)
  local v = redis.call('HMGET', key, 'total', 'completed', 'dead', 'canceled', 'open')
  if v[5] then return end
  local fin = (tonumber(v[2]) or 0) + (tonumber(v[3]) or 0) + (tonumber(v[4]) or 0)
  if fin >= (tonumber(v[1]) or 0) then
    redis.call('EXPIRE', key, ttl)
  end
end
`

// finishScript records the end of an attempt: retrying, completed or dead.
//
// KEYS[1] semaphore, KEYS[2] record, KEYS[3] batch, KEYS[4] dedup, KEYS[5]
// dead letters.
// ARGV[1] id, ARGV[2] new state, ARGV[3] outcome ("" when retrying), ARGV[4]
// now (ms), ARGV[5] next attempt (ms), ARGV[6] last error, ARGV[7] result
// JSON, ARGV[8] result TTL (s), ARGV[9] batch id.
var finishScript = redis.NewScript(batchDoneLua + `
redis.call('ZREM', KEYS[1], ARGV[1])
local old = redis.call('HGET', KEYS[2], 'state')
-- set only when the task was already final: the same Finish applied twice
-- (its reply lost in a Redis crash, then sent again) must count once
local oldOutcome = redis.call('HGET', KEYS[2], 'outcome')
local new = ARGV[2]
redis.call('HSET', KEYS[2], 'state', new)
if ARGV[6] ~= '' then redis.call('HSET', KEYS[2], 'err', ARGV[6]) else redis.call('HDEL', KEYS[2], 'err') end
if new == 'retrying' then
  redis.call('HSET', KEYS[2], 'next', ARGV[5])
else
  redis.call('HSET', KEYS[2], 'outcome', ARGV[3], 'fin', ARGV[4])
  redis.call('HDEL', KEYS[2], 'next')
  if ARGV[7] ~= '' then redis.call('HSET', KEYS[2], 'result', ARGV[7]) end
  if redis.call('GET', KEYS[4]) == ARGV[1] then redis.call('DEL', KEYS[4]) end
  if new == 'completed' then
    redis.call('EXPIRE', KEYS[2], ARGV[8])
    redis.call('ZREM', KEYS[5], ARGV[1])
  else
    redis.call('PERSIST', KEYS[2])
    redis.call('ZADD', KEYS[5], ARGV[4], ARGV[1])
  end
end
if ARGV[9] ~= '' and old and redis.call('EXISTS', KEYS[3]) == 1 then
  if old ~= new then
    redis.call('HINCRBY', KEYS[3], old, -1)
    redis.call('HINCRBY', KEYS[3], new, 1)
  end
  if new ~= 'retrying' then
    if oldOutcome and (old == 'completed' or old == 'dead') then
      redis.call('HINCRBY', KEYS[3], 'o:' .. oldOutcome, -1)
    end
    redis.call('HINCRBY', KEYS[3], 'o:' .. ARGV[3], 1)
    batch_done(KEYS[3], ARGV[8])
  end
end
return 1
`)

// cancelScript cancels a task that has not started.
//
// KEYS[1] record, KEYS[2] asynq task, KEYS[3] asynq pending, KEYS[4] asynq
// scheduled, KEYS[5] asynq retry, KEYS[6] batch, KEYS[7] dedup.
// ARGV[1] id, ARGV[2] now (ms), ARGV[3] result TTL (s).
// Returns 1 canceled, 0 not found, -1 already started or finished.
var cancelScript = redis.NewScript(batchDoneLua + `
local st = redis.call('HGET', KEYS[1], 'state')
if not st then return 0 end
if st ~= 'scheduled' and st ~= 'pending' then return -1 end
local ast = redis.call('HGET', KEYS[2], 'state')
if ast == 'pending' then
  redis.call('LREM', KEYS[3], 0, ARGV[1])
elseif ast == 'scheduled' then
  redis.call('ZREM', KEYS[4], ARGV[1])
elseif ast == 'retry' then
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
  redis.call('HINCRBY', KEYS[6], st, -1)
  redis.call('HINCRBY', KEYS[6], 'canceled', 1)
  batch_done(KEYS[6], ARGV[3])
end
return 1
`)

// requeueScript puts a dead task back in the queue with fresh retries, under
// the same id.
//
// KEYS[1] record, KEYS[2] asynq task, KEYS[3] asynq archived, KEYS[4] asynq
// pending, KEYS[5] dead letters, KEYS[6] dedup, KEYS[7] batch.
// ARGV[1] id, ARGV[2] asynq message, ARGV[3] now (ns), ARGV[4] now (ms),
// ARGV[5] asynq task key prefix, ARGV[6] result TTL (s).
// Returns {1, id} requeued, {0, ""} not dead (or unknown), {2, live id} when
// the session has another live task: the entry leaves the dead-letter queue
// and is marked canceled in favour of that task; {3, ""} when asynq has not
// yet archived it (a moment after it died): try again.
var requeueScript = redis.NewScript(`
local st = redis.call('HGET', KEYS[1], 'state')
if st ~= 'dead' then return {0, ''} end
-- the worker that declared it dead has not handed it back to asynq yet
if redis.call('HGET', KEYS[2], 'state') == 'active' then return {3, ''} end
local outcome = redis.call('HGET', KEYS[1], 'outcome')
local b = redis.call('HGET', KEYS[1], 'batch')
local batch = b and redis.call('EXISTS', KEYS[7]) == 1
local live = redis.call('GET', KEYS[6])
if live and live ~= ARGV[1] then
  local lst = redis.call('HGET', ARGV[5] .. live, 'state')
  if lst and lst ~= 'archived' and lst ~= 'completed' then
    redis.call('ZREM', KEYS[5], ARGV[1])
    -- and leaves asynq's archive, or asynq's tools could still run it
    if redis.call('HGET', KEYS[2], 'state') == 'archived' then redis.call('DEL', KEYS[2]) end
    redis.call('ZREM', KEYS[3], ARGV[1])
    redis.call('HSET', KEYS[1], 'state', 'canceled', 'err', 'superseded by live task ' .. live)
    redis.call('EXPIRE', KEYS[1], ARGV[6])
    if batch then
      redis.call('HINCRBY', KEYS[7], 'dead', -1)
      redis.call('HINCRBY', KEYS[7], 'canceled', 1)
    end
    return {2, live}
  end
end
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('HSET', KEYS[2], 'msg', ARGV[2], 'state', 'pending', 'pending_since', ARGV[3])
redis.call('LPUSH', KEYS[4], ARGV[1])
redis.call('HSET', KEYS[1], 'state', 'pending', 'attempts', 0)
redis.call('HDEL', KEYS[1], 'outcome', 'fin', 'result', 'err', 'next', 'sched')
redis.call('PERSIST', KEYS[1])
redis.call('ZREM', KEYS[5], ARGV[1])
redis.call('SET', KEYS[6], ARGV[1])
if batch then
  redis.call('PERSIST', KEYS[7])
  redis.call('HINCRBY', KEYS[7], 'dead', -1)
  redis.call('HINCRBY', KEYS[7], 'pending', 1)
  if outcome then redis.call('HINCRBY', KEYS[7], 'o:' .. outcome, -1) end
end
return {1, ARGV[1]}
`)

// purgeScript deletes a dead task for good.
//
// KEYS[1] record, KEYS[2] asynq task, KEYS[3] asynq archived, KEYS[4] dead
// letters. ARGV[1] id. Returns 1 purged, 0 not a dead task.
var purgeScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'state') ~= 'dead' then return 0 end
redis.call('DEL', KEYS[1])
if redis.call('HGET', KEYS[2], 'state') == 'archived' then redis.call('DEL', KEYS[2]) end
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
return 1
`)
