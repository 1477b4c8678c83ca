package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wahaq/wahaq/internal/asynqcompat"
)

// GateMarker is the value wahaq writes into asynq's paused key of a queue
// whose server's concurrency cap is full. asynq's dequeue skips a queue
// whose paused key exists (internal/rdb's dequeueCmd), so while the gate is
// closed no worker dequeues a task that could only wait for a slot. An
// operator's pause (asynq's Inspector.PauseQueue, `asynq queue pause`)
// writes a Unix time instead; wahaq never sets, extends or lifts a pause
// whose value is not GateMarker.
const GateMarker = "wahaq-gate"

// gateLua closes and opens the gate. The gate expires with the earliest
// slot lease, so a worker that dies holding the last slot cannot keep its
// queue closed for longer than that lease; renewing the leases extends it.
//
// Closing and opening it are announced on the instance's gate channel
// (Keys.Gate): "1:<expiry, Unix ms>" when it closes, "0" when it opens.
// Workers keep a view of the gates from it (worker/gate.go) so that
// asynq's dequeue of a closed queue is answered without a round trip. A
// renewal's later expiry is not announced (a worker reads the key again
// when its view grows old), and channel nil announces nothing. It announces
// with notifyLua's notify, which a script includes before it (callbackLua
// includes it).
const gateLua = `
local function gate_close(slots, paused, channel)
  local cur = redis.call('GET', paused)
  if cur and cur ~= '` + GateMarker + `' then return end
  local first = redis.call('ZRANGE', slots, 0, 0, 'WITHSCORES')
  if not first[2] then return end
  local expiry = math.floor(tonumber(first[2]))
  if not cur then redis.call('SET', paused, '` + GateMarker + `') end
  redis.call('PEXPIREAT', paused, expiry)
  if not cur and channel then notify(channel, '1:' .. expiry) end
end
local function gate_open(paused, channel)
  if redis.call('GET', paused) == '` + GateMarker + `' then
    redis.call('DEL', paused)
    if channel then notify(channel, '0') end
  end
end
`

// renewScript extends the slot leases of tasks still running, and the
// gate's expiry with them. A lease that already ran out is not renewed (its
// slot may belong to another task by now).
//
// KEYS[1] semaphore, KEYS[2] asynq's paused key.
// ARGV[1] lease until (ms), ARGV[2..] task ids.
// Returns the number of leases renewed.
var renewScript = redis.NewScript(notifyLua + gateLua + `
local n = 0
for i = 2, #ARGV do
  if redis.call('ZSCORE', KEYS[1], ARGV[i]) then
    redis.call('ZADD', KEYS[1], ARGV[1], ARGV[i])
    n = n + 1
  end
end
if redis.call('GET', KEYS[2]) == '` + GateMarker + `' then gate_close(KEYS[1], KEYS[2], nil) end
return n
`)

// Paused is asynq's paused key of the queue: wahaq's gate, or an
// operator's pause.
func (k Keys) Paused() string { return asynqcompat.PausedKey(k.Queue) }

// Gate is the shard channel (SPUBLISH) on which the scripts announce the
// queue's gate closing ("1:<expiry, Unix ms>") and opening ("0"); see
// gateLua.
func (k Keys) Gate() string { return k.prefix + "gate" }

// ParseGate reads a message of the gate channel (Keys.Gate): closed, and
// until when at the latest (the gate's expiry), or open. ok is false for a
// message that is neither.
func ParseGate(msg string) (closed bool, until time.Time, ok bool) {
	if msg == "0" {
		return false, time.Time{}, true
	}
	ms, found := strings.CutPrefix(msg, "1:")
	if !found {
		return false, time.Time{}, false
	}
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil {
		return false, time.Time{}, false
	}
	return true, time.UnixMilli(n), true
}

// RenewSlots extends to lease from now the slots that the tasks ids of
// instance hold, and returns how many it renewed (a slot whose lease already
// ran out is lost, not renewed). One call renews every slot of one instance
// a worker holds.
func (s *Store) RenewSlots(ctx context.Context, instance string, ids []string, lease time.Duration) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	k := s.Keys(instance)
	args := make([]any, 0, len(ids)+1)
	args = append(args, s.now().Add(lease).UnixMilli())
	for _, id := range ids {
		args = append(args, id)
	}
	n, err := renewScript.Run(ctx, s.rdb, []string{k.Slots(), k.Paused()}, args...).Int()
	if err != nil {
		return 0, fmt.Errorf("renew slots of %s: %w", instance, err)
	}
	return n, nil
}

// releaseScript frees slots without recording anything: a worker forced to
// stop hands its tasks back to asynq, and their slots must not wait for
// their leases to run out.
//
// KEYS[1] semaphore, KEYS[2] asynq's paused key, KEYS[3] gate channel.
// ARGV[1..] task ids.
// Returns the number of slots freed.
var releaseScript = redis.NewScript(notifyLua + gateLua + `
local n = redis.call('ZREM', KEYS[1], unpack(ARGV))
gate_open(KEYS[2], KEYS[3])
return n
`)

// ReleaseSlots frees the slots the tasks ids of instance hold, and opens
// the queue's gate if wahaq closed it.
func (s *Store) ReleaseSlots(ctx context.Context, instance string, ids []string) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	k := s.Keys(instance)
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	n, err := releaseScript.Run(ctx, s.rdb, []string{k.Slots(), k.Paused(), k.Gate()}, args...).Int()
	if err != nil {
		return 0, fmt.Errorf("release slots of %s: %w", instance, err)
	}
	return n, nil
}
