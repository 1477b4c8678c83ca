package store

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wahaq/wahaq/internal/asynqcompat"
	"github.com/wahaq/wahaq/internal/base"
)

// finishScript records the end of an attempt: retrying, completed or dead.
// It frees the task's slot; a final task leaves the dedup entry, a completed
// one expires, a dead one joins the dead letters. Applied twice (its reply
// lost in a Redis crash, then sent again) it counts the outcome once.
//
// Freeing the slot opens the queue's gate (gate.go) if wahaq closed it. A
// task becoming final (not one already final) enqueues its callback
// delivery, if it has a callback URL, and publishes "t:<id>" for long-poll
// waiters; a batch becoming done does the same for the batch.
//
// KEYS[1] semaphore, KEYS[2] record, KEYS[3] batch, KEYS[4] dedup, KEYS[5]
// dead letters, KEYS[6] asynq pending (unused), KEYS[7] callback delivery
// set, KEYS[8] the queue's subscriptions, KEYS[9] completion channel, KEYS[10] asynq's paused key, KEYS[11] gate channel, KEYS[12]
// asynq's active list, KEYS[13] its lease set, KEYS[14] the asynq task,
// KEYS[15] asynq's processed counter of the day, KEYS[16] its total.
// ARGV[1] id, ARGV[2] new state, ARGV[3] outcome ("" when retrying), ARGV[4]
// now (ms), ARGV[5] next attempt (ms), ARGV[6] last error, ARGV[7] result
// JSON, ARGV[8] result TTL (s), ARGV[9] batch id, ARGV[10] task delivery id,
// ARGV[11] batch delivery id, ARGV[12] now (ns), ARGV[13] attempt log entry
// (see attemptLogLua; "" = none), ARGV[14] "1" to settle asynq's side of a
// completed task, ARGV[15] expiry of the day's counter (Unix s).
// For Finish.AwaitEvents (events.go): KEYS[17] the session's LastLogout key,
// KEYS[18] Awaiting, KEYS[19] Confirmations; ARGV[16] the LastLogout key's
// TTL (ms; "" when the task awaits no events), ARGV[17] the end of its wait
// (ms).
// Returns 2 when it settled asynq's side, else 1.
var finishScript = redis.NewScript(batchLua + callbackLua + gateLua + attemptLogLua + claimLua + asynqcompat.DoneLua + awaitLua + `
redis.call('ZREM', KEYS[1], ARGV[1])
gate_open(KEYS[10], KEYS[11])
-- every field the script reads, in one call: each redis.call costs
-- on top of its command
-- oldOutcome is set only when the task was already final: the same Finish
-- applied twice (its reply lost in a Redis crash, then sent again) must
-- count once
local cur = redis.call('HMGET', KEYS[2], 'state', 'outcome', 'enq', 'log', 'cb', 'ev', 'abase')
local old, oldOutcome = cur[1], cur[2]
-- attempt history (attemptlog.go): one entry per attempt, the last 20; a
-- final record whose history ends with this attempt derives attempts and
-- fin from it (attemptlog.go, derived fields)
local logged, log = false, nil
if ARGV[13] ~= '' then logged, log = attempt_log(ARGV[13], ARGV[4], cur[3], cur[4], cur[7]) end
-- end attempt history
local new = ARGV[2]
-- the record's changes, its history's included, as one HSET and one HDEL:
-- each redis.call has a cost of its own on top of the command's
local set, del = {'state', new}, {}
local function put(f, v) set[#set + 1] = f; set[#set + 1] = v end
if log then put('log', log) end
if ARGV[6] ~= '' then put('err', ARGV[6]) else del[#del + 1] = 'err' end
if new == 'retrying' then
  put('next', ARGV[5])
else
  put('outcome', ARGV[3])
  del[#del + 1] = 'next'
  if logged then
    del[#del + 1] = 'attempts'
    del[#del + 1] = 'fin'
  else
    put('fin', ARGV[4])
  end
  if ARGV[7] ~= '' then put('result', ARGV[7]) end
end
-- HDEL first: a record that never holds more than 8 fields at once keeps
-- a hash table of 8 buckets, not 16, when 'result' (longer than a compact
-- hash's values) turns it into one: about 70 bytes less per retained result
if #del > 0 then redis.call('HDEL', KEYS[2], unpack(del)) end
redis.call('HSET', KEYS[2], unpack(set))
if new == 'retrying' then
  -- the claim lasts past the planned retry (dedup.go)
  if redis.call('GET', KEYS[4]) == ARGV[1] then claim_arm(KEYS[4], ARGV[5], ARGV[4]) end
else
  if redis.call('GET', KEYS[4]) == ARGV[1] then redis.call('DEL', KEYS[4]) end
  if new == 'completed' then
    redis.call('EXPIRE', KEYS[2], ARGV[8])
    redis.call('ZREM', KEYS[5], ARGV[1])
  else
    redis.call('PERSIST', KEYS[2])
    redis.call('ZADD', KEYS[5], ARGV[4], ARGV[1])
  end
end
if ARGV[9] ~= '' and old then
  if new == 'retrying' then
    if old ~= new and redis.call('EXISTS', KEYS[3]) == 1 then batch_move(KEYS[3], old, new) end
  else
    -- read before the moves: one read says whether the batch still exists
    -- and, with the moves added, whether this task ends it
    local v = batch_read(KEYS[3])
    if v[1] then
      if old ~= new then batch_move(KEYS[3], old, new) end
      if oldOutcome and (old == 'completed' or old == 'dead') then
        batch_outcome(KEYS[3], oldOutcome, -1)
      end
      batch_outcome(KEYS[3], ARGV[3], 1)
      if batch_end(KEYS[3], ARGV[8], v, old, new) then
        batch_finished(KEYS[3], KEYS[7], KEYS[8], ARGV[11], ARGV[12], KEYS[9], ARGV[9])
      end
    end
  end
end
-- completion: callback and long-poll, once per transition into a final state
if new ~= 'retrying' and old ~= 'completed' and old ~= 'dead' and old ~= 'canceled' then
  cb_enqueue(KEYS[2], KEYS[7], KEYS[8], ARGV[10], 't:' .. ARGV[1], ARGV[12], cur[5])
  notify(KEYS[9], 't:' .. ARGV[1])
end
-- confirmation from WAHA's events (events.go)
if ARGV[16] ~= '' and new == 'completed' and old ~= 'completed' then
  await_events(KEYS[17], KEYS[18], KEYS[19], ARGV[1], ARGV[16], ARGV[17], cur[6])
end
-- settle: asynq's side of a completed task in the same step, as asynq's
-- own done does it (internal/rdb's doneCmd), so that asynq's done right
-- after needs no round trip (asynqcompat.Hook.Settled); only while asynq still
-- holds the task as active
if ARGV[14] == '1' and new == 'completed' and asynq_done(KEYS[12], KEYS[13], KEYS[14], KEYS[15], KEYS[16], ARGV[1], ARGV[15]) then
  return 2
end
return 1
`)

