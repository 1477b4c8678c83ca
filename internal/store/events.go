package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Confirmation from WAHA's events (issue 22).
//
// WAHA posts a session.status event whenever a session's status changes; a
// logout of a running session makes it STOPPED, then STARTING, then
// SCAN_QR_CODE. wahaq serve receives them (internal/api, events.go) for
// instances with a webhook secret, and eventScript records each on the
// logout it follows:
//
//   - While the logout runs, the session's dedup key names its task (state
//     active): STOPPED and STARTING usually arrive then, before WAHA's answer.
//   - After it, the finish script, told by the worker that the instance
//     takes events (Finish.AwaitEvents), leaves the task's id in the
//     session's LastLogout key (for WAHAQ_RESULT_TTL) and, unless an event
//     confirmed it already, in the Awaiting set until ConfirmWait has passed.
//
// The record's field FieldEvents holds "<confirmed status>:<its ms>:<latest
// status>:<its ms>" (WAHA's timestamps): the first SCAN_QR_CODE or STOPPED
// confirms the logout for good; the latest status follows the newest event.
// An event older than the task's enqueue time is not the logout's effect and
// is not recorded. The confirmation counters move once per logout: confirmed
// when an event confirms it while it is awaited (or before its finish),
// unconfirmed when SweepUnconfirmed finds its wait over.

// FieldEvents is the record field of WAHA's session.status events.
const FieldEvents = "ev"

// ConfirmWait is how long a completed logout awaits its confirming event
// before it counts as unconfirmed: WAHA sends SCAN_QR_CODE seconds after a
// logout, and retries a failed delivery for minutes.
const ConfirmWait = 10 * time.Minute

// EventSeenFor is how long an event id is remembered: longer than the
// receiver accepts an event's timestamp (a replay older than that is refused
// before it reaches Redis), so a duplicate is always found.
const EventSeenFor = 15 * time.Minute

// eventScript records one session.status event.
//
// KEYS[1] the event's Event key, KEYS[2] the session's dedup key, KEYS[3] its
// LastLogout key, KEYS[4] Awaiting, KEYS[5] Confirmations.
// ARGV[1] status, ARGV[2] event time (ms), ARGV[3] EventSeenFor (ms),
// ARGV[4] the record key prefix (Keys.Prefix() .. "t:").
// Returns {code, task id}: code 0 a duplicate (nothing written), 1 no logout
// to record it on (only the event id is remembered), 2 recorded, 3 recorded
// and it confirmed the logout.
var eventScript = redis.NewScript(`
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[3]) then return {0, ''} end
local ts = tonumber(ARGV[2])
-- the record of task id if the event can be its effect
local function usable(id, live)
  if not id then return nil end
  local f = redis.call('HMGET', ARGV[4] .. id, 'state', 'enq', 'ev')
  if not f[1] then return nil end
  if live and f[1] ~= 'active' then return nil end
  if tonumber(f[2] or '0') > ts then return nil end
  return f[3] or ':::0'
end
local id = redis.call('GET', KEYS[2])
local ev = usable(id, true)
if not ev then
  id = redis.call('GET', KEYS[3])
  ev = usable(id, false)
end
if not ev then return {1, ''} end
local cs, cm, ls, lm = string.match(ev, '^([^:]*):([^:]*):([^:]*):([^:]*)$')
if not cs then cs, cm, ls, lm = '', '', '', '0' end
local confirmed = false
if cs == '' and (ARGV[1] == 'SCAN_QR_CODE' or ARGV[1] == 'STOPPED') then
  cs, cm, confirmed = ARGV[1], ARGV[2], true
end
if ts >= (tonumber(lm) or 0) then ls, lm = ARGV[1], ARGV[2] end
redis.call('HSET', ARGV[4] .. id, 'ev', cs .. ':' .. cm .. ':' .. ls .. ':' .. lm)
if confirmed then
  -- counted here only when the finish is already past: before it, the
  -- finish counts it (events.go)
  if redis.call('ZREM', KEYS[4], id) == 1 then redis.call('HINCRBY', KEYS[5], 'confirmed', 1) end
  return {3, id}
end
return {2, id}
`)

// sweepScript counts the logouts whose wait for a confirmation is over.
//
// KEYS[1] Awaiting, KEYS[2] Confirmations. ARGV[1] now (ms), ARGV[2] the
// most to take at once. Returns how many it counted.
var sweepScript = redis.NewScript(`
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if #ids == 0 then return 0 end
redis.call('ZREM', KEYS[1], unpack(ids))
redis.call('HINCRBY', KEYS[2], 'unconfirmed', #ids)
return #ids
`)

