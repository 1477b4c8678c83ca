package store

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wahaq/wahaq/internal/asynqcompat"
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
// Now means now: a request for a session whose live task is scheduled later
// than the request's time pulls that task forward (to the pending list for a
// request for now, else to the earlier time) and returns it flagged
// enqueueRescheduled; a request for a later time joins the earlier task.
//
// A batch takes tasks only while it is open; each call renews the producer's
// lease on it (batch_lease.go) and appends the created ids to its task list.
//
// KEYS[1] asynq pending list, KEYS[2] asynq scheduled set, KEYS[3] batch,
// KEYS[4] batch task list, KEYS[5] open batches, then per task j (0-based):
// KEYS[6+3j] record, KEYS[7+3j] dedup, KEYS[8+3j] asynq task.
// ARGV[1] now (ns), ARGV[2] process-at (Unix s, "0" = now), ARGV[3]
// batch id, ARGV[4] now (ms), ARGV[5] max retries, ARGV[6]
// scheduled-for (ms or ""), ARGV[7] asynq task key prefix, ARGV[8] batch
// lease end (ms), ARGV[9] callback URL (""), ARGV[10] "1" when the tasks
// come from a discovery listing, then per task j: ARGV[11+3j] id,
// ARGV[12+3j] asynq message, ARGV[13+3j] session.
// A discovery's sessions are remembered in the batch's listed hash (the
// batch key + ":seen", Keys.BatchListed; session -> task id, or "d:" + the
// live id it was deduplicated onto) until the batch closes, so a listing
// read again (a discovery run again after a crash) creates nothing twice
// even for sessions whose task has already ended; such a session's flag is
// enqueueInBatch, or enqueueDeduplicated as the first time.
// A callback URL goes into each new record; a deduplicated task takes it
// too (its record is found by prefix, in the same slot): as its "cb" when
// it has none, else appended to its "cbx" (callback.go), so every caller
// hears of the live task's end once. A URL the task holds already is not
// added twice; a task holding MaxCallbacks takes no more: that request is
// answered enqueueCallbacksFull and changes nothing (not even a pull
// forward).
// Returns the tasks not created, as {j, live id, flag, ...} (j 0-based; a
// task not listed was created under its own id; most of a bulk is, and a
// reply entry per task cost Redis time): flag enqueueDeduplicated or
// enqueueRescheduled onto the live id, enqueueInBatch when that live task
// is of this very batch already, enqueueCallbacksFull; or the error "BATCHCLOSED"
// (ErrBatchClosed) and writes nothing.
var enqueueScript = redis.NewScript(batchLua + asynqcompat.TaskLua + asynqcompat.PushLua + `
local n = (#KEYS - 5) / 3
local state, list = 'pending', KEYS[1]
if ARGV[2] ~= '0' then state, list = 'scheduled', KEYS[2] end
if ARGV[3] ~= '' then
  if redis.call('HEXISTS', KEYS[3], 'open') == 0 then
    return redis.error_reply('BATCHCLOSED batch ' .. ARGV[3] .. ' is closed')
  end
  -- renew the producer's lease (batch_lease.go); GT: never shortened, so
  -- of several producers the latest renewal holds
  redis.call('ZADD', KEYS[5], 'GT', ARGV[8], ARGV[3])
end
-- the record's fields shared by the group; the session goes last
local rec = {'state', state, 'max', ARGV[5], 'enq', ARGV[4]}
if ARGV[3] ~= '' then rec[#rec + 1] = 'batch'; rec[#rec + 1] = ARGV[3] end
if ARGV[6] ~= '' then rec[#rec + 1] = 'sched'; rec[#rec + 1] = ARGV[6] end
if ARGV[9] ~= '' then rec[#rec + 1] = 'cb'; rec[#rec + 1] = ARGV[9] end
local ns = #rec + 1
rec[ns] = 'session'
-- pull the live scheduled task live forward to this request's time, if
-- that is earlier; recKey is its record
local function pull_forward(live, recKey)
  local at = tonumber(redis.call('HGET', recKey, 'sched') or '')
  if not at then
    local sc = redis.call('ZSCORE', KEYS[2], live)
    if not sc then return false end
    at = tonumber(sc) * 1000
  end
  if state == 'scheduled' and tonumber(ARGV[6]) >= at then return false end
  if state == 'pending' then
    if redis.call('ZREM', KEYS[2], live) == 0 then return false end
    redis.call('LPUSH', KEYS[1], live)
    asynq_pending(ARGV[7] .. live, ARGV[1])
    redis.call('HSET', recKey, 'state', 'pending')
    redis.call('HDEL', recKey, 'sched')
    local b = redis.call('HGET', recKey, 'batch')
    if b then
      -- the batch key of b: KEYS[3] is this request's batch key, ending in ARGV[3]
      local bk = string.sub(KEYS[3], 1, #KEYS[3] - #ARGV[3]) .. b
      if redis.call('EXISTS', bk) == 1 then batch_move(bk, 'scheduled', 'pending') end
    end
  else
    if redis.call('ZADD', KEYS[2], 'XX', 'CH', ARGV[2], live) == 0 and not redis.call('ZSCORE', KEYS[2], live) then
      return false
    end
    redis.call('HSET', recKey, 'sched', ARGV[6])
  end
  return true
end
-- give the live task this request's callback URL too; false when it holds
-- MaxCallbacks already
local function cb_join(liveRec, url)
  local cur = redis.call('HMGET', liveRec, 'cb', 'cbx')
  if not cur[1] then
    redis.call('HSET', liveRec, 'cb', url)
    return true
  end
  if cur[1] == url then return true end
  if not cur[2] then
    redis.call('HSET', liveRec, 'cbx', url)
    return true
  end
  local n = 1
  for u in string.gmatch(cur[2], '[^\n]+') do
    if u == url then return true end
    n = n + 1
  end
  if n >= ` + maxCallbacksLua + ` then return false end
  redis.call('HSET', liveRec, 'cbx', cur[2] .. '\n' .. url)
  return true
end
local out, ids, created, made = {}, {}, 0, {}
local listed = KEYS[3] .. ':seen' -- Keys.BatchListed
-- a new claim's backstop expiry (dedup.go), the same for every task of the
-- call: written with the claim itself, so taking it costs one command
-- (a string: a Lua number is formatted again on every call)
local claim_ms = string.format('%d', math.max(tonumber(ARGV[6]) or tonumber(ARGV[4]), tonumber(ARGV[4])) - tonumber(ARGV[4]) + ` + claimSlackMs + `)
for j = 0, n - 1 do
  local recKey, dedup, id = KEYS[6 + 3*j], KEYS[7 + 3*j], ARGV[11 + 3*j]
  local dup, live = false, nil
  if ARGV[10] == '1' then
    local before = redis.call('HGET', listed, ARGV[13 + 3*j])
    if before then
      dup = true
      if string.sub(before, 1, 2) == 'd:' then
        out[#out + 1] = j
        out[#out + 1] = string.sub(before, 3)
        out[#out + 1] = 1
      else
        out[#out + 1] = j
        out[#out + 1] = before
        out[#out + 1] = 3
      end
    end
  end
  -- claim the session; the reply is the previous holder, if any
  -- (SET NX, then GET only when it failed: most tasks of a bulk are new,
  -- and SET's GET option costs every one of them)
  if not dup and not redis.call('SET', dedup, id, 'NX', 'PX', claim_ms) then live = redis.call('GET', dedup) end
  if live then
    local st = asynq_state(ARGV[7] .. live)
    if asynq_live(st) then
      dup = true
      local liveRec = string.sub(recKey, 1, #recKey - #id) .. live
      local flag = 1
      if ARGV[9] ~= '' and not cb_join(liveRec, ARGV[9]) then
        flag = 4
      elseif ARGV[3] ~= '' and redis.call('HGET', liveRec, 'batch') == ARGV[3] then
        flag = 3 -- already in this batch: named twice, or a discovery run again
      elseif st == ASYNQ_SCHEDULED and pull_forward(live, liveRec) then
        flag = 2
      end
      out[#out + 1] = j
      out[#out + 1] = live
      out[#out + 1] = flag
      if ARGV[10] == '1' and flag ~= 3 and flag ~= 4 then redis.call('HSET', listed, ARGV[13 + 3*j], 'd:' .. live) end
    else
      redis.call('SET', dedup, id, 'PX', claim_ms) -- a stale claim: the task is gone
    end
  end
  if not dup then
    rec[ns + 1] = ARGV[13 + 3*j]
    if ARGV[10] == '1' then redis.call('HSET', listed, ARGV[13 + 3*j], id) end
    redis.call('HSET', recKey, unpack(rec))
    if state == 'pending' then
      asynq_new(KEYS[8 + 3*j], ARGV[12 + 3*j], ARGV[1])
      ids[#ids + 1] = id
    else
      asynq_new_scheduled(KEYS[8 + 3*j], ARGV[12 + 3*j])
      ids[#ids + 1] = ARGV[2]
      ids[#ids + 1] = id
    end
    created = created + 1
    made[#made + 1] = id
  end
end
if #ids > 0 then
  if state == 'pending' then
    redis.call('LPUSH', list, unpack(ids))
  else
    redis.call('ZADD', list, unpack(ids))
  end
end
-- a discovery that dies for good without closing its batch leaves its
-- listed sessions to expire (the batch's close drops them at once)
if ARGV[10] == '1' then redis.call('PEXPIRE', listed, 86400000) end
if ARGV[3] ~= '' and created > 0 then
  redis.call('HINCRBY', KEYS[3], 'total', created)
  redis.call('HINCRBY', KEYS[3], state, created)
  redis.call('RPUSH', KEYS[4], unpack(made))
end
return out
`)