// Finish records the end of an attempt and frees the task's slot.
type Finish struct {
	// State is StateRetrying, StateCompleted or StateDead.
	State string
	// Outcome is set for completed and dead tasks.
	Outcome string
	// LastError is the error of this attempt, if any. Never a secret.
	LastError string
	// Result is WAHA's answer as JSON (a tasks.Result), if any.
	Result []byte
	// NextAttempt is when a retrying task runs again.
	NextAttempt time.Time
	// ResultTTL is how long a completed record is kept.
	ResultTTL time.Duration
	// Attempt is this attempt's number, for the attempt history; 0 records
	// no history entry.
	Attempt int
	// StartedAt is when the attempt started, for the attempt history.
	StartedAt time.Time
	// HTTPStatus is WAHA's HTTP status of this attempt; 0 when none came.
	HTTPStatus int
	// AwaitEvents, for a completed logout on an instance whose
	// session.status events wahaq receives, makes the task the one the
	// session's events are recorded on (events.go) and starts its wait for
	// a confirmation.
	AwaitEvents bool
	// Settle, for a completed task that asynq delivered, also does what
	// asynq's done does (the task leaves asynq's active list and lease
	// set, is deleted, and counts as processed), in the same step.
	Settle bool
}

// Finish applies f to the task.
func (s *Store) Finish(ctx context.Context, id string, p base.Payload, f Finish) error {
	_, err := s.FinishSettled(ctx, id, p, f)
	return err
}

