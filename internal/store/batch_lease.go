package store

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wahaq/wahaq/internal/asynqcompat"
)

// The open-batch lease: how a batch left open by a producer that died is
// found and closed.
//
// A batch is created open (field BatchOpen) and stays open while its
// producer adds tasks; an open batch never reads done. While a producer fills
// a batch (Producer.EnqueueBatch, the worker's discovery), the batch id is a
// member of the queue's Keys.OpenBatches zset, scored by the end of the
// producer's lease in Unix ms by the producer's clock. CreateBatch takes the
// lease and every enqueue script call for the batch renews it to now +
// BatchLease (DefaultBatchLease, 10 s), atomically with the tasks it adds, so
// a producer that is enqueueing renews it many times a second. The batch's
// "total" is counted by the same script calls, so it is at every moment the
// number of tasks the batch really holds.
//
// A producer that finishes (or fails and can still reach Redis) closes the
// batch itself (CloseBatch, CloseInterrupted), which leaves the zset. A batch
// whose lease ended is abandoned: its producer died (kill -9, OOM, lost
// network) mid-enqueue. The reconciler lists those (ExpiredOpenBatches) and
// closes each with CloseAbandoned, which re-checks the lease inside Redis, so
// a producer that renewed meanwhile keeps its batch, and several reconcilers
// are harmless. A closed batch takes no more tasks: an enqueue script call for
// it fails with ErrBatchClosed, so a producer that was only stalled (Redis
// frozen for longer than the lease) stops instead of growing a closed batch.
//
// A discovery batch waiting for its discovery task to run holds no lease
// (the batch is open, not in the zset): the discovery task closes it, also
// when the listing fails.
//
// Clocks: the lease is compared with the reconciler's clock; hosts are
// assumed in sync to well under BatchLease, as asynq assumes for scheduled
// tasks.

// DefaultBatchLease is how long a producer's claim on an open batch lasts
// without renewal. Each enqueue script call renews it, so it only needs to
// cover one pipeline round trip with margin.
const DefaultBatchLease = 10 * time.Second

// BatchInterruptedError is the batch error of a batch closed by
// CloseAbandoned.
const BatchInterruptedError = "interrupted: the producer stopped before enqueueing every task; the batch holds the tasks enqueued until then"

// closeBatchScript closes an open batch: it takes no more tasks, leaves the
// open set and, once all its tasks are final, expires.
//
// KEYS[1] batch, KEYS[2] open batches, KEYS[3] asynq task of the batch's
// discovery (its id is the batch id), KEYS[4] the discovery's listed
// sessions (Keys.BatchListed, dropped: a closed batch takes no more).
// ARGV[1] batch id, ARGV[2] now (ms), ARGV[3] batch TTL (s), ARGV[4]
// deduplicated count ("" leaves it), ARGV[5] error ("" none), ARGV[6] "1"
// marks it interrupted, ARGV[7] "1" closes only when its lease has ended,
// then pairs ARGV[8+2i] skip reason, ARGV[9+2i] count (BatchSkippedPrefix).
// With ARGV[7], a discovering batch whose discovery task asynq still holds
// (not archived) is kept open: that task runs again (a worker died mid-
// listing) and fills and closes it.
// Returns closeDone (1), 0 (unknown or already closed) or -1 (ARGV[7]
// given and a producer holds the lease, or none ever took one, or the
// discovery lives on).
var closeBatchScript = redis.NewScript(batchLua + asynqcompat.TaskLua + `
if redis.call('HEXISTS', KEYS[1], 'open') == 0 then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return 0
end
if ARGV[7] == '1' then
  local lease = redis.call('ZSCORE', KEYS[2], ARGV[1])
  if not lease or tonumber(lease) >= tonumber(ARGV[2]) then return -1 end
  if redis.call('HEXISTS', KEYS[1], 'discovering') == 1 then
    if asynq_live(asynq_state(KEYS[3])) then return -1 end
  end
end
-- HDEL first: under maxmemory (noeviction) a script's first write must not
-- be one that grows memory; after it, the rest may run
redis.call('HDEL', KEYS[1], 'open', 'discovering')
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[4])
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'dedup', ARGV[4]) end
if ARGV[5] ~= '' then redis.call('HSET', KEYS[1], 'error', ARGV[5]) end
if ARGV[6] == '1' then redis.call('HSET', KEYS[1], 'interrupted', 1) end
for i = 8, #ARGV - 1, 2 do
  redis.call('HSET', KEYS[1], 's:' .. ARGV[i], ARGV[i + 1])
end
batch_done(KEYS[1], ARGV[3])
return 1
`)

// closeDone is closeBatchScript's reply when it closed the batch.
const closeDone = 1

// closing is what a close writes besides closing.
type closing struct {
	dedup, errMsg            string
	interrupted, onlyExpired bool
	skipped                  map[string]int64
}

