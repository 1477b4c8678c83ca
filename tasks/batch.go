package tasks

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Batch is a bulk teardown's status, as GET /v1/batches/{id} and `wahaq batch
// --json` return it. It is read from one Redis hash of counters that every
// state change keeps up to date, so reading it costs the same for ten tasks
// or a hundred thousand.
type Batch struct {
	BatchID  string            `json:"batch_id"`
	Instance string            `json:"instance"`
	Total    int64             `json:"total"`
	Counts   map[State]int64   `json:"counts"`
	Outcomes map[Outcome]int64 `json:"outcomes"`
	// Done is true when every task of the batch is completed, dead or
	// canceled, and the batch has all its tasks (a discovery batch is not
	// done before the server's sessions are listed).
	Done         bool       `json:"done"`
	Discovering  bool       `json:"discovering,omitempty"`
	CreatedAt    time.Time  `json:"created_at"`
	ScheduledFor *time.Time `json:"scheduled_for"`
	// Deduplicated counts sessions of the request that already had a live
	// task: that task was kept and is not part of this batch.
	Deduplicated int64 `json:"deduplicated"`
	// Error says why a discovery failed, when it did.
	Error string `json:"error,omitempty"`
}

// CreateBatch writes a new, open batch. Enqueue adds its tasks; CloseBatch
// marks it complete. An open batch never reads done.
func (s *Store) CreateBatch(ctx context.Context, instance, id string, scheduledFor time.Time, discovering bool) error {
	k := s.keys(instance)
	f := []any{"instance", instance, "created", s.now().UnixMilli(), "open", 1, "total", 0}
	if !scheduledFor.IsZero() {
		f = append(f, "sched", scheduledFor.UnixMilli())
	}
	if discovering {
		f = append(f, "discovering", 1)
	}
	return s.rdb.HSet(ctx, k.batch(id), f...).Err()
}

// CloseBatch marks a batch as holding all its tasks, records how many
// requested sessions were deduplicated onto live tasks, and an error if the
// batch could not be filled. A batch whose tasks are all final already starts
// its expiry.
func (s *Store) CloseBatch(ctx context.Context, instance, id string, deduplicated int64, errMsg string, ttl time.Duration) error {
	k := s.keys(instance)
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HDel(ctx, k.batch(id), "open", "discovering")
		p.HSet(ctx, k.batch(id), "dedup", deduplicated)
		if errMsg != "" {
			p.HSet(ctx, k.batch(id), "error", errMsg)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("close batch %s: %w", id, err)
	}
	b, err := s.GetBatch(ctx, []string{instance}, id)
	if err == nil && b.Done {
		err = s.rdb.Expire(ctx, k.batch(id), ttl).Err()
	}
	return err
}

// GetBatch reads a batch from any of the instances.
func (s *Store) GetBatch(ctx context.Context, instances []string, id string) (*Batch, error) {
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(instances))
	for i, inst := range instances {
		cmds[i] = pipe.HGetAll(ctx, s.keys(inst).batch(id))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("get batch %s: %w", id, err)
	}
	for i, c := range cmds {
		if m := c.Val(); len(m) > 0 {
			return s.decodeBatch(id, instances[i], m), nil
		}
	}
	return nil, fmt.Errorf("batch %s: %w", id, ErrNotFound)
}

func (s *Store) decodeBatch(id, instance string, m map[string]string) *Batch {
	num := func(k string) int64 { n, _ := strconv.ParseInt(m[k], 10, 64); return n }
	b := &Batch{BatchID: id, Instance: instance, Total: num("total"), Counts: map[State]int64{}, Outcomes: map[Outcome]int64{},
		Deduplicated: num("dedup"), Error: m["error"], Discovering: m["discovering"] != ""}
	for _, st := range AllStates {
		b.Counts[st] = num(string(st))
	}
	for _, o := range AllOutcomes {
		b.Outcomes[o] = num("o:" + string(o))
	}
	if c := msTime(m["created"]); c != nil {
		b.CreatedAt = *c
	}
	b.ScheduledFor = msTime(m["sched"])
	if b.ScheduledFor != nil && !b.ScheduledFor.After(s.now()) {
		b.Counts[StatePending] += b.Counts[StateScheduled]
		b.Counts[StateScheduled] = 0
	}
	final := b.Counts[StateCompleted] + b.Counts[StateDead] + b.Counts[StateCanceled]
	b.Done = m["open"] == "" && final >= b.Total
	return b
}
