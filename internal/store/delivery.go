package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wahaq/wahaq/internal/base"
)

// Callback deliveries live apart from asynq's queues, so that no receiver,
// however slow, holds a handler slot a logout needs: the finishing scripts
// (callbackLua) write each delivery as a hash (Keys.Delivery: "ref" what
// ended, "t:<id>" or "b:<id>"; "url"; "at" when it ended, ns; "sub" the
// subscription, if it came from one; and after attempts "n", "status",
// "err") and add its id to the queue's delivery set (Keys.Deliveries)
// scored by when it is due. Workers' delivery loops take due deliveries
// with a lease (TakeDeliveries: the score becomes the lease's end, so a
// worker killed mid-POST leaves it due again when the lease ends), post
// them, and record the attempt (RecordDelivery): delivered and failed
// deliveries leave the set and their hash is deleted; a retry is scored by
// its next attempt. The primary delivery of a task or batch (its "cb_id")
// also writes its state into the record, where GET /v1/tasks/{id} shows it.

// Delivery is one callback delivery as a delivery loop takes it.
type Delivery struct {
	// ID is the webhook-id: the same on every retry.
	ID string
	// Kind is base.CallbackTask or base.CallbackBatch, and Ref the task or
	// batch id.
	Kind, Ref string
	// URL is the receiver.
	URL string
	// Subscription is the subscription the delivery is for ("" for a
	// request's callback_url).
	Subscription string
	// Attempts is how many POSTs were made before this one.
	Attempts int
	// Since is when the task ended (the batch became done).
	Since time.Time
}

// takeDeliveriesScript takes up to ARGV[2] due deliveries, leasing each
// until ARGV[3]. A member whose hash is gone (never in practice: both are
// written and removed together) is dropped.
//
// KEYS[1] delivery set. ARGV[1] now (ms), ARGV[2] how many, ARGV[3] lease
// end (ms), ARGV[4] the delivery key prefix (Keys.Delivery without the id).
// Returns {id, fields (HGETALL), id, fields, ...}.
var takeDeliveriesScript = redis.NewScript(`
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for _, id in ipairs(due) do
  local h = redis.call('HGETALL', ARGV[4] .. id)
  if #h == 0 then
    redis.call('ZREM', KEYS[1], id)
  else
    redis.call('ZADD', KEYS[1], ARGV[3], id)
    out[#out + 1] = id
    out[#out + 1] = h
  end
end
return out
`)

// TakeDeliveries leases up to n due deliveries of instance's queue for
// lease: until it ends, no other loop takes them.
func (s *Store) TakeDeliveries(ctx context.Context, instance string, n int, lease time.Duration) ([]Delivery, error) {
	k := s.Keys(instance)
	now := s.now()
	v, err := takeDeliveriesScript.Run(ctx, s.rdb, []string{k.Deliveries()},
		now.UnixMilli(), n, now.Add(lease).UnixMilli(), k.Delivery("")).Slice()
	if err != nil {
		return nil, fmt.Errorf("take deliveries of %s: %w", instance, err)
	}
	out := make([]Delivery, 0, len(v)/2)
	for i := 0; i+1 < len(v); i += 2 {
		id, _ := v[i].(string)
		fields, _ := v[i+1].([]any)
		m := make(map[string]string, len(fields)/2)
		for j := 0; j+1 < len(fields); j += 2 {
			key, _ := fields[j].(string)
			val, _ := fields[j+1].(string)
			m[key] = val
		}
		out = append(out, decodeDelivery(id, m))
	}
	return out, nil
}

func decodeDelivery(id string, m map[string]string) Delivery {
	d := Delivery{ID: id, URL: m["url"], Subscription: m["sub"]}
	kind, ref, _ := strings.Cut(m["ref"], ":")
	d.Kind, d.Ref = base.CallbackTask, ref
	if kind == "b" {
		d.Kind = base.CallbackBatch
	}
	d.Attempts, _ = strconv.Atoi(m["n"])
	if ns, err := strconv.ParseInt(m["at"], 10, 64); err == nil {
		d.Since = time.Unix(0, ns).UTC()
	}
	return d
}

// recordDeliveryScript writes one attempt of a delivery. A final state
// (delivered, failed) removes the delivery; pending scores it by its next
// attempt. The task's or batch's record shows the attempt when the delivery
// is its primary one.
//
// KEYS[1] delivery set, KEYS[2] delivery, KEYS[3] task record or batch hash.
// ARGV[1] id, ARGV[2] state, ARGV[3] attempts, ARGV[4] HTTP status (0:
// none), ARGV[5] error, ARGV[6] next attempt (ms; pending only).
// Returns 1, or 0 when the delivery is gone.
var recordDeliveryScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 0
end
if ARGV[2] == 'pending' then
  redis.call('ZADD', KEYS[1], ARGV[6], ARGV[1])
  redis.call('HSET', KEYS[2], 'n', ARGV[3], 'status', ARGV[4], 'err', ARGV[5])
