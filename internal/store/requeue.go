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

// requeueScript puts a dead task back in the queue with fresh retries, under
// the same id.
//
// KEYS[1] record, KEYS[2] asynq task, KEYS[3] asynq archived, KEYS[4] asynq
// pending, KEYS[5] dead letters, KEYS[6] dedup, KEYS[7] batch.
// ARGV[1] id, ARGV[2] asynq message, ARGV[3] now (ns), ARGV[4] now (ms),
// ARGV[5] asynq task key prefix, ARGV[6] result TTL (s).
// Returns {RequeueRequeued, id}; {RequeueNotDead, ""} when not dead (or
// unknown); {RequeueSuperseded, live id} when the session has another live
// task: the entry leaves the dead-letter queue and is marked canceled in
// favour of that task, losing its outcome (in the record and in the batch's
// outcome counts, which count completed and dead tasks only); {RequeueBusy, ""} when asynq has not yet archived it
// (a moment after it died): try again.
var requeueScript = redis.NewScript(batchLua + claimLua + attemptBaseLua + asynqcompat.TaskLua + asynqcompat.PushLua + `
local st = redis.call('HGET', KEYS[1], 'state')
if st ~= 'dead' then return {0, ''} end
-- the worker that declared it dead has not handed it back to asynq yet
if asynq_state(KEYS[2]) == ASYNQ_ACTIVE then return {3, ''} end
local outcome = redis.call('HGET', KEYS[1], 'outcome')
local b = redis.call('HGET', KEYS[1], 'batch')
local batch = b and redis.call('EXISTS', KEYS[7]) == 1
local live = redis.call('GET', KEYS[6])
if live and live ~= ARGV[1] then
  if asynq_live(asynq_state(ARGV[5] .. live)) then
    redis.call('ZREM', KEYS[5], ARGV[1])
    -- and leaves asynq's archive, or asynq's tools could still run it
    if asynq_state(KEYS[2]) == ASYNQ_ARCHIVED then redis.call('DEL', KEYS[2]) end
    redis.call('ZREM', KEYS[3], ARGV[1])
    redis.call('HSET', KEYS[1], 'state', 'canceled', 'err', 'superseded by live task ' .. live)
    -- a canceled task has no outcome, in its record or its batch's counts
    redis.call('HDEL', KEYS[1], 'outcome')
    redis.call('EXPIRE', KEYS[1], ARGV[6])
    if batch then
      batch_move(KEYS[7], 'dead', 'canceled')
      if outcome then batch_outcome(KEYS[7], outcome, -1) end
    end
    return {2, live}
  end
end
-- (issue 10) already run from asynq's archive: it is queued once already;
-- pushing it again would run the id twice at once
local queued = asynq_queued(asynq_state(KEYS[2]))
if not queued then
  redis.call('DEL', KEYS[2])
  redis.call('ZREM', KEYS[3], ARGV[1])
  asynq_new(KEYS[2], ARGV[2], ARGV[3])
  redis.call('LPUSH', KEYS[4], ARGV[1])
end
-- fresh retries, but the attempt numbers shown count on (attemptlog.go)
local abase = attempt_last(redis.call('HGET', KEYS[1], 'log'))
redis.call('HSET', KEYS[1], 'state', 'pending', 'attempts', abase)
redis.call('HDEL', KEYS[1], 'outcome', 'fin', 'result', 'err', 'next', 'sched', 'aoff', 'rst', 'abase')
if abase > 0 then redis.call('HSET', KEYS[1], 'abase', abase) end
-- asynq's message keeps its retry count: the start counts from there
if queued then redis.call('HSET', KEYS[1], 'rst', 1) end
redis.call('PERSIST', KEYS[1])
redis.call('ZREM', KEYS[5], ARGV[1])
redis.call('SET', KEYS[6], ARGV[1])
claim_arm(KEYS[6], nil, ARGV[4])
if batch then
  redis.call('PERSIST', KEYS[7])
  batch_move(KEYS[7], 'dead', 'pending')
  if outcome then batch_outcome(KEYS[7], outcome, -1) end
end
return {1, ARGV[1]}
`)

