package store

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wahaq/wahaq/internal/asynqcompat"
)

// cancelBatchScript cancels, in one chunk of a batch's task list
// (Keys.BatchTasks), every task that has not started, as cancelScript does
// for one: it leaves asynq (pending or scheduled), its record becomes
// canceled and expires, its dedup entry goes, and the batch counts it
// canceled. Tasks that started (active, retrying) or are final are counted,
// not touched. Chunks keep each call short: Redis runs one script at a time.
// The per-task keys are derived from prefixes; they share the queue's hash
// tag, so this is valid on Redis Cluster.
//
// KEYS[1] batch, KEYS[2] batch task list, KEYS[3] asynq pending, KEYS[4]
// asynq scheduled.
// ARGV[1] first index, ARGV[2] last index, ARGV[3] now (ms), ARGV[4] result
// TTL (s), ARGV[5] record key prefix, ARGV[6] asynq task key prefix, ARGV[7]
// dedup key prefix.
// Returns {canceled, started, final, ids read}.
var cancelBatchScript = redis.NewScript(batchLua + asynqcompat.TaskLua + `
local ids = redis.call('LRANGE', KEYS[2], ARGV[1], ARGV[2])
local canceled, started, final = 0, 0, 0
local batch = redis.call('EXISTS', KEYS[1]) == 1
for _, id in ipairs(ids) do
  local rk, ak = ARGV[5] .. id, ARGV[6] .. id
  local st = redis.call('HGET', rk, 'state')
  local ast = asynq_state(ak)
  if (st == 'scheduled' or st == 'pending') and ast and ast ~= ASYNQ_PENDING and ast ~= ASYNQ_SCHEDULED then
    -- the record lags asynq (a worker holds it, or it is in asynq's retry or
    -- archive): not ours to cancel
    started = started + 1
  elseif st == 'scheduled' or st == 'pending' then
    if ast == ASYNQ_PENDING then
      redis.call('LREM', KEYS[3], 0, id)
    elseif ast == ASYNQ_SCHEDULED then
      redis.call('ZREM', KEYS[4], id)
    end
    redis.call('DEL', ak)
    redis.call('HSET', rk, 'state', 'canceled', 'fin', ARGV[3])
    redis.call('EXPIRE', rk, ARGV[4])
    local sess = redis.call('HGET', rk, 'session')
    if sess and redis.call('GET', ARGV[7] .. sess) == id then redis.call('DEL', ARGV[7] .. sess) end
    if batch then batch_move(KEYS[1], st, 'canceled') end
    canceled = canceled + 1
  elseif st == 'active' or st == 'retrying' then
    started = started + 1
  else
    final = final + 1 -- completed, dead, canceled, or expired
  end
end
if batch and canceled > 0 then batch_done(KEYS[1], ARGV[4]) end
return {canceled, started, final, #ids}
`)

// batchCancelChunk is how many tasks one cancelBatchScript call looks at.
const batchCancelChunk = 500

// BatchCanceled is what CancelBatch did.
type BatchCanceled struct {
	// Canceled is how many tasks were canceled (scheduled or pending).
	Canceled int64
	// Started is how many had started and are not final (active, retrying):
	// they run to their end.
	Started int64
	// Final is how many were already completed, dead or canceled.
	Final int64
}

// CancelBatch cancels every task of a batch that has not started, in chunks
// of batchCancelChunk tasks, each chunk atomic. The batch must exist on
// instance. A batch still being filled keeps taking tasks: cancel it again
// once it is closed.
func (s *Store) CancelBatch(ctx context.Context, instance, id string, resultTTL time.Duration) (BatchCanceled, error) {
	k := s.Keys(instance)
	var out BatchCanceled
	for start := int64(0); ; start += batchCancelChunk {
		v, err := cancelBatchScript.Run(ctx, s.rdb,
			[]string{k.Batch(id), k.BatchTasks(id), k.Pending(), k.Scheduled()},
			start, start+batchCancelChunk-1, s.now().UnixMilli(), ttlSeconds(resultTTL),
			k.Record(""), k.AsynqTaskPrefix(), k.Dedup("")).Int64Slice()
		if err != nil {
			return out, fmt.Errorf("cancel batch %s: %w", id, err)
		}
		if len(v) != 4 {
			return out, fmt.Errorf("cancel batch %s: unexpected reply %v", id, v)
		}
		out.Canceled += v[0]
		out.Started += v[1]
		out.Final += v[2]
		if v[3] < batchCancelChunk {
			return out, nil
		}
	}
}
