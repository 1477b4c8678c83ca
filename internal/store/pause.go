package store

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/wahaq/wahaq/internal/asynqcompat"
	"github.com/wahaq/wahaq/internal/base"
)

// Pausing a batch (issue 21).
//
// A paused batch starts none of its tasks; those in flight finish. Its
// tasks are neither canceled nor failed: their records keep their state
// (scheduled, pending, retrying) and the batch its counts, so it reads done
// only once every task really is final. The pause is one flag on the batch
// hash (BatchPaused, with BatchPausedBy) and the batch's id in the queue's
// set of paused batches (Keys.HeldBatches), written in one script
// (pauseBatchScript), so from that moment:
//
//   - the take script (take.go) looks at the set before it dequeues: a task
//     of a paused batch at the head of asynq's pending list is moved into
//     the batch's held set (Keys.BatchHeld) instead of being dequeued;
//   - the start script (start.go), which runs for the tasks asynq's own
//     dequeue delivers (a rate-limited server, the fast path off), refuses
//     them (StartHeld): the worker hands them back without spending a retry;
//   - holdBatchScript moves the batch's tasks waiting in asynq's scheduled
//     and retry sets into the held set. Pause runs it over the batch's task
//     list, and so does every reconciler pass while the batch stays paused,
//     which catches what reached asynq's sets after the pause: a task in
//     flight that failed and waits for its retry, one handed back.
//
// A held task keeps its asynq task hash as it was (message, state): asynq
// no longer lists it, but the reconciler, which compares records with
// asynq's task hashes, finds the task held by asynq and leaves it alone; a
// task deleted in asynq's tools meanwhile is still repaired (canceled).
// Nothing of a held task expires: it survives worker restarts.
//
// The held set is scored by the order the tasks go back in: a pending task
// by the order it was held in (the batch's counter BatchHeldSeq), a
// scheduled or retrying one by its time in asynq's set (Unix seconds, far
// above any counter), and the record's field FieldHeld says which of
// asynq's lists or sets it goes back to. Resume clears the flag first
// (unpauseBatchScript), then releaseBatchScript puts the held tasks back in
// chunks, in score order: pending ones at the tail of asynq's pending list,
// the others into their set at their time. A batch paused again meanwhile
// stops the release; what is still held stays held.
//
// Tasks enqueued into a paused batch (a discovery still filling it) go into
// asynq's queues as usual and are held as they reach the head.
//
// The scripts' keys are the queue's (one hash tag), so they are valid on
// Redis Cluster; the lines that touch asynq's keys are the ZSCORE/ZREM of
// holdBatchScript, the take script's asynq_head/asynq_pop_head and
// releaseBatchScript's asynq_push_tail/ZADD/EXISTS (asynqcompat.QueueLua
// knows which end of the pending list is its head).

// Field names of a paused batch (Keys.Batch) and of a held task's record.
const (
	// BatchPaused is when the batch was paused (Unix ms); absent when it
	// runs.
	BatchPaused = "paused"
	// BatchPausedBy is who paused it (a token's name, "cli", "api").
	BatchPausedBy = "paused_by"
	// BatchUnpaused and BatchUnpausedBy are when and by whom it was last
	// resumed.
	BatchUnpaused   = "resumed"
	BatchUnpausedBy = "resumed_by"
	// BatchHeldSeq numbers the pending tasks held, in the order they were.
	BatchHeldSeq = "hseq"
	// FieldHeld is set on the record of a held task: "p" (goes back to
	// asynq's pending list), "s" (its scheduled set) or "r" (its retry
	// set).
	FieldHeld = "held"
)

// holdLua defines hold_task(batch key, record key, id, kind, score): it
// puts id into the batch's held set (the batch key + ":held",
// Keys.BatchHeld) with kind in its record. A nil score means the next of
// the batch's pending order.
const holdLua = `
local function hold_task(bkey, rec, id, kind, score)
  if not score then score = redis.call('HINCRBY', bkey, 'hseq', 1) end
  redis.call('ZADD', bkey .. ':held', score, id)
  redis.call('HSET', rec, 'held', kind)
end
`