else
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('DEL', KEYS[2])
end
if redis.call('HGET', KEYS[3], 'cb_id') == ARGV[1] and redis.call('HEXISTS', KEYS[3], 'cb') == 1 then
  redis.call('HSET', KEYS[3], 'cb_state', ARGV[2], 'cb_n', ARGV[3], 'cb_status', ARGV[4])
  if ARGV[5] ~= '' then redis.call('HSET', KEYS[3], 'cb_err', ARGV[5]) else redis.call('HDEL', KEYS[3], 'cb_err') end
end
return 1
`)

// RecordDelivery writes the outcome of one attempt of d: c.State
// CallbackDelivered or CallbackFailed ends it; CallbackPending retries it
// at next. It reports false when the delivery was gone.
func (s *Store) RecordDelivery(ctx context.Context, instance string, d Delivery, c Callback, next time.Time) (bool, error) {
	k := s.Keys(instance)
	target := k.Record(d.Ref)
	if d.Kind == base.CallbackBatch {
		target = k.Batch(d.Ref)
	}
	n, err := recordDeliveryScript.Run(ctx, s.rdb, []string{k.Deliveries(), k.Delivery(d.ID), target},
		d.ID, c.State, c.Attempts, c.Status, c.LastError, next.UnixMilli()).Int()
	if err != nil {
		return false, fmt.Errorf("record delivery %s: %w", d.ID, err)
	}
	return n == 1, nil
}

// DeferDelivery makes a taken delivery due again at at without an attempt:
// its receiver's breaker is open, or the loop is stopping. A delivery that
// is gone stays gone (XX).
func (s *Store) DeferDelivery(ctx context.Context, instance, id string, at time.Time) error {
	k := s.Keys(instance)
	if err := s.rdb.ZAddXX(ctx, k.Deliveries(), redis.Z{Score: float64(at.UnixMilli()), Member: id}).Err(); err != nil {
		return fmt.Errorf("defer delivery %s: %w", id, err)
	}
	return nil
}

// adoptCallbackScript moves the delivery of an asynq wahaq:callback task,
// written by a wahaq from before the delivery set, into the delivery set:
// once, and only while it is the record's current delivery.
//
// KEYS[1] task record or batch hash, KEYS[2] delivery set, KEYS[3] the
// delivery. ARGV[1] delivery id, ARGV[2] ref ("t:<id>"/"b:<id>"), ARGV[3]
// now (ms).
// Returns 1 when adopted, 0 when superseded or gone.
var adoptCallbackScript = redis.NewScript(`
local cur = redis.call('HMGET', KEYS[1], 'cb', 'cb_id', 'cb_at')
if not cur[1] or cur[2] ~= ARGV[1] then return 0 end
if redis.call('EXISTS', KEYS[3]) == 1 then return 1 end
redis.call('HSET', KEYS[3], 'ref', ARGV[2], 'url', cur[1], 'at', cur[3] or '0')
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
return 1
`)

// AdoptCallback moves the delivery id of a legacy asynq wahaq:callback task
// (kind "task" or "batch", ref its id) into the delivery set. It reports
// whether the delivery is there (false: a newer one replaced it, or the
// record is gone).
func (s *Store) AdoptCallback(ctx context.Context, instance, kind, ref, id string) (bool, error) {
	k := s.Keys(instance)
	target, r := k.Record(ref), "t:"+ref
	if kind == base.CallbackBatch {
		target, r = k.Batch(ref), "b:"+ref
	}
	n, err := adoptCallbackScript.Run(ctx, s.rdb, []string{target, k.Deliveries(), k.Delivery(id)}, id, r, s.now().UnixMilli()).Int()
	if err != nil && !errors.Is(err, redis.Nil) {
		return false, fmt.Errorf("adopt callback %s: %w", id, err)
	}
	return n == 1, nil
}

// PendingDeliveries counts the deliveries of instance's queue not yet
// delivered or failed (due, leased or waiting for a retry).
func (s *Store) PendingDeliveries(ctx context.Context, instance string) (int64, error) {
	n, err := s.rdb.ZCard(ctx, s.Keys(instance).Deliveries()).Result()
	if err != nil {
		return 0, fmt.Errorf("count deliveries of %s: %w", instance, err)
	}
	return n, nil
}
