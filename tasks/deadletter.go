package tasks

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wahaq/wahaq/internal/asynqwire"
)

// DeadLetters returns up to limit dead tasks of an instance, oldest first,
// starting at offset, and how many there are in all. wahaq keeps its own
// dead-letter set because asynq's archive silently drops entries past 10,000
// per queue and 90 days; this one drops nothing until a person requeues or
// purges.
func (s *Store) DeadLetters(ctx context.Context, instance string, offset, limit int64) ([]*Task, int64, error) {
	k := s.keys(instance)
	total, err := s.rdb.ZCard(ctx, k.deadLetters()).Result()
	if err != nil {
		return nil, 0, fmt.Errorf("dead letters: %w", err)
	}
	if limit <= 0 || offset >= total {
		return nil, total, nil
	}
	ids, err := s.rdb.ZRange(ctx, k.deadLetters(), offset, offset+limit-1).Result()
	if err != nil {
		return nil, 0, fmt.Errorf("dead letters: %w", err)
	}
	out := make([]*Task, 0, len(ids))
	for start := 0; start < len(ids); start += pipelineChunk {
		end := min(start+pipelineChunk, len(ids))
		pipe := s.rdb.Pipeline()
		cmds := make([]*redis.MapStringStringCmd, 0, end-start)
		for _, id := range ids[start:end] {
			cmds = append(cmds, pipe.HGetAll(ctx, k.record(id)))
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, 0, fmt.Errorf("dead letters: %w", err)
		}
		for i, c := range cmds {
			m := c.Val()
			if len(m) == 0 {
				// A dead letter whose record is gone cannot be replayed;
				// show it rather than hide it.
				m = map[string]string{"state": string(StateDead), "instance": instance, "err": "record missing"}
			}
			out = append(out, s.decodeRecord(ids[start+i], instance, m))
		}
	}
	return out, total, nil
}

// DeadLetterIDs returns every dead task id of an instance, oldest first.
func (s *Store) DeadLetterIDs(ctx context.Context, instance string) ([]string, error) {
	return s.rdb.ZRange(ctx, s.keys(instance).deadLetters(), 0, -1).Result()
}

// CountDeadLetters returns how many dead tasks an instance has.
func (s *Store) CountDeadLetters(ctx context.Context, instance string) (int64, error) {
	return s.rdb.ZCard(ctx, s.keys(instance).deadLetters()).Result()
}

// RequeueStatus says what a requeue did to one dead letter.
type RequeueStatus string

// Requeue statuses.
const (
	// Requeued: back in the queue with fresh retries, same id.
	Requeued RequeueStatus = "requeued"
	// RequeueSuperseded: the session already has another live task; the dead
	// letter was closed (state canceled) in its favour. See LiveID.
	RequeueSuperseded RequeueStatus = "deduplicated"
	// RequeueNotDead: the id is unknown or not in the dead-letter queue.
	RequeueNotDead RequeueStatus = "not_dead"
	// RequeueBusy: the task died a moment ago and asynq is still archiving it;
	// try again.
	RequeueBusy RequeueStatus = "busy"
)

// RequeueResult is the result of requeueing one dead letter.
type RequeueResult struct {
	ID     string        `json:"id"`
	Status RequeueStatus `json:"status"`
	LiveID string        `json:"live_id,omitempty"`
}

// Requeue puts dead tasks of an instance back in the queue with fresh
// retries, keeping their ids.
func (s *Store) Requeue(ctx context.Context, instance string, ids []string, timeout, resultTTL time.Duration) ([]RequeueResult, error) {
	k := s.keys(instance)
	if err := s.publish(ctx, k.q); err != nil {
		return nil, err
	}
	out := make([]RequeueResult, 0, len(ids))
	ttl := int64(math.Max(1, math.Ceil(resultTTL.Seconds())))
	for start := 0; start < len(ids); start += pipelineChunk {
		chunk := ids[start:min(start+pipelineChunk, len(ids))]
		// The new message needs the payload, which lives in the records.
		pipe := s.rdb.Pipeline()
		recs := make([]*redis.SliceCmd, len(chunk))
		for i, id := range chunk {
			recs[i] = pipe.HMGet(ctx, k.record(id), "session", "batch", "max")
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, fmt.Errorf("requeue: %w", err)
		}
		now := s.now()
		calls := make([]scriptCall, 0, len(chunk))
		idx := make([]int, 0, len(chunk))
		for i, id := range chunk {
			v := recs[i].Val()
			sess, _ := v[0].(string)
			if sess == "" {
				out = append(out, RequeueResult{ID: id, Status: RequeueNotDead})
				continue
			}
			bid, _ := v[1].(string)
			maxStr, _ := v[2].(string)
			maxRetries, _ := strconv.Atoi(maxStr)
			p := Payload{Instance: instance, Session: sess, BatchID: bid, MaxRetries: maxRetries}
			msg := asynqwire.Encode(asynqwire.Message{
				Type: TypeLogout, Payload: p.Encode(), ID: id, Queue: k.q,
				Retry: asynqMaxRetry, TimeoutSeconds: int64(math.Ceil(timeout.Seconds())),
			})
			calls = append(calls, scriptCall{
				keys: []string{k.record(id), asynqwire.TaskKey(k.q, id), asynqwire.ArchivedKey(k.q),
					asynqwire.PendingKey(k.q), k.deadLetters(), k.dedup(sess), k.batch(bid)},
				args: []any{id, msg, now.UnixNano(), now.UnixMilli(), asynqwire.TaskKeyPrefix(k.q), ttl},
			})
			idx = append(idx, len(out))
			out = append(out, RequeueResult{ID: id})
		}
		cmds, err := s.runPipelined(ctx, requeueScript, calls)
		if err != nil {
			return nil, fmt.Errorf("requeue: %w", err)
		}
		for j, c := range cmds {
			v, _ := c.Slice()
			code, _ := v[0].(int64)
			live, _ := v[1].(string)
			r := &out[idx[j]]
			switch code {
			case 1:
				r.Status = Requeued
			case 2:
				r.Status, r.LiveID = RequeueSuperseded, live
			case 3:
				r.Status = RequeueBusy
			default:
				r.Status = RequeueNotDead
			}
		}
	}
	return out, nil
}

// Purge deletes dead tasks of an instance for good and returns how many it
// deleted. Ids that are not dead letters are left alone.
func (s *Store) Purge(ctx context.Context, instance string, ids []string) (int, error) {
	k := s.keys(instance)
	n := 0
	for start := 0; start < len(ids); start += pipelineChunk {
		chunk := ids[start:min(start+pipelineChunk, len(ids))]
		calls := make([]scriptCall, len(chunk))
		for i, id := range chunk {
			calls[i] = scriptCall{
				keys: []string{k.record(id), asynqwire.TaskKey(k.q, id), asynqwire.ArchivedKey(k.q), k.deadLetters()},
				args: []any{id},
			}
		}
		cmds, err := s.runPipelined(ctx, purgeScript, calls)
		if err != nil {
			return n, fmt.Errorf("purge: %w", err)
		}
		for _, c := range cmds {
			if v, _ := c.Int(); v == 1 {
				n++
			}
		}
	}
	return n, nil
}