// pauseBatchScript pauses a batch.
//
// KEYS[1] batch, KEYS[2] the queue's paused batches.
// ARGV[1] batch id, ARGV[2] now (ms), ARGV[3] actor.
// Returns pausePaused, pauseAlready, pauseMissing or pauseDone (closed and
// every task final: nothing to pause).
var pauseBatchScript = redis.NewScript(batchLua + `
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('HEXISTS', KEYS[1], 'paused') == 1 then return 0 end
local v = batch_read(KEYS[1])
if not v[5] then
  local fin = (tonumber(v[2]) or 0) + (tonumber(v[3]) or 0) + (tonumber(v[4]) or 0)
  if fin >= (tonumber(v[1]) or 0) then return -2 end
end
redis.call('HSET', KEYS[1], 'paused', ARGV[2], 'paused_by', ARGV[3])
redis.call('SADD', KEYS[2], ARGV[1])
return 1
`)

// Replies of pauseBatchScript and unpauseBatchScript.
const (
	pausePaused  = 1
	pauseAlready = 0
	pauseMissing = -1
	pauseDone    = -2
)

// holdBatchScript moves, in one chunk of a paused batch's task list, the
// tasks waiting in asynq's scheduled or retry set into the batch's held
// set, each scored by its time there. A task in the retry set whose record
// is not retrying was handed back without an attempt (a full cap, a rate,
// the start script's StartHeld, which waits a minute): no backoff is owed,
// so it is scored now and goes back due. A batch no longer paused is left
// alone.
//
// KEYS[1] batch, KEYS[2] batch task list, KEYS[3] asynq scheduled, KEYS[4]
// asynq retry.
// ARGV[1] first index, ARGV[2] last index, ARGV[3] record key prefix,
// ARGV[4] now (Unix s).
// Returns {tasks held, ids read}.
var holdBatchScript = redis.NewScript(holdLua + `
if redis.call('HEXISTS', KEYS[1], 'paused') == 0 then return {0, 0} end
local ids = redis.call('LRANGE', KEYS[2], ARGV[1], ARGV[2])
local n = 0
for _, id in ipairs(ids) do
  local rk = ARGV[3] .. id
  local cur = redis.call('HMGET', rk, 'state', 'held')
  local st = cur[1]
  if not cur[2] and (st == 'scheduled' or st == 'pending' or st == 'retrying') then
    local set, kind = KEYS[3], 's'
    local sc = redis.call('ZSCORE', set, id)
    if not sc then set, kind = KEYS[4], 'r'; sc = redis.call('ZSCORE', set, id) end
    if sc then
      if kind == 'r' and st ~= 'retrying' then sc = math.min(tonumber(sc), tonumber(ARGV[4])) end
      redis.call('ZREM', set, id)
      hold_task(KEYS[1], rk, id, kind, sc)
      n = n + 1
    end
  end
end
return {n, #ids}
`)

// unpauseBatchScript clears a batch's pause: from now on its tasks start
// again, and releaseBatchScript puts the held ones back.
//
// KEYS[1] batch, KEYS[2] the queue's paused batches.
// ARGV[1] batch id, ARGV[2] now (ms), ARGV[3] actor.
// Returns pausePaused (resumed now), pauseAlready (it was not paused) or
// pauseMissing.
var unpauseBatchScript = redis.NewScript(`
redis.call('SREM', KEYS[2], ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('HEXISTS', KEYS[1], 'paused') == 0 then return 0 end
redis.call('HDEL', KEYS[1], 'paused', 'paused_by')
redis.call('HSET', KEYS[1], 'resumed', ARGV[2], 'resumed_by', ARGV[3])
return 1
`)

