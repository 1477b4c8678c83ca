package asynqcompat

import "strconv"

// The Lua fragments below are what wahaq's own scripts (internal/store)
// include to touch an asynq task: each does exactly what the asynq v0.26
// script it names does to asynq's keys, so a script of wahaq's can do
// asynq's step and its own in one round trip. A fragment only defines
// local functions and constants; a script includes the ones it calls.
// TestLuaFragments runs them against asynq's own scripts.

// TaskLua defines, for scripts that read asynq's task hash:
//
//	ASYNQ_PENDING, ASYNQ_SCHEDULED, ASYNQ_RETRY, ASYNQ_ACTIVE, ASYNQ_ARCHIVED
//	asynq_state(tkey)  the task's state; false when there is no task
//	asynq_queued(st)   whether a task in state st waits in a queue
//	                   (pending, scheduled or retrying)
//	asynq_live(st)     whether a task in state st may still run: it exists
//	                   and is neither archived nor completed
const TaskLua = `
local ASYNQ_PENDING, ASYNQ_SCHEDULED, ASYNQ_RETRY, ASYNQ_ACTIVE, ASYNQ_ARCHIVED = '` +
	StatePending + `', '` + StateScheduled + `', '` + StateRetry + `', '` + StateActive + `', '` + StateArchived + `'
local function asynq_state(tkey) return redis.call('HGET', tkey, '` + FieldState + `') end
local function asynq_queued(st) return st == ASYNQ_PENDING or st == ASYNQ_SCHEDULED or st == ASYNQ_RETRY end
local function asynq_live(st) return st and st ~= ASYNQ_ARCHIVED and st ~= '` + StateCompleted + `' end
`

// PushLua defines, for scripts that create or re-queue asynq tasks (as
// asynq's enqueueCmd, scheduleCmd and forwardCmd do); pushing the id on
// the pending list or scheduled set is the caller's, so that a script
// pushes many ids in one command:
//
//	asynq_new(tkey, msg, nowns)        the hash of a new pending task
//	asynq_new_scheduled(tkey, msg)     the hash of a new scheduled task
//	asynq_pending(tkey, nowns)         an existing task's hash made pending
//	                                   (the forwarder's move)
const PushLua = `
local function asynq_new(tkey, msg, nowns)
  redis.call('HSET', tkey, '` + FieldMsg + `', msg, '` + FieldState + `', '` + StatePending + `', '` + FieldPendingSince + `', nowns)
end
local function asynq_new_scheduled(tkey, msg)
  redis.call('HSET', tkey, '` + FieldMsg + `', msg, '` + FieldState + `', '` + StateScheduled + `')
end
local function asynq_pending(tkey, nowns)
  redis.call('HSET', tkey, '` + FieldState + `', '` + StatePending + `', '` + FieldPendingSince + `', nowns)
end
`

// DequeueLua defines asynq_dequeue(pending, active, lease, prefix,
// lease_end): asynq's dequeueCmd on a queue the caller found not paused.
// It returns the id and the message of the task it moved to active, nil
// when the queue is empty.
const DequeueLua = `
local function asynq_dequeue(pending, active, lease, prefix, lease_end)
  local id = redis.call('RPOPLPUSH', pending, active)
  if not id then return nil end
  local tkey = prefix .. id
  redis.call('HSET', tkey, '` + FieldState + `', '` + StateActive + `')
  redis.call('HDEL', tkey, '` + FieldPendingSince + `')
  redis.call('ZADD', lease, lease_end, id)
  return id, redis.call('HGET', tkey, '` + FieldMsg + `')
end
`

// QueueLua defines, for scripts that keep tasks out of asynq's pending
// list for a while and put them back (internal/store's pause.go):
//
//	asynq_head(pending)           the id asynq's dequeue takes next; nil
//	                              when the list is empty
//	asynq_pop_head(pending)       takes that id off the list
//	asynq_push_tail(pending, id)  queues id behind every task queued now,
//	                              as asynq's enqueueCmd does
const QueueLua = `
local function asynq_head(pending)
  local id = redis.call('LINDEX', pending, -1)
  if not id then return nil end
  return id
end
local function asynq_pop_head(pending) return redis.call('RPOP', pending) end
local function asynq_push_tail(pending, id) return redis.call('LPUSH', pending, id) end
`

// RequeueLua defines asynq_requeue(pending, active, lease, tkey, id,
// nowns): asynq's requeueCmd (an active task back to the head of its
// queue, as asynq's server does at shutdown), which also stamps
// pending_since as the forwarder does, so asynq's latency counts the task
// as waiting from now. It returns false, doing nothing, when asynq does not
// hold the task as active.
const RequeueLua = `
local function asynq_requeue(pending, active, lease, tkey, id, nowns)
  if redis.call('LREM', active, 0, id) == 0 then return false end
  redis.call('ZREM', lease, id)
  redis.call('HSET', tkey, '` + FieldState + `', '` + StatePending + `', '` + FieldPendingSince + `', nowns)
  -- the head: asynq's dequeue takes from the right
  redis.call('RPUSH', pending, id)
  return true
end
`

// DoneLua defines asynq_done(active, lease, tkey, day, total, id,
// day_expire): asynq's doneCmd for a task that succeeded (it leaves the
// active list and the lease set, its hash is deleted, it counts as
// processed today and in total; the day's counter expires at day_expire,
// Unix s). It returns false, doing nothing, when asynq does not hold the
// task as active.
//
// asynq's done reads the total first and wraps it to 1 at MaxInt64; at a
// million tasks a second that is 292,000 years away, so this spends no GET
// on it.
const DoneLua = `
local function asynq_done(active, lease, tkey, day, total, id, day_expire)
  if redis.call('LREM', active, 0, id) == 0 then return false end
  redis.call('ZREM', lease, id)
  redis.call('DEL', tkey)
  if redis.call('INCR', day) == 1 then redis.call('EXPIREAT', day, day_expire) end
  redis.call('INCR', total)
  return true
end
`

// RetriedLua defines the Lua function asynq_retried(msg): the Retried
// count of an encoded TaskMessage (0 when absent), for scripts that start
// a task in the step that dequeues it. TestRetriedLua pins it to Encode.
var RetriedLua = `
local function pb_varint(s, i)
  local v, mul = 0, 1
  while true do
    local b = string.byte(s, i)
    if not b then return v, i end
    i = i + 1
    v = v + (b % 128) * mul
    if b < 128 then return v, i end
    mul = mul * 128
  end
end
local function asynq_retried(msg)
  local i, n = 1, #msg
  while i <= n do
    local key
    key, i = pb_varint(msg, i)
    local field, wire = math.floor(key / 8), key % 8
    if wire == 0 then
      local v
      v, i = pb_varint(msg, i)
      if field == ` + strconv.Itoa(fieldRetried) + ` then return v end
    elseif wire == 2 then
      local l
      l, i = pb_varint(msg, i)
      i = i + l
    elseif wire == 1 then
      i = i + 8
    elseif wire == 5 then
      i = i + 4
    else
      return 0
    end
  end
  return 0
end
`
