package store

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wahaq/wahaq/internal/asynqwire"
	"github.com/wahaq/wahaq/internal/base"
)

// enqueueScript creates tasks, each unless its session already has a live
// one (scheduled, pending, active or retrying in asynq), for a group of tasks
// that share an instance, a process time, a batch and a retry limit: one
// script call creates up to enqueueGroup tasks. Most of a single script's
// cost in Redis is the call itself, so a 50,000-session teardown runs 500
// calls, not 50,000. Ids are random UUIDs (122 random bits) that never
// collide in practice, so no collision check is paid for; the record does
// not repeat the instance (its key names the queue) nor a zero attempt count.
//
// A dedup entry whose task is gone from asynq, or completed or archived there
// (a stale claim), is taken over.
//
// KEYS[1] asynq pending list or scheduled set, KEYS[2] batch, then per task
// j (0-based): KEYS[3+3j] record, KEYS[4+3j] dedup, KEYS[5+3j] asynq task.
// ARGV[1] now (ns), ARGV[2] process-at (Unix s, "0" = now), ARGV[3]
// batch id, ARGV[4] now (ms), ARGV[5] max retries, ARGV[6]
// scheduled-for (ms or ""), ARGV[7] asynq task key prefix, ARGV[8] callback
// URL (""), ARGV[9] record key prefix, then per task j:
// ARGV[10+3j] id, ARGV[11+3j] asynq message, ARGV[12+3j] session.
// A callback URL goes into each new record; a deduplicated task that has
// none takes it too (its record is found by prefix, in the same slot), so
// the caller hears of the live task's end.
// Returns {id1, flag1, id2, flag2, ...}: flag enqueueCreated or
// enqueueDeduplicated onto the returned live id.
var enqueueScript = redis.NewScript(`
local n = (#KEYS - 2) / 3
local state = 'pending'
if ARGV[2] ~= '0' then state = 'scheduled' end
-- the record's fields shared by the group; the session goes last
local rec = {'state', state, 'max', ARGV[5], 'enq', ARGV[4]}
if ARGV[3] ~= '' then rec[#rec + 1] = 'batch'; rec[#rec + 1] = ARGV[3] end
if ARGV[6] ~= '' then rec[#rec + 1] = 'sched'; rec[#rec + 1] = ARGV[6] end
if ARGV[8] ~= '' then rec[#rec + 1] = 'cb'; rec[#rec + 1] = ARGV[8] end
local ns = #rec + 1
rec[ns] = 'session'
local out, ids, created = {}, {}, 0
for j = 0, n - 1 do
  local dedup, id = KEYS[4 + 3*j], ARGV[10 + 3*j]
  -- claim the session; the reply is the previous holder, if any
  local live = redis.call('SET', dedup, id, 'NX', 'GET')
  local dup = false
  if live then
    local st = redis.call('HGET', ARGV[7] .. live, 'state')
    if st and st ~= 'archived' and st ~= 'completed' then
      dup = true
    else
      redis.call('SET', dedup, id) -- a stale claim: the task is gone
    end
  end
  if dup then
    if ARGV[8] ~= '' then redis.call('HSETNX', ARGV[9] .. live, 'cb', ARGV[8]) end
    out[#out + 1] = live
    out[#out + 1] = 1
  else
    rec[ns + 1] = ARGV[12 + 3*j]
    redis.call('HSET', KEYS[3 + 3*j], unpack(rec))
    if state == 'pending' then
      redis.call('HSET', KEYS[5 + 3*j], 'msg', ARGV[11 + 3*j], 'state', 'pending', 'pending_since', ARGV[1])
      ids[#ids + 1] = id
    else
      redis.call('HSET', KEYS[5 + 3*j], 'msg', ARGV[11 + 3*j], 'state', 'scheduled')
      ids[#ids + 1] = ARGV[2]
      ids[#ids + 1] = id
    end
    created = created + 1
    out[#out + 1] = id
    out[#out + 1] = 0
  end
end
if #ids > 0 then
  if state == 'pending' then
    redis.call('LPUSH', KEYS[1], unpack(ids))
  else
    redis.call('ZADD', KEYS[1], unpack(ids))
  end
end
if ARGV[3] ~= '' and created > 0 then
  redis.call('HINCRBY', KEYS[2], 'total', created)
  redis.call('HINCRBY', KEYS[2], state, created)
end
return out
`)

// Flags of enqueueScript's reply, per task.
const (
	enqueueCreated      = 0
	enqueueDeduplicated = 1
)

// enqueueGroup is how many tasks one enqueue script call creates.
const enqueueGroup = 100

