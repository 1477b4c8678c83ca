package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wahaq/wahaq/internal/asynqcompat"
)

// The reconciler's repairs (issue 10): each is one script, atomic per task,
// claim or batch, and idempotent, so every worker may run them at once.
// The scripts learn the dedup and batch keys from the record and build them
// from the queue's prefix; all share the queue's hash tag, so they are valid
// on Redis Cluster.

// Repair kinds, the "kind" label of wahaq_reconciled_total.
const (
	// RepairNone: nothing to repair.
	RepairNone = ""
	// RepairGone: a live record whose asynq task was deleted outside wahaq
	// became canceled.
	RepairGone = "gone"
	// RepairArchived: a live record whose asynq task was archived outside
	// wahaq became dead with outcome archived.
	RepairArchived = "archived"
	// RepairRevived: a dead letter run again from asynq's archive became
	// live again (claim taken back, fresh retries), like a requeue.
	RepairRevived = "revived"
	// RepairSuperseded: a dead letter run again from asynq's archive while
	// its session had another live task was closed in that task's favour.
	RepairSuperseded = "superseded"
	// RepairStray: an asynq task queued again for a task that already
	// ended (canceled by an operator while active, delivered twice) was
	// removed.
	RepairStray = "stray"
	// RepairClaim: a dedup claim pointing at a finished or missing task was
	// released.
	RepairClaim = "claim"
	// RepairBatch: a batch left open by a producer whose lease ended
	// (batch_lease.go) was closed and marked interrupted.
	RepairBatch = "batch"
	// RepairQueue: a queue missing from asynq's queue set was registered.
	RepairQueue = "queue"
)

// OutcomeArchived is the outcome of a task archived in asynq's tools: it
// is a dead letter like the others (listed, requeue-able).
const OutcomeArchived = "archived"

// Error texts the repairs write.
const (
	errRemoved  = "removed from the queue outside wahaq (its asynq task was deleted)"
	errArchived = "archived outside wahaq (asynq's tools)"
)