// Flags of enqueueScript's reply, per task.
const (
	enqueueCreated      = 0
	enqueueDeduplicated = 1
	enqueueRescheduled  = 2 // deduplicated onto a live task pulled forward
	enqueueInBatch      = 3 // the live task is of the same batch
	// enqueueCallbacksFull: deduplicated onto a live task that holds
	// MaxCallbacks URLs already; nothing was changed
	enqueueCallbacksFull = 4
)

// maxCallbacksLua is MaxCallbacks written into the enqueue script.
var maxCallbacksLua = strconv.Itoa(MaxCallbacks)

// ErrBatchClosed is returned by Enqueue for a batch that takes no more
// tasks: it was closed, e.g. by the reconciler after its producer's lease
// ended. Nothing of that call was written.
var ErrBatchClosed = base.ErrBatchClosed

// enqueueGroup is how many tasks one enqueue script call creates.
const enqueueGroup = 100

// group is a run ts[start:end] of tasks that share one enqueue script call.
type group struct{ start, end int }

// enqueueCalls encodes the script calls of groups: the tasks' ids (new ones
// are set in ts), their asynq messages, keys and arguments.
func (s *Store) enqueueCalls(ctx context.Context, ts []NewTask, groups []group, now time.Time) ([]scriptCall, error) {
	calls := make([]scriptCall, 0, len(groups))
	for _, g := range groups {
		first := &ts[g.start]
		k := s.Keys(first.Instance)
		if err := s.publish(ctx, k.Queue); err != nil {
			return nil, err
		}
		processAt, sched := "0", ""
		if first.ProcessAt.After(now) {
			processAt = strconv.FormatInt(ceilUnix(first.ProcessAt), 10)
			sched = strconv.FormatInt(first.ProcessAt.UnixMilli(), 10)
		}
		n := g.end - g.start
		keys := make([]string, 0, 5+3*n)
		keys = append(keys, k.Pending(), k.Scheduled(), k.Batch(first.BatchID), k.BatchTasks(first.BatchID), k.OpenBatches())
		listed := ""
		if first.Listed && first.BatchID != "" {
			listed = "1"
		}
		args := make([]any, 0, 10+3*n)
		args = append(args, now.UnixNano(), processAt, first.BatchID, now.UnixMilli(),
			first.MaxRetries, sched, k.AsynqTaskPrefix(), now.Add(s.lease).UnixMilli(), first.CallbackURL, listed)
		timeout := timeoutSeconds(first.Timeout)
		for i := g.start; i < g.end; i++ {
			t := &ts[i]
			if t.ID == "" {
				t.ID = base.NewID()
			}
			payload := base.Payload{Instance: t.Instance, Session: t.Session, BatchID: t.BatchID, MaxRetries: t.MaxRetries,
				TraceParent: t.TraceParent}.Encode()
			msg := asynqcompat.Encode(asynqcompat.Message{
				Type: base.TypeLogout, Payload: payload, ID: t.ID, Queue: k.Queue, Retry: asynqMaxRetry, TimeoutSeconds: timeout,
			})
			keys = append(keys, k.Record(t.ID), k.Dedup(t.Session), k.AsynqTask(t.ID))
			args = append(args, t.ID, msg, t.Session)
		}
		calls = append(calls, scriptCall{keys: keys, args: args})
	}
	return calls, nil
}