// RequeueCode says what a requeue did to one dead letter; the codes are
// requeueScript's replies.
type RequeueCode int

// Requeue codes.
const (
	// RequeueNotDead: the id is unknown or not in the dead-letter queue.
	RequeueNotDead RequeueCode = 0
	// RequeueRequeued: back in the queue with fresh retries, same id.
	RequeueRequeued RequeueCode = 1
	// RequeueSuperseded: the session has another live task; the dead letter
	// was closed (state canceled) in its favour.
	RequeueSuperseded RequeueCode = 2
	// RequeueBusy: the task died a moment ago and asynq is still archiving
	// it; try again.
	RequeueBusy RequeueCode = 3
)

// RequeueResult is the result of requeueing one dead letter.
type RequeueResult struct {
	ID   string
	Code RequeueCode
	// LiveID is the session's live task when Code is RequeueSuperseded.
	LiveID string
}

// Requeue puts dead tasks of an instance back in the queue with fresh
// retries, keeping their ids.
func (s *Store) Requeue(ctx context.Context, instance string, ids []string, timeout, resultTTL time.Duration) ([]RequeueResult, error) {
	k := s.Keys(instance)
	if err := s.publish(ctx, k.Queue); err != nil {
		return nil, err
	}
	out := make([]RequeueResult, 0, len(ids))
	ttl := ttlSeconds(resultTTL)
	for start := 0; start < len(ids); start += pipelineChunk {
		chunk := ids[start:min(start+pipelineChunk, len(ids))]
		// The new message needs the payload, which lives in the records.
		pipe := s.rdb.Pipeline()
		recs := make([]*redis.SliceCmd, len(chunk))
		for i, id := range chunk {
			recs[i] = pipe.HMGet(ctx, k.Record(id), FieldSession, FieldBatch, FieldMax)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, fmt.Errorf("requeue: %w", err)
		}
		now := s.now()
		calls := make([]scriptCall, 0, len(chunk))
		idx := make([]int, 0, len(chunk))
		for i, id := range chunk {
			v := recs[i].Val()
			sess, _ := v[0].(string)
			if sess == "" {
				out = append(out, RequeueResult{ID: id, Code: RequeueNotDead})
				continue
			}
			bid, _ := v[1].(string)
			maxStr, _ := v[2].(string)
			maxRetries, _ := strconv.Atoi(maxStr)
			p := base.Payload{Instance: instance, Session: sess, BatchID: bid, MaxRetries: maxRetries}
			msg := asynqcompat.Encode(asynqcompat.Message{
				Type: base.TypeLogout, Payload: p.Encode(), ID: id, Queue: k.Queue,
				Retry: asynqMaxRetry, TimeoutSeconds: timeoutSeconds(timeout),
			})
			calls = append(calls, scriptCall{
				keys: []string{k.Record(id), k.AsynqTask(id), k.Archived(), k.Pending(), k.DeadLetters(), k.Dedup(sess), k.Batch(bid)},
				args: []any{id, msg, now.UnixNano(), now.UnixMilli(), k.AsynqTaskPrefix(), ttl},
			})
			idx = append(idx, len(out))
			out = append(out, RequeueResult{ID: id})
		}
		cmds, err := s.runPipelined(ctx, requeueScript, calls)
		if err != nil {
			return nil, fmt.Errorf("requeue: %w", err)
		}
		for j, c := range cmds {
			v, _ := c.Slice()
			code, _ := v[0].(int64)
			live, _ := v[1].(string)
			r := &out[idx[j]]
			switch RequeueCode(code) {
			case RequeueRequeued, RequeueBusy:
				r.Code = RequeueCode(code)
			case RequeueSuperseded:
				r.Code, r.LiveID = RequeueSuperseded, live
			default:
				r.Code = RequeueNotDead
			}
		}
	}
	s.announce(ctx, instance)
	return out, nil
}