// reconcileTaskScript compares one record with its asynq task and repairs
// a divergence.
//
// A repair that makes a live task final (gone: canceled; archived: dead)
// does what the finish script does for a final task: it enqueues the task's
// callback delivery and, when the batch becomes done, the batch's, and
// publishes the completions, so a callback receiver and a long-poll waiter
// learn of it like of any other end.
//
// KEYS[1] record, KEYS[2] asynq task, KEYS[3] dead letters, KEYS[4]
// semaphore, KEYS[5] asynq pending, KEYS[6] asynq scheduled, KEYS[7] asynq
// retry, KEYS[8] callback delivery set, KEYS[9] the queue's subscriptions,
// KEYS[10] completion channel.
// ARGV[1] id, ARGV[2] now (ms), ARGV[3] result TTL (s), ARGV[4] wahaq key
// prefix of the queue, ARGV[5] asynq task key prefix, ARGV[6] error text
// of a deleted task, ARGV[7] error text of an archived one, ARGV[8] task
// delivery id, ARGV[9] batch delivery id, ARGV[10] now (ns).
// Returns reconcileOK or the repair's code (reconcileGone ...).
var reconcileTaskScript = redis.NewScript(batchLua + callbackLua + claimLua + asynqcompat.TaskLua + `
local id = ARGV[1]
local st = redis.call('HGET', KEYS[1], 'state')
if not st then return 0 end
local ast = asynq_state(KEYS[2])
local sess = redis.call('HGET', KEYS[1], 'session') or ''
local dedup = ARGV[4] .. 'd:' .. sess
local b = redis.call('HGET', KEYS[1], 'batch')
local bk = b and (ARGV[4] .. 'b:' .. b)
local batch = bk and redis.call('EXISTS', bk) == 1
local function release()
  if redis.call('GET', dedup) == id then redis.call('DEL', dedup) end
end
local function unqueue()
  if ast == ASYNQ_PENDING then redis.call('LREM', KEYS[5], 0, id)
  elseif ast == ASYNQ_SCHEDULED then redis.call('ZREM', KEYS[6], id)
  elseif ast == ASYNQ_RETRY then redis.call('ZREM', KEYS[7], id) end
  redis.call('DEL', KEYS[2])
end
local queued = asynq_queued(ast)
-- the task is final now: callbacks and long-poll, as in the finish script
local function finished()
  if batch and batch_done(bk, ARGV[3]) then
    batch_finished(bk, KEYS[8], KEYS[9], ARGV[9], ARGV[10], KEYS[10], b)
  end
  cb_enqueue(KEYS[1], KEYS[8], KEYS[9], ARGV[8], 't:' .. id, ARGV[10])
  notify(KEYS[10], 't:' .. id)
end
if st == 'scheduled' or st == 'pending' or st == 'active' or st == 'retrying' then
  if not ast then
    -- an attempt in flight holds a live slot lease; its Finish ends the record
    local lease = tonumber(redis.call('ZSCORE', KEYS[4], id))
    if st == 'active' and lease and lease >= tonumber(ARGV[2]) then return 0 end
    redis.call('ZREM', KEYS[4], id)
    redis.call('HSET', KEYS[1], 'state', 'canceled', 'fin', ARGV[2], 'err', ARGV[6])
    redis.call('HDEL', KEYS[1], 'next')
    redis.call('EXPIRE', KEYS[1], ARGV[3])
    release()
    if batch then batch_move(bk, st, 'canceled') end
    finished()
    return 1
  elseif ast == ASYNQ_ARCHIVED then
    redis.call('ZREM', KEYS[4], id)
    redis.call('HSET', KEYS[1], 'state', 'dead', 'outcome', 'archived', 'fin', ARGV[2], 'err', ARGV[7])
    redis.call('HDEL', KEYS[1], 'next')
    redis.call('PERSIST', KEYS[1])
    redis.call('ZADD', KEYS[3], ARGV[2], id)
    release()
    if batch then
      batch_move(bk, st, 'dead')
      batch_outcome(bk, 'archived', 1)
    end
    finished()
    return 2
  end
  -- a scheduled record whose asynq task is pending is asynq moving it on time
  return 0
end
if st == 'dead' and queued then
  -- run again from asynq's archive and not started yet: a requeue
  local live = redis.call('GET', dedup)
  if live and live ~= id then
    if asynq_live(asynq_state(ARGV[5] .. live)) then
      unqueue()
      redis.call('ZREM', KEYS[3], id)
      redis.call('HSET', KEYS[1], 'state', 'canceled', 'err', 'superseded by live task ' .. live)
      redis.call('EXPIRE', KEYS[1], ARGV[3])
      if batch then batch_move(bk, 'dead', 'canceled'); batch_done(bk, ARGV[3]) end
      return 4
    end
  end
  local new = 'pending'
  if ast == ASYNQ_SCHEDULED then new = 'scheduled' elseif ast == ASYNQ_RETRY then new = 'retrying' end
  local oo = redis.call('HGET', KEYS[1], 'outcome')
  redis.call('SET', dedup, id)
  local at = nil
  if ast == ASYNQ_SCHEDULED then at = redis.call('ZSCORE', KEYS[6], id) elseif ast == ASYNQ_RETRY then at = redis.call('ZSCORE', KEYS[7], id) end
  claim_arm(dedup, at and tonumber(at) * 1000, ARGV[2])
  redis.call('ZREM', KEYS[3], id)
  redis.call('HSET', KEYS[1], 'state', new, 'attempts', 0, 'rst', 1)
  redis.call('HDEL', KEYS[1], 'outcome', 'fin', 'result', 'err', 'aoff')
  redis.call('PERSIST', KEYS[1])
  if batch then
    redis.call('PERSIST', bk)
    batch_move(bk, 'dead', new)
    if oo then batch_outcome(bk, oo, -1) end
  end
  return 3
end
if (st == 'canceled' or st == 'completed') and queued then
  -- asynq queued a task that already ended (an operator's cancel of an
  -- active task, which asynq retries): running it again would log out twice
  unqueue()
  return 5
end
return 0
`)

var reconcileKinds = []string{RepairNone, RepairGone, RepairArchived, RepairRevived, RepairSuperseded, RepairStray}

// Repair is one repair the reconciler made.
type Repair struct {
	// Kind is one of the Repair* kinds.
	Kind string
	// Instance and ID name the task, claim or batch repaired (a session for
	// RepairClaim, a batch id for RepairBatch, empty for RepairQueue).
	Instance, ID string
}

