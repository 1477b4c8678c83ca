package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// BatchTaskRange reads count entries of a batch's task list (Keys.BatchTasks)
// from position from (0 is the first task created), with their records. A
// record that has expired (a completed task outlives its WAHAQ_RESULT_TTL
// while the rest of its batch is still running) is left out: there is
// nothing left to show. It returns the records in list order, the position
// of each (so a caller that keeps only some of them knows where to resume),
// and the length of the list.
//
// The list only grows at its end while the batch is filled (the enqueue
// script RPUSHes), so a position stays valid from one call to the next.
func (s *Store) BatchTaskRange(ctx context.Context, instance, id string, from, count int64) ([]*Record, []int64, int64, error) {
	k := s.Keys(instance)
	if from < 0 || count <= 0 {
		return nil, nil, 0, fmt.Errorf("batch %s tasks: bad range %d+%d", id, from, count)
	}
	pipe := s.rdb.Pipeline()
	n := pipe.LLen(ctx, k.BatchTasks(id))
	ids := pipe.LRange(ctx, k.BatchTasks(id), from, from+count-1)
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, nil, 0, fmt.Errorf("batch %s tasks: %w", id, err)
	}
	var (
		recs []*Record
		pos  []int64
	)
	list := ids.Val()
	for start := 0; start < len(list); start += pipelineChunk {
		chunk := list[start:min(start+pipelineChunk, len(list))]
		pipe := s.rdb.Pipeline()
		cmds := make([]*redis.MapStringStringCmd, len(chunk))
		for i, tid := range chunk {
			cmds[i] = pipe.HGetAll(ctx, k.Record(tid))
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return nil, nil, 0, fmt.Errorf("batch %s tasks: %w", id, err)
		}
		for i, c := range cmds {
			if m := c.Val(); len(m) > 0 {
				recs = append(recs, s.decodeRecord(chunk[i], instance, m))
				pos = append(pos, from+int64(start+i))
			}
		}
	}
	return recs, pos, n.Val(), nil
}

// DeadLetterIDsOfBatch returns the dead letters of an instance that belong
// to batch id, oldest first. It reads the batch field of every dead letter
// (in pipelines of pipelineChunk), not the batch's task list: a dead letter
// stays until a person requeues or purges it, long after its batch expired.
func (s *Store) DeadLetterIDsOfBatch(ctx context.Context, instance, id string) ([]string, error) {
	all, err := s.DeadLetterIDs(ctx, instance)
	if err != nil {
		return nil, fmt.Errorf("dead letters of batch %s: %w", id, err)
	}
	batches, err := s.recordField(ctx, instance, all, FieldBatch)
	if err != nil {
		return nil, fmt.Errorf("dead letters of batch %s: %w", id, err)
	}
	var out []string
	for i, b := range batches {
		if b == id {
			out = append(out, all[i])
		}
	}
	return out, nil
}
