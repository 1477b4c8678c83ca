package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/wahaq/wahaq/internal/asynqcompat"
)

// purgeScript deletes a dead task for good: its record, its dead letter, and
// asynq's archived copy, and the session's dedup claim should it still name
// the task (a dead task released it already; no claim outlives its task).
//
// KEYS[1] record, KEYS[2] asynq task, KEYS[3] asynq archived, KEYS[4] dead
// letters. ARGV[1] id, ARGV[2] dedup key prefix.
// Returns purgeDone, or purgeNotDead (nothing changed).
var purgeScript = redis.NewScript(asynqcompat.TaskLua + `
if redis.call('HGET', KEYS[1], 'state') ~= 'dead' then return 0 end
local sess = redis.call('HGET', KEYS[1], 'session')
if sess and redis.call('GET', ARGV[2] .. sess) == ARGV[1] then redis.call('DEL', ARGV[2] .. sess) end
redis.call('DEL', KEYS[1])
if asynq_state(KEYS[2]) == ASYNQ_ARCHIVED then redis.call('DEL', KEYS[2]) end
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
return 1
`)

// Replies of purgeScript.
const (
	purgeNotDead = 0
	purgeDone    = 1
)

// Purge deletes dead tasks of an instance for good and returns how many it
// deleted. Ids that are not dead letters are left alone.
func (s *Store) Purge(ctx context.Context, instance string, ids []string) (int, error) {
	k := s.Keys(instance)
	n := 0
	for start := 0; start < len(ids); start += pipelineChunk {
		chunk := ids[start:min(start+pipelineChunk, len(ids))]
		calls := make([]scriptCall, len(chunk))
		for i, id := range chunk {
			calls[i] = scriptCall{
				keys: []string{k.Record(id), k.AsynqTask(id), k.Archived(), k.DeadLetters()},
				args: []any{id, k.Dedup("")},
			}
		}
		cmds, err := s.runPipelined(ctx, purgeScript, calls)
		if err != nil {
			return n, fmt.Errorf("purge: %w", err)
		}
		for _, c := range cmds {
			if v, _ := c.Int(); v == purgeDone {
				n++
			}
		}
	}
	return n, nil
}

// DeadLetters returns up to limit dead tasks of an instance, oldest first,
// starting at offset, and how many there are in all. wahaq keeps its own
// dead-letter set because asynq's archive silently drops entries past 10,000
// per queue and 90 days; this one drops nothing until a person requeues or
// purges.
func (s *Store) DeadLetters(ctx context.Context, instance string, offset, limit int64) ([]*Record, int64, error) {
	k := s.Keys(instance)
	total, err := s.rdb.ZCard(ctx, k.DeadLetters()).Result()
	if err != nil {
		return nil, 0, fmt.Errorf("dead letters: %w", err)
	}
	if limit <= 0 || offset >= total {
		return nil, total, nil
	}
	ids, err := s.rdb.ZRange(ctx, k.DeadLetters(), offset, offset+limit-1).Result()
	if err != nil {
		return nil, 0, fmt.Errorf("dead letters: %w", err)
	}
	out, err := s.DeadLetterRecords(ctx, instance, ids)
	return out, total, err
}

// DeadLetterRecords reads the records of dead letters ids of an instance.
// A dead letter whose record is gone is shown as one (state dead, error
// "record missing") rather than hidden: it cannot be replayed.
func (s *Store) DeadLetterRecords(ctx context.Context, instance string, ids []string) ([]*Record, error) {
	k := s.Keys(instance)
	out := make([]*Record, 0, len(ids))
	for start := 0; start < len(ids); start += pipelineChunk {
		end := min(start+pipelineChunk, len(ids))
		pipe := s.rdb.Pipeline()
		cmds := make([]*redis.MapStringStringCmd, 0, end-start)
		for _, id := range ids[start:end] {
			cmds = append(cmds, pipe.HGetAll(ctx, k.Record(id)))
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, fmt.Errorf("dead letters: %w", err)
		}
		for i, c := range cmds {
			m := c.Val()
			if len(m) == 0 {
				m = map[string]string{FieldState: StateDead, FieldInstance: instance, FieldError: "record missing"}
			}
			out = append(out, s.decodeRecord(ids[start+i], instance, m))
		}
	}
	return out, nil
}

// DeadLetterIDs returns every dead task id of an instance, oldest first.
func (s *Store) DeadLetterIDs(ctx context.Context, instance string) ([]string, error) {
	return s.rdb.ZRange(ctx, s.Keys(instance).DeadLetters(), 0, -1).Result()
}

// CountDeadLetters returns how many dead tasks an instance has.
func (s *Store) CountDeadLetters(ctx context.Context, instance string) (int64, error) {
	return s.rdb.ZCard(ctx, s.Keys(instance).DeadLetters()).Result()
}

// Outcomes returns the outcome field of each record, "" for a record without
// one. A Redis error is returned, never a partial answer.
func (s *Store) Outcomes(ctx context.Context, instance string, ids []string) ([]string, error) {
	return s.recordField(ctx, instance, ids, FieldOutcome)
}

// recordField reads one field of each record (in pipelines of
// pipelineChunk), "" for a record without it. A Redis error is returned,
// never a partial answer.
func (s *Store) recordField(ctx context.Context, instance string, ids []string, field string) ([]string, error) {
	k := s.Keys(instance)
	out := make([]string, 0, len(ids))
	for start := 0; start < len(ids); start += pipelineChunk {
		chunk := ids[start:min(start+pipelineChunk, len(ids))]
		pipe := s.rdb.Pipeline()
		cmds := make([]*redis.StringCmd, len(chunk))
		for j, id := range chunk {
			cmds[j] = pipe.HGet(ctx, k.Record(id), field)
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("read %s of records: %w", field, err)
		}
		for _, c := range cmds {
			if err := c.Err(); err != nil && !errors.Is(err, redis.Nil) {
				return nil, fmt.Errorf("read %s of records: %w", field, err)
			}
			out = append(out, c.Val())
		}
	}
	return out, nil
}