// announceGroups announces work on the queues of groups (AnnounceWork),
// each once.
func (s *Store) announceGroups(ctx context.Context, ts []NewTask, groups []group) {
	var ins []string
	for _, g := range groups {
		if in := ts[g.start].Instance; !slices.Contains(ins, in) {
			ins = append(ins, in)
		}
	}
	s.announce(ctx, ins...)
}

// readEnqueued writes the replies of the script calls of groups into out.
// A call that was not run, or whose outcome is unknown, leaves its entries
// empty: the caller counts from Redis.
func readEnqueued(cmds []*redis.Cmd, ts []NewTask, groups []group, out []Enqueued) error {
	for ci, c := range cmds {
		if c == nil || c.Err() != nil {
			continue
		}
		g := groups[ci]
		v, err := c.Slice()
		if err != nil || len(v)%3 != 0 {
			return fmt.Errorf("unexpected reply %v", c.Val())
		}
		for i := g.start; i < g.end; i++ {
			out[i] = Enqueued{ID: ts[i].ID}
		}
		for r := 0; r < len(v); r += 3 {
			j, _ := v[r].(int64)
			id, _ := v[r+1].(string)
			flag, _ := v[r+2].(int64)
			i := g.start + int(j)
			if j < 0 || i >= g.end || id == "" {
				return fmt.Errorf("unexpected reply %v", c.Val())
			}
			out[i] = Enqueued{ID: id, Deduplicated: true, Rescheduled: flag == enqueueRescheduled, InBatch: flag == enqueueInBatch,
				CallbacksFull: flag == enqueueCallbacksFull}
		}
	}
	return nil
}

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
	// TraceParent is the W3C traceparent of the trace the task was enqueued
	// in, carried in the payload to the worker; "" when not traced.
	TraceParent string
	// CallbackURL, when set, receives the task when it is final. It must
	// have passed the allow-list already.
	CallbackURL string
	// Listed marks a task of a discovery listing: its batch remembers the
	// session until it closes (Keys.BatchListed), so the same listing read
	// again creates nothing twice.
	Listed bool
}

