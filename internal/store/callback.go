package store

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wahaq/wahaq/internal/asynqcompat"
	"github.com/wahaq/wahaq/internal/base"
)

// Fields of a task record or a batch hash that hold its completion
// callback. FieldCallbackURL is written at enqueue; the others by the
// script that makes the task final (the batch done) and by the delivery.
const (
	FieldCallbackURL      = "cb"
	FieldCallbackID       = "cb_id"    // webhook-id: the delivery's asynq task id
	FieldCallbackState    = "cb_state" // CallbackPending, CallbackDelivered or CallbackFailed
	FieldCallbackAttempts = "cb_n"
	FieldCallbackStatus   = "cb_status" // the receiver's last HTTP status
	FieldCallbackError    = "cb_err"
	FieldCallbackSince    = "cb_at" // when the delivery was enqueued (Unix ns)
)

// States of a callback delivery.
const (
	CallbackPending   = "pending"
	CallbackDelivered = "delivered"
	CallbackFailed    = "failed"
)

// callbackTimeout is asynq's per-attempt timeout of a delivery task; one
// POST is bounded tighter by the callback client.
const callbackTimeout = 60

// callbackLua enqueues callback deliveries and publishes completions, inside
// the scripts that make a task final or a batch done. Both touch only keys
// of the queue's hash tag: the delivery is an asynq task of type
// wahaq:callback in the same queue, the channel is a shard channel in the
// same slot.
//
// cb_enqueue(hash, tkey, pending, id, msg, nowns, cb) enqueues delivery id
// when the record (task or batch hash) names a callback URL; cb is the
// record's "cb" field when the script read it already (false when absent),
// nil to have it read.
// It includes notifyLua, whose notify(channel, what) publishes "t:<id>" or
// "b:<id>" to long-poll waiters.
// batch_finished(key, tkey, pending, id, msg, nowns, channel, batchid) is
// called when batch_done reports the batch done: one delivery per batch.
const callbackLua = notifyLua + asynqcompat.PushLua + `
local function cb_enqueue(hash, tkey, pending, id, msg, nowns, cb)
  if msg == '' then return end
  if cb == nil then cb = redis.call('HGET', hash, 'cb') end
  if not cb then return end
  asynq_new(tkey, msg, nowns)
  redis.call('LPUSH', pending, id)
  redis.call('HSET', hash, 'cb_id', id, 'cb_state', 'pending', 'cb_n', 0, 'cb_at', nowns)
  redis.call('HDEL', hash, 'cb_status', 'cb_err')
end
local function batch_finished(key, tkey, pending, id, msg, nowns, channel, batchid)
  if not redis.call('HGET', key, 'cb_id') then
    cb_enqueue(key, tkey, pending, id, msg, nowns)
  end
  notify(channel, 'b:' .. batchid)
end
`

// callbackCall is the extra keys and arguments a finishing script takes:
// KEYS asynq task of the task's delivery, asynq task of the batch's
// delivery, the completion channel; ARGV the two delivery ids and messages
// ("" when there is no batch) and now (ns).
type callbackCall struct {
	keys []string
	args []any
}

// callbackArgs prepares both possible deliveries. The messages are built
// even when no callback is set: the script knows, Go does not, and building
// one costs a microsecond.
func (s *Store) callbackArgs(k Keys, instance, taskID, batchID string) callbackCall {
	tid := base.NewID()
	tmsg := callbackMessage(k, base.CallbackPayload{Kind: base.CallbackTask, ID: taskID, Instance: instance}, tid)
	bid, bmsg := "", []byte(nil)
	if batchID != "" {
		bid = base.NewID()
		bmsg = callbackMessage(k, base.CallbackPayload{Kind: base.CallbackBatch, ID: batchID, Instance: instance}, bid)
	}
	return callbackCall{
		keys: []string{k.AsynqTask(tid), k.AsynqTask(orNone(bid)), k.Done()},
		args: []any{tid, tmsg, bid, bmsg, s.now().UnixNano()},
	}
}

func orNone(id string) string {
	if id == "" {
		return "none"
	}
	return id
}

func callbackMessage(k Keys, p base.CallbackPayload, id string) []byte {
	return asynqcompat.Encode(asynqcompat.Message{Type: base.TypeCallback, Payload: p.Encode(), ID: id, Queue: k.Queue,
		Retry: asynqMaxRetry, TimeoutSeconds: callbackTimeout})
}

// Callback is the delivery state of a task's or batch's callback.
type Callback struct {
	URL, ID, State   string
	Attempts, Status int
	LastError        string
	// Since is when the delivery was enqueued (the task became final).
	Since time.Time
}

func decodeCallback(m map[string]string) *Callback {
	if m[FieldCallbackURL] == "" {
		return nil
	}
	c := &Callback{URL: m[FieldCallbackURL], ID: m[FieldCallbackID], State: m[FieldCallbackState], LastError: m[FieldCallbackError]}
	c.Attempts, _ = strconv.Atoi(m[FieldCallbackAttempts])
	c.Status, _ = strconv.Atoi(m[FieldCallbackStatus])
	if ns, err := strconv.ParseInt(m[FieldCallbackSince], 10, 64); err == nil {
		c.Since = time.Unix(0, ns).UTC()
	}
	return c
}

// callbackTarget is the hash holding the callback of p.
func (s *Store) callbackTarget(p base.CallbackPayload) string {
	k := s.Keys(p.Instance)
	if p.Kind == base.CallbackBatch {
		return k.Batch(p.ID)
	}
	return k.Record(p.ID)
}

// recordCallbackScript writes the result of one delivery attempt, if the
// hash still exists and the delivery is still the current one (a task
// requeued and finished again has a new one).
//
// KEYS[1] task record or batch hash. ARGV[1] delivery id, ARGV[2] state,
// ARGV[3] attempts, ARGV[4] HTTP status (0: none), ARGV[5] error.
// Returns 1 when written, 0 when the hash or delivery is gone.
var recordCallbackScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'cb_id') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'cb_state', ARGV[2], 'cb_n', ARGV[3], 'cb_status', ARGV[4])
if ARGV[5] ~= '' then redis.call('HSET', KEYS[1], 'cb_err', ARGV[5]) else redis.call('HDEL', KEYS[1], 'cb_err') end
return 1
`)

// CallbackTarget reads the callback of the task or batch p names: its URL
// and current delivery. It returns an error wrapping base.ErrNotFound when
// the record is gone (expired) or names no callback.
func (s *Store) CallbackTarget(ctx context.Context, p base.CallbackPayload) (*Callback, error) {
	m, err := s.rdb.HGetAll(ctx, s.callbackTarget(p)).Result()
	if err != nil {
		return nil, fmt.Errorf("read callback of %s %s: %w", p.Kind, p.ID, err)
	}
	c := decodeCallback(m)
	if c == nil {
		return nil, fmt.Errorf("callback of %s %s: %w", p.Kind, p.ID, base.ErrNotFound)
	}
	return c, nil
}

// RecordCallback writes the outcome of a delivery attempt. It reports false
// when the record is gone or a newer delivery replaced this one.
func (s *Store) RecordCallback(ctx context.Context, p base.CallbackPayload, deliveryID string, c Callback) (bool, error) {
	n, err := recordCallbackScript.Run(ctx, s.rdb, []string{s.callbackTarget(p)},
		deliveryID, c.State, c.Attempts, c.Status, c.LastError).Int()
	if err != nil {
		return false, fmt.Errorf("record callback of %s %s: %w", p.Kind, p.ID, err)
	}
	return n == 1, nil
}
