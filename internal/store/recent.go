package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/redis/go-redis/v9"
)

// Recent batches. CreateBatch adds every new batch (whoever created it: the
// API, the CLI, a schedule, a discovery) to its queue's zset
// Keys.RecentBatches, scored by its creation time, in the same MULTI as the
// batch hash, so a batch that exists is listed. The set is per queue, not per
// namespace, so it shares the batch's hash slot on Redis Cluster.
//
// It is bounded two ways: CreateBatch trims it to the newest RecentKeep ids,
// and RecentBatches drops the ids whose batch hash is gone, which is the
// result TTL after the batch was done (batch_done). Trimming by creation
// time instead would drop a batch scheduled for next week while it still
// waits, so the batch's own expiry is the clock.

// RecentKeep is how many batch ids each queue's recent-batches set keeps.
const RecentKeep = 1000

// addRecent queues the recent-batches entry of a new batch on p.
func (s *Store) addRecent(ctx context.Context, p redis.Pipeliner, k Keys, id string) {
	p.ZAdd(ctx, k.RecentBatches(), redis.Z{Score: float64(s.now().UnixMilli()), Member: id})
	p.ZRemRangeByRank(ctx, k.RecentBatches(), 0, -RecentKeep-1)
}

// recentRounds bounds how often RecentBatches reads again after dropping
// expired ids.
const recentRounds = 4

// RecentBatches returns up to limit of the newest batches of instances,
// newest first (by creation time, across instances). Ids whose batch has
// expired are removed from their set on the way.
func (s *Store) RecentBatches(ctx context.Context, instances []string, limit int) ([]*Batch, error) {
	if limit <= 0 || len(instances) == 0 {
		return []*Batch{}, nil
	}
	type entry struct {
		inst, id string
		at       float64
	}
	var out []*Batch
	for range recentRounds {
		pipe := s.rdb.Pipeline()
		zs := make([]*redis.ZSliceCmd, len(instances))
		for i, inst := range instances {
			zs[i] = pipe.ZRevRangeWithScores(ctx, s.Keys(inst).RecentBatches(), 0, int64(limit)-1)
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("read recent batches: %w", err)
		}
		var es []entry
		for i, c := range zs {
			for _, z := range c.Val() {
				id, _ := z.Member.(string)
				es = append(es, entry{inst: instances[i], id: id, at: z.Score})
			}
		}
		slices.SortStableFunc(es, func(a, b entry) int { return cmp.Compare(b.at, a.at) })
		es = es[:min(len(es), limit)]

		pipe = s.rdb.Pipeline()
		hs := make([]*redis.MapStringStringCmd, len(es))
		for i, e := range es {
			hs[i] = pipe.HGetAll(ctx, s.Keys(e.inst).Batch(e.id))
		}
		if len(es) > 0 {
			if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
				return nil, fmt.Errorf("read recent batches: %w", err)
			}
		}
		out = out[:0]
		gone := s.rdb.Pipeline()
		for i, e := range es {
			if m := hs[i].Val(); len(m) > 0 {
				out = append(out, s.decodeBatch(e.id, e.inst, m))
				continue
			}
			gone.ZRem(ctx, s.Keys(e.inst).RecentBatches(), e.id)
		}
		if gone.Len() == 0 {
			break
		}
		if _, err := gone.Exec(ctx); err != nil {
			return nil, fmt.Errorf("drop expired recent batches: %w", err)
		}
	}
	return out, nil
}