// ReconcileTasks compares the records of ids with their asynq tasks and
// repairs the divergences; it returns the repairs made.
func (s *Store) ReconcileTasks(ctx context.Context, instance string, ids []string, resultTTL time.Duration) ([]Repair, error) {
	k := s.Keys(instance)
	now := s.now().UnixMilli()
	ttl := ttlSeconds(resultTTL)
	call := func(id string) scriptCall {
		cb := s.callbackArgs(k)
		return scriptCall{
			keys: append([]string{k.Record(id), k.AsynqTask(id), k.DeadLetters(), k.Slots(), k.Pending(), k.Scheduled(), k.Retry()}, cb.keys...),
			args: append([]any{id, now, ttl, k.Prefix(), k.AsynqTaskPrefix(), errRemoved, errArchived}, cb.args...),
		}
	}
	var out []Repair
	for start := 0; start < len(ids); start += pipelineChunk {
		chunk := ids[start:min(start+pipelineChunk, len(ids))]
		calls := make([]scriptCall, len(chunk))
		for i, id := range chunk {
			calls[i] = call(id)
		}
		cmds, err := s.runPipelined(ctx, reconcileTaskScript, calls)
		if err != nil {
			return out, fmt.Errorf("reconcile tasks: %w", err)
		}
		for i, c := range cmds {
			n, _ := c.Int()
			if n > 0 && n < len(reconcileKinds) {
				out = append(out, Repair{Kind: reconcileKinds[n], Instance: instance, ID: chunk[i]})
			}
		}
	}
	return out, nil
}

// releaseClaimScript releases a dedup claim whose task is finished or
// missing. A claim of a live record stays, its backstop expiry re-armed
// from the task's next planned run (dedup.go), and so does one of a dead
// letter that asynq's tools queued again (reconcileTaskScript revives it).
//
// KEYS[1] dedup.
// ARGV[1] wahaq key prefix of the queue, ARGV[2] asynq task key prefix,
// ARGV[3] now (ms).
// Returns 1 when released, 0 otherwise.
var releaseClaimScript = redis.NewScript(claimLua + asynqcompat.TaskLua + `
local id = redis.call('GET', KEYS[1])
if not id then return 0 end
local rk = ARGV[1] .. 't:' .. id
local st = redis.call('HGET', rk, 'state')
if st == 'scheduled' or st == 'pending' or st == 'active' or st == 'retrying' then
  local v = redis.call('HMGET', rk, 'sched', 'next')
  claim_arm(KEYS[1], math.max(tonumber(v[1]) or 0, tonumber(v[2]) or 0), ARGV[3])
  return 0
end
if asynq_live(asynq_state(ARGV[2] .. id)) then return 0 end
redis.call('DEL', KEYS[1])
return 1
`)

// ReleaseStaleClaims releases the dedup claims of sessions whose task is
// finished or missing.
func (s *Store) ReleaseStaleClaims(ctx context.Context, instance string, sessions []string) ([]Repair, error) {
	k := s.Keys(instance)
	now := s.now().UnixMilli()
	calls := make([]scriptCall, len(sessions))
	for i, sess := range sessions {
		calls[i] = scriptCall{keys: []string{k.Dedup(sess)}, args: []any{k.Prefix(), k.AsynqTaskPrefix(), now}}
	}
	var out []Repair
	for start := 0; start < len(calls); start += pipelineChunk {
		end := min(start+pipelineChunk, len(calls))
		cmds, err := s.runPipelined(ctx, releaseClaimScript, calls[start:end])
		if err != nil {
			return out, fmt.Errorf("release claims: %w", err)
		}
		for i, c := range cmds {
			if n, _ := c.Int(); n == 1 {
				out = append(out, Repair{Kind: RepairClaim, Instance: instance, ID: sessions[start+i]})
			}
		}
	}
	return out, nil
}

