package store

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Resuming a batch. A batch request that carries an idempotency key gets a
// batch id derived from the key (tasks.Producer.EnqueueBatch), so a retry of
// a request whose first try failed part way names the same batch. Creating
// that batch when it exists resumes it instead of starting a second one:
// the retry fills the first batch with what the first try did not enqueue,
// and the batch reads done only once all of them are final.
//
// The idempotency key serializes the requests that name one derived id (a
// second request waits, then gets 409, while the first runs), so a batch
// found open here is not being filled by a request that still answers: its
// producer died, or its last enqueue call reached a Redis that was frozen
// and ran it late, renewing the lease after the producer had given up. Such
// a batch is joined, live lease or not: a fill is idempotent per session
// (a session whose live task is of this batch is counted InBatch and gets
// nothing new), so even a producer that outlived its key's hold and still
// fills loses nothing, and a retry need not wait out a lease renewed by a
// thawed server.

// Replies of CreateOrResumeBatch.
const (
	// BatchNew: the batch did not exist and was created (CreateBatch).
	BatchNew = iota
	// BatchResumed: the batch existed, interrupted or left open; it is open
	// again under this producer's lease.
	BatchResumed
	// BatchFinished: the batch existed and was closed with all its tasks
	// (not interrupted); nothing was changed.
	BatchFinished
)

// resumeBatchScript reopens a batch that exists. A missing one is left to
// CreateBatch, the one place a batch's layout is written: the idempotency
// key keeps a second request for the same derived id from running between
// the two.
//
// KEYS[1] batch, KEYS[2] open batches, KEYS[3] the batch's task list
// (Keys.BatchTasks).
// ARGV[1] batch id, ARGV[2] end of the lease (ms).
// Returns {BatchNew} (missing: nothing written), {BatchResumed},
// {BatchFinished} or {-1} for a discovery batch, which is never resumed.
var resumeBatchScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return {0} end
if redis.call('HEXISTS', KEYS[1], 'discovering') == 1 then return {-1} end
local open = redis.call('HEXISTS', KEYS[1], 'open') == 1
if not open and redis.call('HEXISTS', KEYS[1], 'interrupted') == 0 then return {2} end
-- HDEL first: under maxmemory (noeviction) a script's first write must not
-- be one that grows memory
redis.call('HDEL', KEYS[1], 'interrupted', 'error')
redis.call('HSET', KEYS[1], 'open', 1)
-- a batch that read done (every task it held was final) had started to
-- expire; open again, it lives until it is done again
redis.call('PERSIST', KEYS[1])
redis.call('PERSIST', KEYS[3])
redis.call('ZADD', KEYS[2], 'GT', ARGV[2], ARGV[1])
return {1}
`)

// CreateOrResumeBatch is CreateBatch for a batch id that a retry may name
// again (an idempotent batch request, see the comment above): a batch that
// does not exist is created open under this producer's lease (BatchNew); one
// that was closed interrupted, or is still open, is reopened under it
// (BatchResumed: interrupted and error cleared, its expiry, if it had read
// done, removed; its recent-batches entry, task list and counters kept); one
// that was closed with all its tasks is left as it is (BatchFinished). A
// discovery batch is not resumed (an error). The batch's completion
// callback, if one was enqueued when the interrupted batch read done, is
// not enqueued again: a batch has one delivery.
func (s *Store) CreateOrResumeBatch(ctx context.Context, instance, id string, scheduledFor time.Time) (int, error) {
	k := s.Keys(instance)
	v, err := resumeBatchScript.Run(ctx, s.rdb, []string{k.Batch(id), k.OpenBatches(), k.BatchTasks(id)},
		id, s.now().Add(s.lease).UnixMilli()).Slice()
	if err != nil {
		return 0, fmt.Errorf("create or resume batch %s: %w", id, err)
	}
	if len(v) == 0 {
		return 0, fmt.Errorf("create or resume batch %s: empty reply", id)
	}
	code, _ := v[0].(int64)
	if code < 0 {
		return 0, fmt.Errorf("resume batch %s: it is a discovery batch", id)
	}
	if code == BatchNew {
		if err := s.CreateBatch(ctx, instance, id, scheduledFor, false); err != nil {
			return 0, err
		}
	}
	return int(code), nil
}

// resumePage is how many task ids ResumeFill reads per round trip.
const resumePage = 1000

// ResumeFill is FillBatchTraced for a batch that CreateOrResumeBatch
// created or resumed (resumed true): the sessions already in the batch are
// part of it, not deduplicated. A session that has a task in the batch's
// task list gets nothing new, even if that task has finished (a retry must
// not log a session out twice), nor does one whose live task is of this
// batch; both count in InBatch. Deduplicated counts names given twice and
// sessions with a live task of another batch. The batch is closed at the
// end; on an error it stays open, as with FillBatch.
func (s *Store) ResumeFill(ctx context.Context, instance, id string, sessions []string, resumed bool, at time.Time, maxRetries int,
	timeout, ttl time.Duration, traceParent string) (Filled, error) {
	have := map[string]struct{}{}
	if resumed {
		for from := int64(0); ; from += resumePage {
			recs, _, n, err := s.BatchTaskRange(ctx, instance, id, from, resumePage)
			if err != nil {
				return Filled{Requested: len(sessions)}, err
			}
			for _, r := range recs {
				have[r.Session] = struct{}{}
			}
			if from+resumePage >= n {
				break
			}
		}
	}
	seen := make(map[string]struct{}, len(sessions))
	todo := make([]string, 0, len(sessions))
	var f Filled
	for _, sess := range sessions {
		if _, dup := seen[sess]; dup {
			f.Deduplicated++
			continue
		}
		seen[sess] = struct{}{}
		if _, ok := have[sess]; ok {
			f.InBatch++
			continue
		}
		todo = append(todo, sess)
	}
	got, err := s.fill(ctx, instance, id, todo, at, maxRetries, timeout, false, traceParent)
	f.Requested = len(sessions)
	f.Total = got.Total
	f.InBatch += got.InBatch
	f.Deduplicated += got.Deduplicated
	if err != nil {
		return f, err
	}
	if err := s.CloseBatch(ctx, instance, id, int64(f.Deduplicated), "", ttl); err != nil {
		return f, err
	}
	return f, nil
}
