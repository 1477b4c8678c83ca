// Package asynqcompat owns everything wahaq knows of asynq v0.26's private
// Redis layout and scripts: key names, the task hash's fields and states,
// the TaskMessage encoding, the Lua fragments wahaq's scripts include to
// push, dequeue, requeue, finish or read an asynq task, the recognition of
// asynq's queue scripts, and the client hook that answers them (the fast
// path). No other package spells an asynq key, field or state.
//
// Why wahaq depends on asynq's internals at all: asynq's Client makes one
// round trip per Enqueue and cannot take part in a script of ours, so a
// 50,000-session teardown through it costs 50,000 round trips and leaves a
// window where wahaq's record and asynq's task disagree; and asynq's
// dequeue, start and done cost three round trips per task where one does.
// The tests pin all of it against asynq's own Client, Inspector and
// Server, so an asynq upgrade that changes any of it fails here: change
// this package, run its suite.
package asynqcompat

import (
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// AllQueues is the Redis set in which asynq lists every queue name.
const AllQueues = "asynq:queues"

// Fields of asynq's task hash (TaskKey).
const (
	// FieldMsg is the encoded TaskMessage.
	FieldMsg = "msg"
	// FieldState is the task's state, one of the State constants.
	FieldState = "state"
	// FieldPendingSince is when a pending task became pending (Unix ns).
	FieldPendingSince = "pending_since"
)

// States of an asynq task (FieldState).
const (
	StatePending   = "pending"
	StateActive    = "active"
	StateScheduled = "scheduled"
	StateRetry     = "retry"
	StateArchived  = "archived"
	StateCompleted = "completed"
)

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

// QueuesPrefix is the start of every asynq key of every queue whose name
// starts with prefix (a SCAN for it and "*" finds them all).
func QueuesPrefix(prefix string) string { return "asynq:{" + prefix }

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
	// LeaseEnd is, for an OpDequeue, when the lease of the task it
	// dequeues ends (its ARGV[1], Unix s); zero when it is not an int64.
	LeaseEnd int64
	// Digest is the SHA1 of the script's source in hex: the digest an
	// EVALSHA carries, or the digest of an EVAL's source.
	Digest string
}

// QueueScript recognizes, in the arguments of a Redis command, asynq's
// dequeue, forward or done of one queue (run as EVALSHA or EVAL) by its
// keys, and says which script it is by its digest (Call.Digest), which the
// Fence compares with the source it knows. It lets a client hook answer
// them without a round trip when the answer is known: a queue known to be
// paused, a task already settled. TestQueueScriptsAreRecognized pins it to
// asynq's real server.
func QueueScript(args []any) Call {
	if len(args) < 5 {
		return Call{}
	}
	if name, _ := args[0].(string); name != "evalsha" && name != "eval" {
		return Call{}
	}
	c := recognize(args)
	if c.Op != OpNone {
		c.Digest, _ = args[1].(string)
		if args[0] == "eval" {
			c.Digest = Digest(c.Digest)
		}
	}
	return c
}

// recognize tells asynq's queue scripts apart by their keys and their
// number of arguments, which no other script of asynq's or wahaq's shares
// (asynq's Inspector runs a script on the keys of the forwarder's, with one
// argument instead of four: an operator's "run all scheduled").
func recognize(args []any) Call {
	n, _ := args[2].(int)
	first, _ := args[3].(string)
	second, _ := args[4].(string)
	if !strings.HasPrefix(first, "asynq:{") || len(args) != 3+n+argvLen[n] {
		return Call{}
	}
	switch n {
	case 4:
		q, ok := strings.CutSuffix(first, "}:pending")
		if ok && second == q+"}:paused" {
			c := Call{Op: OpDequeue, Paused: second}
			c.LeaseEnd, _ = args[7].(int64)
			return c
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
		if !ok || second != q+"}:lease" {
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

// argvLen is the number of ARGV of asynq's dequeue (4 keys: lease end, task
// key prefix), forward (2 keys: now, task key prefix, now in ns, group key
// prefix) and done (5 keys: id, the day counter's expiry, MaxInt64), by
// their number of keys.
var argvLen = map[int]int{4: 2, 2: 4, 5: 3}