// CloseAbandonedBatches closes up to limit batches of an instance whose
// producer's lease has ended (batch_lease.go: ExpiredOpenBatches, then
// CloseAbandoned, which re-checks the lease inside Redis, so a producer
// that renewed meanwhile keeps its batch and several reconcilers close each
// batch once). It returns the batches it closed.
func (s *Store) CloseAbandonedBatches(ctx context.Context, instance string, limit int64, ttl time.Duration) ([]Repair, error) {
	ids, err := s.ExpiredOpenBatches(ctx, instance, limit)
	if err != nil {
		return nil, err
	}
	var out []Repair
	var errs error
	for _, id := range ids {
		closed, err := s.CloseAbandoned(ctx, instance, id, ttl)
		if err != nil {
			errs = errors.Join(errs, err)
		} else if closed {
			out = append(out, Repair{Kind: RepairBatch, Instance: instance, ID: id})
		}
	}
	return out, errs
}

// RegisterQueue adds the instance's queue to asynq's queue set when it
// holds tasks there but is missing from the set (asynq's "queue rm --force"
// removed it while wahaq still uses it). It reports whether it did.
func (s *Store) RegisterQueue(ctx context.Context, instance string) (bool, error) {
	k := s.Keys(instance)
	in, err := s.rdb.SIsMember(ctx, asynqcompat.AllQueues, k.Queue).Result()
	if err != nil || in {
		return false, err
	}
	pipe := s.rdb.Pipeline()
	counts := []*redis.IntCmd{
		pipe.LLen(ctx, k.Pending()), pipe.LLen(ctx, asynqcompat.ActiveKey(k.Queue)), pipe.ZCard(ctx, k.Scheduled()),
		pipe.ZCard(ctx, k.Retry()), pipe.ZCard(ctx, k.Archived()), pipe.ZCard(ctx, k.DeadLetters()),
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return false, fmt.Errorf("register queue %s: %w", k.Queue, err)
	}
	var n int64
	for _, c := range counts {
		n += c.Val()
	}
	if n == 0 {
		return false, nil
	}
	if err := s.rdb.SAdd(ctx, asynqcompat.AllQueues, k.Queue).Err(); err != nil {
		return false, fmt.Errorf("register queue %s: %w", k.Queue, err)
	}
	return true, nil
}

// KeyKind is what a wahaq key found by Scan holds.
type KeyKind int

// Key kinds Scan reports.
const (
	KeyRecord KeyKind = iota + 1
	KeyDedup
	// KeyBatch is a batch or its task list; it only tells the reconciler
	// that the instance exists (abandoned batches are found by their lease).
	KeyBatch
)

// ScannedKey is one wahaq key found by Scan.
type ScannedKey struct {
	Kind     KeyKind
	Instance string
	// Name is the task id, session or batch id.
	Name string
}

// Scan runs one SCAN step over the keys of the store's namespace on rdb
// (one node of a cluster) from cursor, examining about count keys, and
// returns the records, dedup claims and batches found, and the next cursor
// (0 once the keyspace is covered).
func (s *Store) Scan(ctx context.Context, rdb redis.Cmdable, cursor uint64, count int64) ([]ScannedKey, uint64, error) {
	keys, next, err := rdb.Scan(ctx, cursor, NamespacePrefix(s.ns)+"*", count).Result()
	if err != nil {
		return nil, 0, fmt.Errorf("scan: %w", err)
	}
	out := make([]ScannedKey, 0, len(keys))
	for _, key := range keys {
		if sk, ok := s.parseKey(key); ok {
			out = append(out, sk)
		}
	}
	return out, next, nil
}

// parseKey reads a key written by Keys.
func (s *Store) parseKey(key string) (ScannedKey, bool) {
	rest, ok := strings.CutPrefix(key, NamespacePrefix(s.ns))
	if !ok {
		return ScannedKey{}, false
	}
	inst, rest, ok := strings.Cut(rest, "}:")
	if !ok {
		return ScannedKey{}, false
	}
	kind, name, ok := strings.Cut(rest, ":")
	if !ok || name == "" {
		return ScannedKey{}, false
	}
	sk := ScannedKey{Instance: inst, Name: name}
	switch kind {
	case "t":
		sk.Kind = KeyRecord
	case "d":
		sk.Kind = KeyDedup
	case "b":
		// a batch or its task list: batches are found through the open
		// batches' lease set, not by scanning; the key still names an
		// instance the reconciler must look at
		sk.Kind = KeyBatch
	default:
		return ScannedKey{}, false
	}
	return sk, true
}