// releaseBatchScript puts up to a chunk of a batch's held tasks back into
// asynq's queues, lowest score first: a pending one at the tail of the
// pending list (so they leave in the order they were held), a scheduled or
// retrying one into its set at its time. A task that ended or left asynq
// meanwhile (canceled, deleted in asynq's tools) only leaves the held set.
// A batch paused again stops the release.
//
// KEYS[1] batch, KEYS[2] batch held set, KEYS[3] asynq pending, KEYS[4]
// asynq scheduled, KEYS[5] asynq retry.
// ARGV[1] chunk size, ARGV[2] record key prefix, ARGV[3] asynq task key
// prefix.
// Returns {tasks put back, tasks still held}, or {0, -1} when the batch is
// paused.
var releaseBatchScript = redis.NewScript(asynqcompat.QueueLua + `
if redis.call('HEXISTS', KEYS[1], 'paused') == 1 then return {0, -1} end
local v = redis.call('ZRANGE', KEYS[2], 0, tonumber(ARGV[1]) - 1, 'WITHSCORES')
local n = 0
for i = 1, #v, 2 do
  local id, sc = v[i], v[i + 1]
  local rk = ARGV[2] .. id
  local cur = redis.call('HMGET', rk, 'state', 'held')
  local st, kind = cur[1], cur[2]
  if kind then redis.call('HDEL', rk, 'held') end
  if kind and (st == 'scheduled' or st == 'pending' or st == 'retrying') and redis.call('EXISTS', ARGV[3] .. id) == 1 then
    if kind == 'p' then
      asynq_push_tail(KEYS[3], id)
    elseif kind == 's' then
      redis.call('ZADD', KEYS[4], sc, id)
    else
      redis.call('ZADD', KEYS[5], sc, id)
    end
    n = n + 1
  end
  redis.call('ZREM', KEYS[2], id)
end
return {n, redis.call('ZCARD', KEYS[2])}
`)

// pauseChunk is how many tasks one hold or release call looks at.
const pauseChunk = 500

// PauseResult is what PauseBatch or ResumeBatch did.
type PauseResult struct {
	// Changed is false when the batch was already paused (PauseBatch) or
	// was not paused (ResumeBatch): nothing was done.
	Changed bool
	// Moved is how many tasks were taken out of asynq's scheduled and
	// retry sets (PauseBatch) or put back into asynq's queues
	// (ResumeBatch).
	Moved int64
}

// ErrBatchDone is PauseBatch's error for a batch whose tasks are all final.
var ErrBatchDone = base.ErrBatchDone

// PauseBatch pauses batch id of instance on behalf of actor: none of its
// tasks starts until ResumeBatch. It fails with base.ErrNotFound for a
// batch that does not exist and ErrBatchDone for one that is done.
func (s *Store) PauseBatch(ctx context.Context, instance, id, actor string) (PauseResult, error) {
	k := s.Keys(instance)
	code, err := pauseBatchScript.Run(ctx, s.rdb, []string{k.Batch(id), k.HeldBatches()}, id, s.now().UnixMilli(), actor).Int()
	if err != nil {
		return PauseResult{}, fmt.Errorf("pause batch %s: %w", id, err)
	}
	switch code {
	case pauseMissing:
		return PauseResult{}, fmt.Errorf("batch %s: %w", id, base.ErrNotFound)
	case pauseDone:
		return PauseResult{}, fmt.Errorf("pause batch %s: %w", id, ErrBatchDone)
	}
	n, err := s.HoldBatch(ctx, instance, id)
	return PauseResult{Changed: code == pausePaused, Moved: n}, err
}

// HoldBatch moves the tasks of paused batch id waiting in asynq's scheduled
// and retry sets into its held set, in chunks of its task list, and
// returns how many it moved. A batch that is not paused is left alone.
func (s *Store) HoldBatch(ctx context.Context, instance, id string) (int64, error) {
	k := s.Keys(instance)
	var held int64
	for start := int64(0); ; start += pauseChunk {
		v, err := holdBatchScript.Run(ctx, s.rdb, []string{k.Batch(id), k.BatchTasks(id), k.Scheduled(), k.Retry()},
			start, start+pauseChunk-1, k.Record(""), s.now().Unix()).Int64Slice()
		if err != nil {
			return held, fmt.Errorf("hold batch %s: %w", id, err)
		}
		if len(v) != 2 {
			return held, fmt.Errorf("hold batch %s: unexpected reply %v", id, v)
		}
		held += v[0]
		if v[1] < pauseChunk {
			return held, nil
		}
	}
}