// NewTask describes one task to create.
type NewTask struct {
	// ID is the task id; empty means a new one is generated.
	ID string
	// Instance and Session name the logout. Both must be valid.
	Instance, Session string
	// BatchID is the batch the task belongs to, if any.
	BatchID string
	// MaxRetries is the retry limit of transient failures.
	MaxRetries int
	// ProcessAt is when to run; zero or past means now.
	ProcessAt time.Time
	// Timeout is asynq's per-attempt timeout. Zero means none.
	Timeout time.Duration
	// CallbackURL, when set, receives the task when it is final. It must
	// have passed the allow-list already.
	CallbackURL string
}

// Enqueued is the result of creating one task.
type Enqueued struct {
	// ID is the task's id, or the live task's id when Deduplicated.
	ID string
	// Deduplicated is true when the session already had a live task.
	Deduplicated bool
}

// Enqueue creates tasks: groups of up to 100 tasks that share an instance,
// process time, batch and retry limit go to Redis as one script call, and
// up to ten such calls as one pipeline, so a 50,000-session batch takes 50
// round trips. Each task is created atomically with its dedup entry and batch
// count; a session that already has a live task (or comes twice) is
// deduplicated. Inputs must be validated already.
func (s *Store) Enqueue(ctx context.Context, ts []NewTask) ([]Enqueued, error) {
	out := make([]Enqueued, len(ts))
	now := s.now()
	type group struct{ start, end int }
	var groups []group
	same := func(a, b *NewTask) bool {
		return a.Instance == b.Instance && a.BatchID == b.BatchID && a.MaxRetries == b.MaxRetries &&
			a.Timeout == b.Timeout && a.ProcessAt.Equal(b.ProcessAt) && a.CallbackURL == b.CallbackURL
	}
	for i := 0; i < len(ts); {
		j := i + 1
		for j < len(ts) && j-i < enqueueGroup && same(&ts[i], &ts[j]) {
			j++
		}
		groups = append(groups, group{i, j})
		i = j
	}
	const groupsPerPipeline = pipelineChunk / enqueueGroup
	for gi := 0; gi < len(groups); gi += groupsPerPipeline {
		batch := groups[gi:min(gi+groupsPerPipeline, len(groups))]
		calls := make([]scriptCall, 0, len(batch))
		for _, g := range batch {
			first := &ts[g.start]
			k := s.Keys(first.Instance)
			if err := s.publish(ctx, k.Queue); err != nil {
				return nil, err
			}
			listKey, processAt, sched := k.Pending(), "0", ""
			if first.ProcessAt.After(now) {
				listKey = k.Scheduled()
				processAt = strconv.FormatInt(ceilUnix(first.ProcessAt), 10)
				sched = strconv.FormatInt(first.ProcessAt.UnixMilli(), 10)
			}
			n := g.end - g.start
			keys := make([]string, 0, 2+3*n)
			keys = append(keys, listKey, k.Batch(first.BatchID))
			args := make([]any, 0, 9+3*n)
			args = append(args, now.UnixNano(), processAt, first.BatchID, now.UnixMilli(),
				first.MaxRetries, sched, k.AsynqTaskPrefix(), first.CallbackURL, k.Record(""))
			timeout := timeoutSeconds(first.Timeout)
			for i := g.start; i < g.end; i++ {
				t := &ts[i]
				if t.ID == "" {
					t.ID = base.NewID()
				}
				payload := base.Payload{Instance: t.Instance, Session: t.Session, BatchID: t.BatchID, MaxRetries: t.MaxRetries}.Encode()
				msg := asynqwire.Encode(asynqwire.Message{
					Type: base.TypeLogout, Payload: payload, ID: t.ID, Queue: k.Queue, Retry: asynqMaxRetry, TimeoutSeconds: timeout,
				})
				keys = append(keys, k.Record(t.ID), k.Dedup(t.Session), k.AsynqTask(t.ID))
				args = append(args, t.ID, msg, t.Session)
			}
			calls = append(calls, scriptCall{keys: keys, args: args})
		}
		cmds, err := s.runPipelined(ctx, enqueueScript, calls)
		if err != nil {
			return nil, fmt.Errorf("enqueue: %w", err)
		}
		for ci, c := range cmds {
			g := batch[ci]
			v, _ := c.Slice()
			if len(v) != 2*(g.end-g.start) {
				return nil, fmt.Errorf("enqueue: unexpected reply %v", c.Val())
			}
			for i := g.start; i < g.end; i++ {
				id, _ := v[2*(i-g.start)].(string)
				flag, _ := v[2*(i-g.start)+1].(int64)
				out[i] = Enqueued{ID: id, Deduplicated: flag == enqueueDeduplicated}
			}
		}
	}
	return out, nil
}
