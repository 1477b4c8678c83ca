package store

import (
	"strconv"
	"strings"
	"time"

	"github.com/wahaq/wahaq/internal/base"
)

// Fields of a task record or a batch hash that hold its completion
// callback. FieldCallbackURL is written at enqueue, FieldCallbackMore when
// a request joins the task; the others (the state of the delivery to
// FieldCallbackURL) by the script that makes the task final (the batch
// done) and by the delivery.
const (
	FieldCallbackURL      = "cb"
	FieldCallbackMore     = "cbx"      // the joined requests' URLs, newline-separated
	FieldCallbackID       = "cb_id"    // webhook-id of the delivery to FieldCallbackURL
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

// MaxCallbacks is how many callback URLs one task may hold: the one of the
// request that created it and those of the requests that joined it
// (deduplicated onto it, or pulling it forward). A request that would add
// one more is refused (ErrTooManyCallbacks) and changes nothing.
const MaxCallbacks = 16

// callbackLua enqueues callback deliveries and publishes completions, inside
// the scripts that make a task final or a batch done. Both touch only keys
// of the queue's hash tag: a delivery is a hash of its own
// (Keys.Delivery) and an entry of the queue's delivery set
// (Keys.Deliveries), which the workers' delivery loops take from, apart
// from asynq's queues and handlers (delivery.go); the channel is a shard
// channel in the same slot.
//
// cb_enqueue(hash, cbq, subs, id, ref, nowns, cb) enqueues the deliveries
// of a task (ref "t:<id>") or batch ("b:<id>") that just ended: delivery id
// to the record's callback URL (its "cb" field: cb when the script read it
// already, false when absent, nil to have it read), id.2, id.3 ... to the
// URLs of the requests that joined it ("cbx", newline-separated), and
// id.s<sub> to each subscription of the queue (Keys.Subscriptions) whose
// events name the end (task.final, batch.done). It returns how many it
// enqueued.
// It includes notifyLua, whose notify(channel, what) publishes "t:<id>" or
// "b:<id>" to long-poll waiters.
// batch_finished(key, cbq, subs, id, nowns, channel, batchid) is called
// when batch_done reports the batch done: one round of deliveries per batch.
const callbackLua = notifyLua + `
local function cb_deliver(cbq, did, ref, url, sub, nowns)
  local dk = string.sub(cbq, 1, #cbq - 3) .. 'cb:' .. did -- Keys.Delivery
  if sub then
    redis.call('HSET', dk, 'ref', ref, 'url', url, 'at', nowns, 'sub', sub)
  else
    redis.call('HSET', dk, 'ref', ref, 'url', url, 'at', nowns)
  end
  redis.call('ZADD', cbq, string.format('%d', math.floor(tonumber(nowns) / 1000000)), did)
end
local function cb_enqueue(hash, cbq, subs, id, ref, nowns, cb)
  local n = 0
  if cb == nil then cb = redis.call('HGET', hash, 'cb') end
  if cb then
    cb_deliver(cbq, id, ref, cb, nil, nowns)
    redis.call('HSET', hash, 'cb_id', id, 'cb_state', 'pending', 'cb_n', 0, 'cb_at', nowns)
    redis.call('HDEL', hash, 'cb_status', 'cb_err')
    n = 1
    local more = redis.call('HGET', hash, 'cbx')
    if more then
      for u in string.gmatch(more, '[^\n]+') do
        n = n + 1
        cb_deliver(cbq, id .. '.' .. n, ref, u, nil, nowns)
      end
    end
  end
  local event = 'task.final'
  if string.sub(ref, 1, 2) == 'b:' then event = 'batch.done' end
  local s = redis.call('HGETALL', subs)
  for i = 1, #s, 2 do
    -- a subscription's copy: "<event>,<event>|<url>" (subscription.go)
    local bar = string.find(s[i + 1], '|', 1, true)
    if bar and string.find(',' .. string.sub(s[i + 1], 1, bar - 1) .. ',', ',' .. event .. ',', 1, true) then
      n = n + 1
      cb_deliver(cbq, id .. '.s' .. s[i], ref, string.sub(s[i + 1], bar + 1), s[i], nowns)
    end
  end
  return n
end
local function batch_finished(key, cbq, subs, id, nowns, channel, batchid)
  if not redis.call('HGET', key, 'cb_id') then
    if cb_enqueue(key, cbq, subs, id, 'b:' .. batchid, nowns) > 0 then
      -- delivered once: a batch read done again (resumed) enqueues nothing
      redis.call('HSET', key, 'cb_id', id)
    end
  end
  notify(channel, 'b:' .. batchid)
end
`

// callbackCall is the extra keys and arguments a finishing script takes:
// KEYS the queue's delivery set, its subscriptions, the completion channel;
// ARGV the task's delivery id, the batch's delivery id, and now (ns).
type callbackCall struct {
	keys []string
	args []any
}

// callbackArgs names the deliveries a finishing script may enqueue. A
// delivery id is the Standard Webhooks webhook-id: the same on every
// retry, new for every end.
func (s *Store) callbackArgs(k Keys) callbackCall {
	return callbackCall{
		keys: []string{k.Deliveries(), k.Subscriptions(), k.Done()},
		args: []any{base.NewID(), base.NewID(), s.now().UnixNano()},
	}
}

// Callback is the delivery state of a task's or batch's callback.
type Callback struct {
	URL, ID, State   string
	Attempts, Status int
	LastError        string
	// Joined is how many other URLs the task holds: those of requests that
	// joined it, each delivered on its own.
	Joined int
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
	if more := m[FieldCallbackMore]; more != "" {
		c.Joined = strings.Count(more, "\n") + 1
	}
	if ns, err := strconv.ParseInt(m[FieldCallbackSince], 10, 64); err == nil {
		c.Since = time.Unix(0, ns).UTC()
	}
	return c
}