// Enqueued is the result of creating one task.
type Enqueued struct {
	// ID is the task's id, or the live task's id when Deduplicated.
	ID string
	// Deduplicated is true when the session already had a live task.
	Deduplicated bool
	// Rescheduled is true when that live task was scheduled later and was
	// pulled forward to this request's time.
	Rescheduled bool
	// InBatch is true (with Deduplicated) when that live task belongs to
	// the same batch already: the session was named twice, or a discovery
	// runs again after a crash.
	InBatch bool
	// CallbacksFull is true (with Deduplicated) when the request named a
	// callback URL and the live task holds MaxCallbacks already: nothing
	// was changed for this request.
	CallbacksFull bool
}

// Enqueue creates tasks: groups of up to 100 tasks that share an instance,
// process time, batch and retry limit go to Redis as one script call, and
// up to ten such calls as one pipeline, so a 50,000-session batch takes 50
// round trips. Each task is created atomically with its dedup entry and batch
// count; a session that already has a live task (or comes twice) is
// deduplicated. Inputs must be validated already.
//
// On an error, the returned slice still holds the results of the script
// calls that succeeded; an entry with an empty ID was not written, or its
// fate is unknown (a timeout): a batch's "total" in Redis is the truth.
func (s *Store) Enqueue(ctx context.Context, ts []NewTask) ([]Enqueued, error) {
	out := make([]Enqueued, len(ts))
	now := s.now()
	var groups []group
	same := func(a, b *NewTask) bool {
		return a.Instance == b.Instance && a.BatchID == b.BatchID && a.MaxRetries == b.MaxRetries &&
			a.Timeout == b.Timeout && a.ProcessAt.Equal(b.ProcessAt) && a.CallbackURL == b.CallbackURL && a.Listed == b.Listed
	}
	for i := 0; i < len(ts); {
		j := i + 1
		for j < len(ts) && j-i < enqueueGroup && same(&ts[i], &ts[j]) {
			j++
		}
		groups = append(groups, group{i, j})
		i = j
	}
	// The next pipeline is encoded while Redis runs the current one, which
	// one step at a time left Redis idle about a fifth of the time. They
	// are sent one after the other, so tasks reach the queue and the
	// batch's task list in the order given.
	const groupsPerPipeline = pipelineChunk / enqueueGroup
	type encoded struct {
		groups []group
		calls  []scriptCall
		err    error
	}
	next := make(chan encoded, 1)
	stop := make(chan struct{})
	go func() {
		defer close(next)
		for gi := 0; gi < len(groups); gi += groupsPerPipeline {
			batch := groups[gi:min(gi+groupsPerPipeline, len(groups))]
			calls, err := s.enqueueCalls(ctx, ts, batch, now)
			select {
			case next <- encoded{groups: batch, calls: calls, err: err}:
			case <-stop:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	for e := range next {
		err := e.err
		if err == nil {
			var cmds []*redis.Cmd
			cmds, err = s.runPipelined(ctx, enqueueScript, e.calls)
			if rerr := readEnqueued(cmds, ts, e.groups, out); err == nil {
				err = rerr
			}
			if err == nil {
				s.announceGroups(ctx, ts, e.groups)
			}
		}
		if err != nil {
			// let the encoder end: it writes the ids of ts
			close(stop)
			for range next {
			}
			if redis.HasErrorPrefix(err, "BATCHCLOSED") {
				err = fmt.Errorf("%w: %w", ErrBatchClosed, err)
			}
			return out, fmt.Errorf("enqueue: %w", err)
		}
	}
	if err := s.keepTraces(ctx, ts, out); err != nil {
		return nil, err
	}
	return out, nil
}
