// Package asynqwire writes tasks into Redis exactly as asynq v0.26 does, so
// that wahaq can enqueue thousands of tasks in one pipeline and in the same
// Lua script as its own bookkeeping.
//
// asynq's Client makes one round trip per Enqueue and cannot take part in a
// script of ours, so a 50,000-session teardown through it costs 50,000 round
// trips and leaves a window where wahaq's record and asynq's task disagree.
// This package encodes asynq's TaskMessage (its protobuf wire format) and
// names asynq's keys; the tests pin both against asynq's own Inspector and
// Server, so an asynq upgrade that changes them fails loudly.
package asynqwire

import (
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// AllQueues is the Redis set in which asynq lists every queue name.
const AllQueues = "asynq:queues"

// Message is the subset of asynq's TaskMessage that wahaq writes.
type Message struct {
	// Type is the task type name, e.g. "wahaq:logout".
	Type string
	// Payload is the task payload.
	Payload []byte
	// ID is the task id, unique within its queue.
	ID string
	// Queue is the asynq queue name.
	Queue string
	// Retry is the maximum number of retries asynq allows.
	Retry int32
	// Retried is how many failures asynq has counted.
	Retried int32
	// TimeoutSeconds is the per-attempt timeout; zero means none.
	TimeoutSeconds int64
}

// Field numbers of asynq's TaskMessage (internal/proto/asynq.proto, v0.26).
const (
	fieldType    = 1
	fieldPayload = 2
	fieldID      = 3
	fieldQueue   = 4
	fieldRetry   = 5
	fieldRetried = 6
	fieldTimeout = 8
)

// Encode returns m in asynq's wire format. proto3 omits zero values, and so
// does this encoder, so the bytes equal what asynq itself writes.
func Encode(m Message) []byte {
	return AppendEncode(make([]byte, 0, 32+len(m.Type)+len(m.Payload)+len(m.ID)+len(m.Queue)), m)
}

// AppendEncode appends m in asynq's wire format to b.
func AppendEncode(b []byte, m Message) []byte {
	if m.Type != "" {
		b = protowire.AppendTag(b, fieldType, protowire.BytesType)
		b = protowire.AppendString(b, m.Type)
	}
	if len(m.Payload) > 0 {
		b = protowire.AppendTag(b, fieldPayload, protowire.BytesType)
		b = protowire.AppendBytes(b, m.Payload)
	}
	if m.ID != "" {
		b = protowire.AppendTag(b, fieldID, protowire.BytesType)
		b = protowire.AppendString(b, m.ID)
	}
	if m.Queue != "" {
		b = protowire.AppendTag(b, fieldQueue, protowire.BytesType)
		b = protowire.AppendString(b, m.Queue)
	}
	if m.Retry != 0 {
		b = protowire.AppendTag(b, fieldRetry, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(int64(m.Retry)))
	}
	if m.Retried != 0 {
		b = protowire.AppendTag(b, fieldRetried, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(int64(m.Retried)))
	}
	if m.TimeoutSeconds != 0 {
		b = protowire.AppendTag(b, fieldTimeout, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(m.TimeoutSeconds))
	}
	return b
}

// QueuePrefix returns the prefix of every asynq key of queue q. The braces
// are a Redis Cluster hash tag: all of a queue's keys live in one slot, and
// wahaq's own keys for the queue use the same tag so one script can touch both.
func QueuePrefix(q string) string { return "asynq:{" + q + "}:" }

// TaskKey is the hash holding one task's message and state.
func TaskKey(q, id string) string { return QueuePrefix(q) + "t:" + id }

// TaskKeyPrefix is TaskKey without the id.
func TaskKeyPrefix(q string) string { return QueuePrefix(q) + "t:" }

// PendingKey is the list of pending task ids.
func PendingKey(q string) string { return QueuePrefix(q) + "pending" }

// ActiveKey is the list of active task ids.
func ActiveKey(q string) string { return QueuePrefix(q) + "active" }

// ScheduledKey is the sorted set of scheduled task ids by process time.
func ScheduledKey(q string) string { return QueuePrefix(q) + "scheduled" }

// RetryKey is the sorted set of task ids waiting to be retried.
func RetryKey(q string) string { return QueuePrefix(q) + "retry" }

// ArchivedKey is the sorted set of archived (dead) task ids.
func ArchivedKey(q string) string { return QueuePrefix(q) + "archived" }

// PausedKey is the key whose existence makes asynq's dequeue skip queue q
// (an operator's pause, or wahaq's gate).
func PausedKey(q string) string { return QueuePrefix(q) + "paused" }

// LeaseKey is the sorted set of active task ids by lease expiry.
func LeaseKey(q string) string { return QueuePrefix(q) + "lease" }

// ProcessedKey counts the tasks of q processed on t's day (UTC); it expires
// StatsTTL after it was created.
func ProcessedKey(q string, t time.Time) string {
	return QueuePrefix(q) + "processed:" + t.UTC().Format("2006-01-02")
}

// ProcessedTotalKey counts every task of q ever processed; it wraps to 1
// past the largest int64.
func ProcessedTotalKey(q string) string { return QueuePrefix(q) + "processed" }

// StatsTTL is how long asynq keeps a day's counters.
const StatsTTL = 90 * 24 * time.Hour

// Op is one of asynq's queue scripts that a client hook can recognize.
type Op int

// The recognized scripts.
const (
	// OpNone is any other command.
	OpNone Op = iota
	// OpDequeue is asynq's dequeue of one queue (internal/rdb's
	// dequeueCmd: keys pending, paused, active, lease). Its "queue empty"
	// reply is redis.Nil.
	OpDequeue
	// OpForward is asynq's forwarder moving due scheduled or retrying
	// tasks of one queue to pending (forwardCmd: keys scheduled or retry,
	// pending). Its reply is the number of tasks moved.
	OpForward
	// OpDone is asynq's removal of a task that succeeded (doneCmd: keys
	// active, lease, the task, the day's and the total processed
	// counters; the task id first of its arguments). Its reply is "OK".
	OpDone
)

// Call is what QueueScript recognized in a command.
type Call struct {
	Op Op
	// Paused is the queue's paused key.
	Paused string
	// TaskID is the task of an OpDone.
	TaskID string
}

// QueueScript recognizes, in the arguments of a Redis command, asynq's
// dequeue, forward or done of one queue (run as EVALSHA or EVAL). It lets a
// client hook answer them without a round trip when the answer is known: a
// queue known to be paused, a task already settled.
// TestQueueScriptsAreRecognized pins it to asynq's real server.
func QueueScript(args []any) Call {
	if len(args) < 5 {
		return Call{}
	}
	if name, _ := args[0].(string); name != "evalsha" && name != "eval" {
		return Call{}
	}
	n, _ := args[2].(int)
	first, _ := args[3].(string)
	second, _ := args[4].(string)
	if !strings.HasPrefix(first, "asynq:{") {
		return Call{}
	}
	switch n {
	case 4:
		q, ok := strings.CutSuffix(first, "}:pending")
		if ok && second == q+"}:paused" && len(args) >= 7 {
			return Call{Op: OpDequeue, Paused: second}
		}
	case 2:
		q, ok := strings.CutSuffix(first, "}:scheduled")
		if !ok {
			q, ok = strings.CutSuffix(first, "}:retry")
		}
		if ok && second == q+"}:pending" {
			return Call{Op: OpForward, Paused: q + "}:paused"}
		}
	case 5:
		q, ok := strings.CutSuffix(first, "}:active")
		if !ok || second != q+"}:lease" || len(args) < 9 {
			return Call{}
		}
		id, _ := args[8].(string)
		task, _ := args[5].(string)
		total, _ := args[7].(string)
		if id != "" && task == q+"}:t:"+id && total == q+"}:processed" {
			return Call{Op: OpDone, Paused: q + "}:paused", TaskID: id}
		}
	}
	return Call{}
}

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