// ResumeBatch resumes paused batch id of instance on behalf of actor: its
// held tasks go back into asynq's queues in their order and its tasks start
// again. It fails with base.ErrNotFound for a batch that does not exist. A
// resume that stopped half-way (Redis failed) is finished by calling it
// again.
func (s *Store) ResumeBatch(ctx context.Context, instance, id, actor string) (PauseResult, error) {
	k := s.Keys(instance)
	// First hold what still waits in asynq's scheduled and retry sets: a
	// task asynq dequeued while the batch was paused (the take holds pending
	// ones at the head, but with the fast path off asynq dequeues them
	// itself) was handed back with a long delay, and the reconciler may not
	// have held it yet; held, it is put back as due now with the rest.
	if _, err := s.HoldBatch(ctx, instance, id); err != nil {
		return PauseResult{}, fmt.Errorf("resume batch %s: %w", id, err)
	}
	code, err := unpauseBatchScript.Run(ctx, s.rdb, []string{k.Batch(id), k.HeldBatches()}, id, s.now().UnixMilli(), actor).Int()
	if err != nil {
		return PauseResult{}, fmt.Errorf("resume batch %s: %w", id, err)
	}
	if code == pauseMissing {
		return PauseResult{}, fmt.Errorf("batch %s: %w", id, base.ErrNotFound)
	}
	out := PauseResult{Changed: code == pausePaused}
	for range maxReleaseCalls {
		v, err := releaseBatchScript.Run(ctx, s.rdb,
			[]string{k.Batch(id), k.BatchHeld(id), k.Pending(), k.Scheduled(), k.Retry()},
			pauseChunk, k.Record(""), k.AsynqTaskPrefix()).Int64Slice()
		if err != nil {
			return out, fmt.Errorf("resume batch %s: %w", id, err)
		}
		if len(v) != 2 {
			return out, fmt.Errorf("resume batch %s: unexpected reply %v", id, v)
		}
		out.Moved += v[0]
		if v[1] <= 0 {
			if out.Moved > 0 {
				// idle workers learn of the tasks put back now rather than at
				// their next recheck; a hint (AnnounceWork), so not an error
				_ = s.AnnounceWork(ctx, instance)
			}
			return out, nil
		}
	}
	return out, fmt.Errorf("resume batch %s: more than %d tasks held", id, maxReleaseCalls*pauseChunk)
}

// maxReleaseCalls bounds ResumeBatch's loop: far more than any batch holds
// (a batch takes at most a listing of wahaclient.MaxListEntries).
const maxReleaseCalls = 1 << 16

// HoldPausedBatches runs HoldBatch for every paused batch of instance (the
// reconciler's pass), dropping from the set the batches that no longer
// exist (and their held sets), and returns how many tasks it moved.
func (s *Store) HoldPausedBatches(ctx context.Context, instance string) (int64, error) {
	k := s.Keys(instance)
	ids, err := s.rdb.SMembers(ctx, k.HeldBatches()).Result()
	if err != nil {
		return 0, fmt.Errorf("paused batches of %s: %w", instance, err)
	}
	var n int64
	for _, id := range ids {
		ok, err := s.rdb.Exists(ctx, k.Batch(id)).Result()
		if err != nil {
			return n, fmt.Errorf("paused batch %s: %w", id, err)
		}
		if ok == 0 {
			// expired while paused (done, its tasks canceled): its held set
			// names only tasks that ended, and would outlive it
			if _, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.SRem(ctx, k.HeldBatches(), id)
				p.Del(ctx, k.BatchHeld(id))
				return nil
			}); err != nil {
				return n, fmt.Errorf("paused batch %s: %w", id, err)
			}
			continue
		}
		m, err := s.HoldBatch(ctx, instance, id)
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