// awaitLua is the finish script's part for a logout that awaits WAHA's
// events (Finish.AwaitEvents), run when the task becomes completed: the
// session's LastLogout key names it, and it is counted confirmed at once
// (an event came while it ran) or awaits its confirmation. ev is the
// record's FieldEvents as the finish read it.
const awaitLua = `
local function await_events(last, awaiting, counts, id, ttl, deadline, ev)
  redis.call('SET', last, id, 'PX', ttl)
  if string.match(ev or '', '^[^:]') then
    redis.call('HINCRBY', counts, 'confirmed', 1)
  else
    redis.call('ZADD', awaiting, deadline, id)
  end
end
`

// SessionEvent is one of WAHA's session.status events, as the receiver
// read it from a verified body.
type SessionEvent struct {
	// ID is the event's id ("evt_…"); a second event with the same id is a
	// duplicate.
	ID string
	// Session is the session's name.
	Session string
	// Status is the session's new status.
	Status string
	// At is the event's timestamp (WAHA's clock).
	At time.Time
}

// EventOutcome is what RecordEvent did with an event.
type EventOutcome int

// RecordEvent's outcomes.
const (
	// EventDuplicate: the id was seen before; nothing was written.
	EventDuplicate EventOutcome = iota
	// EventUnmatched: no logout of the session to record it on.
	EventUnmatched
	// EventRecorded: recorded on the logout's task.
	EventRecorded
	// EventConfirmed: recorded, and it confirmed the logout.
	EventConfirmed
)

// RecordEvent records a session.status event of instance on the logout it
// follows (see the top of this file) and returns what it did and the task's
// id ("" when none).
func (s *Store) RecordEvent(ctx context.Context, instance string, ev SessionEvent) (EventOutcome, string, error) {
	k := s.Keys(instance)
	keys := []string{k.Event(ev.ID), k.Dedup(ev.Session), k.LastLogout(ev.Session), k.Awaiting(), k.Confirmations()}
	res, err := eventScript.Run(ctx, s.rdb, keys, ev.Status, ev.At.UnixMilli(), EventSeenFor.Milliseconds(), k.Prefix()+"t:").Slice()
	if err != nil {
		return 0, "", fmt.Errorf("record event %s of session %s: %w", ev.ID, ev.Session, err)
	}
	code, _ := res[0].(int64)
	id, _ := res[1].(string)
	return EventOutcome(code), id, nil
}

// sweepBatch bounds one sweep's work per call.
const sweepBatch = 1000

// SweepUnconfirmed counts, as unconfirmed, the completed logouts of
// instance whose wait for a confirming event ended before now, and returns
// how many. Each is counted once however many workers sweep.
func (s *Store) SweepUnconfirmed(ctx context.Context, instance string) (int, error) {
	k := s.Keys(instance)
	total := 0
	for range 100 { // bounded: 100,000 a pass at most
		n, err := sweepScript.Run(ctx, s.rdb, []string{k.Awaiting(), k.Confirmations()}, s.now().UnixMilli(), sweepBatch).Int()
		if err != nil {
			return total, fmt.Errorf("sweep unconfirmed logouts of %s: %w", instance, err)
		}
		total += n
		if n < sweepBatch {
			break
		}
	}
	return total, nil
}

// ConfirmCounts are an instance's confirmation counters.
type ConfirmCounts struct {
	// Confirmed counts completed logouts a session.status event confirmed.
	Confirmed int64
	// Unconfirmed counts those whose wait ended without one.
	Unconfirmed int64
}

// Confirmations reads the confirmation counters of each instance.
func (s *Store) Confirmations(ctx context.Context, instances []string) (map[string]ConfirmCounts, error) {
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.SliceCmd, len(instances))
	for i, in := range instances {
		cmds[i] = pipe.HMGet(ctx, s.Keys(in).Confirmations(), "confirmed", "unconfirmed")
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("read confirmation counters: %w", err)
	}
	out := make(map[string]ConfirmCounts, len(instances))
	for i, in := range instances {
		v := cmds[i].Val()
		out[in] = ConfirmCounts{Confirmed: counterOf(v[0]), Unconfirmed: counterOf(v[1])}
	}
	return out, nil
}

func counterOf(v any) int64 {
	s, _ := v.(string)
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}

// SessionStatus is a session's status as one of WAHA's events reported it.
type SessionStatus struct {
	// Status is the session's status.
	Status string
	// At is the event's timestamp.
	At time.Time
}

// decodeEvents reads FieldEvents: the confirmation and the latest status,
// each nil when absent.
func decodeEvents(v string) (confirmed, latest *SessionStatus) {
	parts := strings.Split(v, ":")
	if len(parts) != 4 {
		return nil, nil
	}
	at := func(status, ms string) *SessionStatus {
		if status == "" {
			return nil
		}
		t := msTime(ms)
		if t == nil {
			return nil
		}
		return &SessionStatus{Status: status, At: *t}
	}
	return at(parts[0], parts[1]), at(parts[2], parts[3])
}