func (s *Store) closeBatch(ctx context.Context, instance, id string, c closing, ttl time.Duration) (int, error) {
	k := s.Keys(instance)
	flag := func(b bool) string {
		if b {
			return "1"
		}
		return ""
	}
	args := []any{id, s.now().UnixMilli(), ttlSeconds(ttl), c.dedup, c.errMsg, flag(c.interrupted), flag(c.onlyExpired)}
	for _, r := range sortedKeys(c.skipped) {
		args = append(args, r, c.skipped[r])
	}
	n, err := closeBatchScript.Run(ctx, s.rdb, []string{k.Batch(id), k.OpenBatches(), k.AsynqTask(id), k.BatchListed(id)}, args...).Int()
	if err != nil && !c.onlyExpired {
		// A producer closing its own batch must not leave it open because
		// the script call failed (a blip): the same writes as a transaction,
		// then the expiry check. Applied twice they change nothing more.
		err = s.closeBatchTx(ctx, instance, id, c, ttl)
		n = closeDone
	}
	if err != nil {
		return 0, fmt.Errorf("close batch %s: %w", id, err)
	}
	if n == closeDone {
		if err := s.announceBatch(ctx, instance, id, ttl); err != nil {
			return n, err
		}
	}
	return n, nil
}

func (s *Store) closeBatchTx(ctx context.Context, instance, id string, c closing, ttl time.Duration) error {
	k := s.Keys(instance)
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HDel(ctx, k.Batch(id), BatchOpen, BatchDiscovering)
		p.ZRem(ctx, k.OpenBatches(), id)
		p.Del(ctx, k.BatchListed(id))
		if c.dedup != "" {
			p.HSet(ctx, k.Batch(id), BatchDedup, c.dedup)
		}
		if c.errMsg != "" {
			p.HSet(ctx, k.Batch(id), BatchError, c.errMsg)
		}
		if c.interrupted {
			p.HSet(ctx, k.Batch(id), BatchInterrupted, 1)
		}
		for r, n := range c.skipped {
			p.HSet(ctx, k.Batch(id), BatchSkippedPrefix+r, n)
		}
		return nil
	})
	if err != nil {
		return err
	}
	b, err := s.GetBatch(ctx, []string{instance}, id)
	if err == nil && b.Done {
		_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			p.Expire(ctx, k.Batch(id), ttl)
			p.Expire(ctx, k.BatchTasks(id), ttl)
			return nil
		})
	}
	return err
}

func sortedKeys(m map[string]int64) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// DiscoveryEnd is how a discovery ends its batch (CloseDiscovery).
type DiscoveryEnd struct {
	// Deduplicated counts listed sessions that had a live task of another
	// batch.
	Deduplicated int64
	// Skipped counts listing entries that were not sessions, per reason
	// (wahaclient's Skip* reasons); zero counts are not written.
	Skipped map[string]int64
	// Error says why the discovery failed, or "" when it listed everything.
	Error string
	// Interrupted is set when the listing failed part way: the batch keeps
	// the tasks enqueued until then.
	Interrupted bool
}

// CloseDiscovery closes a discovery batch once its listing has ended (or
// failed): it writes the deduplicated and skipped counts and the error, and
// the batch reads done once its tasks are final. Closing a closed batch
// changes nothing.
func (s *Store) CloseDiscovery(ctx context.Context, instance, id string, end DiscoveryEnd, ttl time.Duration) error {
	skipped := make(map[string]int64, len(end.Skipped))
	for r, n := range end.Skipped {
		if n > 0 {
			skipped[r] = n
		}
	}
	_, err := s.closeBatch(ctx, instance, id, closing{dedup: strconv.FormatInt(end.Deduplicated, 10), errMsg: end.Error,
		interrupted: end.Interrupted, skipped: skipped}, ttl)
	return err
}

// CloseBatch marks a batch as holding all its tasks, records how many
// requested sessions were deduplicated onto live tasks, and an error if the
// batch could not be filled. A batch whose tasks are all final already starts
// its expiry. Closing a closed batch changes nothing.
func (s *Store) CloseBatch(ctx context.Context, instance, id string, deduplicated int64, errMsg string, ttl time.Duration) error {
	_, err := s.closeBatch(ctx, instance, id, closing{dedup: strconv.FormatInt(deduplicated, 10), errMsg: errMsg}, ttl)
	return err
}

// CloseInterrupted closes a batch whose producer failed part way: it keeps
// the tasks enqueued so far, reads done once they are final, and is marked
// interrupted with errMsg.
func (s *Store) CloseInterrupted(ctx context.Context, instance, id, errMsg string, ttl time.Duration) error {
	_, err := s.closeBatch(ctx, instance, id, closing{errMsg: errMsg, interrupted: true}, ttl)
	return err
}

// ExpiredOpenBatches lists up to limit batches of an instance whose
// producer's lease has ended: candidates for CloseAbandoned.
func (s *Store) ExpiredOpenBatches(ctx context.Context, instance string, limit int64) ([]string, error) {
	ids, err := s.rdb.ZRangeByScore(ctx, s.Keys(instance).OpenBatches(), &redis.ZRangeBy{
		Min: "-inf", Max: "(" + strconv.FormatInt(s.now().UnixMilli(), 10), Count: limit}).Result()
	if err != nil {
		return nil, fmt.Errorf("list open batches of %s: %w", instance, err)
	}
	return ids, nil
}

// CloseAbandoned closes a batch whose producer's lease has ended, marking it
// interrupted: it then holds the tasks enqueued until the producer stopped
// and reads done once they are final. It reports whether it closed the
// batch; a batch whose lease was renewed meanwhile, or that is already
// closed, is left as it is.
func (s *Store) CloseAbandoned(ctx context.Context, instance, id string, ttl time.Duration) (bool, error) {
	n, err := s.closeBatch(ctx, instance, id, closing{errMsg: BatchInterruptedError, interrupted: true, onlyExpired: true}, ttl)
	return n == closeDone, err
}