// FinishSettled is Finish that also says whether it settled asynq's side
// of the task (f.Settle): then asynq's done of the task has nothing left to
// do.
func (s *Store) FinishSettled(ctx context.Context, id string, p base.Payload, f Finish) (bool, error) {
	keys, args := s.finishCall(id, p, f)
	n, err := finishScript.Run(ctx, s.rdb, keys, args...).Int()
	if err != nil {
		return false, fmt.Errorf("finish task %s: %w", id, err)
	}
	return n == 2, nil
}

// FinishCall is one task's Finish for FinishMany.
type FinishCall struct {
	ID      string
	Payload base.Payload
	Finish  Finish
}

// FinishReply is what FinishMany did for one FinishCall: FinishSettled's
// answers.
type FinishReply struct {
	Settled bool
	Err     error
}

// FinishMany applies several tasks' Finishes in one round trip (a
// pipeline of the same script FinishSettled runs), each as FinishSettled
// would, in order. Workers whose handlers end at the same moment share a
// round trip this way.
func (s *Store) FinishMany(ctx context.Context, calls []FinishCall) []FinishReply {
	type prepared struct {
		keys []string
		args []any
		cmd  *redis.Cmd
	}
	ps := make([]prepared, len(calls))
	pipe := s.rdb.Pipeline()
	for i, c := range calls {
		ps[i].keys, ps[i].args = s.finishCall(c.ID, c.Payload, c.Finish)
		ps[i].cmd = finishScript.EvalSha(ctx, pipe, ps[i].keys, ps[i].args...)
	}
	_, _ = pipe.Exec(ctx) // each command holds its own error
	out := make([]FinishReply, len(calls))
	for i, p := range ps {
		cmd := p.cmd
		if redis.HasErrorPrefix(cmd.Err(), "NOSCRIPT") {
			// a Redis that lost its scripts (restart, failover): Run loads it
			cmd = finishScript.Run(ctx, s.rdb, p.keys, p.args...)
		}
		n, err := cmd.Int()
		if err != nil {
			out[i].Err = fmt.Errorf("finish task %s: %w", calls[i].ID, err)
			continue
		}
		out[i].Settled = n == 2
	}
	return out
}

// finishCall is finishScript's keys and arguments for f applied to task id.
func (s *Store) finishCall(id string, p base.Payload, f Finish) ([]string, []any) {
	k := s.Keys(p.Instance)
	now := s.now()
	var next int64
	if !f.NextAttempt.IsZero() {
		next = f.NextAttempt.UnixMilli()
	}
	cb := s.callbackArgs(k)
	keys := append([]string{k.Slots(), k.Record(id), k.Batch(p.BatchID), k.Dedup(p.Session), k.DeadLetters(), k.Pending()}, cb.keys...)
	keys = append(keys, k.Paused(), k.Gate(), asynqcompat.ActiveKey(k.Queue), asynqcompat.LeaseKey(k.Queue), k.AsynqTask(id),
		asynqcompat.ProcessedKey(k.Queue, now), asynqcompat.ProcessedTotalKey(k.Queue))
	settle := ""
	if f.Settle {
		settle = "1"
	}
	args := append([]any{id, f.State, f.Outcome, now.UnixMilli(), next, f.LastError, f.Result, ttlSeconds(f.ResultTTL), p.BatchID}, cb.args...)
	args = append(args, attemptEntry(f), settle, now.Add(asynqcompat.StatsTTL).Unix())
	keys = append(keys, k.LastLogout(p.Session), k.Awaiting(), k.Confirmations())
	if f.AwaitEvents {
		args = append(args, max(f.ResultTTL, time.Second).Milliseconds(), now.Add(ConfirmWait).UnixMilli())
	} else {
		args = append(args, "", "")
	}
	return keys, args
}
