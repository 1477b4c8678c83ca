package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wahaq/wahaq/internal/base"
)

// Field names of a batch hash (Keys.Batch) besides its counters: one counter
// per state (named as the state), "total", and "o:<outcome>" per outcome of
// its completed and dead tasks.
const (
	BatchTotal       = "total"
	BatchInstance    = "instance"
	BatchCreated     = "created"
	BatchSched       = "sched"
	BatchOpen        = "open"        // set while tasks are still being added
	BatchDiscovering = "discovering" // set while the worker lists sessions
	BatchDedup       = "dedup"
	BatchError       = "error"
	// BatchInterrupted is set on a batch closed before its producer had
	// enqueued every task: the producer failed (CloseInterrupted) or its
	// lease ended (CloseAbandoned).
	BatchInterrupted = "interrupted"
	// BatchOutcomePrefix prefixes the outcome counters.
	BatchOutcomePrefix = "o:"
	// BatchSkippedPrefix prefixes the counts of listing entries a discovery
	// skipped, per reason (wahaclient's Skip* reasons).
	BatchSkippedPrefix = "s:"
)

// batchLua holds the batch counter moves every script shares. A batch counts
// its tasks per state and its final tasks per outcome; each state change of a
// task moves one count.
//
// batch_move(key, from, to) moves one task from state from to state to.
// batch_outcome(key, outcome, delta) adds delta to an outcome's count.
// batch_done(key, ttl) sets the batch to expire once every task in it is
// final and the batch is closed; its task list (Keys.BatchTasks) goes with
// it, and returns true then.
// batch_end(key, ttl, v, from, to) is batch_done for a script that read v =
// batch_read(key) before its batch_move(key, from, to): one read answers
// both whether the batch exists (v[1], every batch has a total) and whether
// it is done.
const batchLua = `
local function batch_move(key, from, to)
  redis.call('HINCRBY', key, from, -1)
  redis.call('HINCRBY', key, to, 1)
end
local function batch_outcome(key, outcome, delta)
  redis.call('HINCRBY', key, 'o:' .. outcome, delta)
end
local function batch_read(key)
  return redis.call('HMGET', key, 'total', 'completed', 'dead', 'canceled', 'open')
end
local function batch_end(key, ttl, v, from, to)
  if v[5] then return false end
  local fin = 0
  for i, st in ipairs({'completed', 'dead', 'canceled'}) do
    local n = tonumber(v[i + 1]) or 0
    if from ~= to then
      if st == to then n = n + 1 elseif st == from then n = n - 1 end
    end
    fin = fin + n
  end
  if fin >= (tonumber(v[1]) or 0) then
    redis.call('EXPIRE', key, ttl)
    redis.call('EXPIRE', key .. ':ids', ttl) -- Keys.BatchTasks
    return true
  end
  return false
end
local function batch_done(key, ttl)
  return batch_end(key, ttl, batch_read(key))
end
`

// Batch is a batch hash as read from Redis. tasks turns it into a
// tasks.Batch.
type Batch struct {
	ID, Instance string
	Total        int64
	// Counts are the tasks per state; a state absent has none.
	Counts map[string]int64
	// Outcomes are the final tasks per outcome.
	Outcomes map[string]int64
	// Skipped counts the listing entries a discovery skipped, per reason;
	// empty for other batches.
	Skipped map[string]int64
	// Done is true when the batch is closed and every task in it is final.
	Done, Discovering bool
	// Open is true while the batch may still gain tasks (CreateBatch until
	// closed).
	Open bool
	// Interrupted is true when the batch was closed before its producer had
	// enqueued every task; Total is what it holds.
	Interrupted  bool
	CreatedAt    time.Time
	ScheduledFor *time.Time
	Deduplicated int64
	Error        string
	// Callback is the batch's completion callback, or nil.
	Callback *Callback
	// PausedAt is when the batch was paused, nil while it runs (pause.go);
	// PausedBy is who paused it.
	PausedAt *time.Time
	PausedBy string
}

// CreateBatch writes a new, open batch. Enqueue adds its tasks; CloseBatch
// marks it complete. An open batch never reads done. A batch filled now (not
// discovering) takes the producer's lease at once (see batch_lease.go); a
// discovery batch takes it when the worker starts filling it.
func (s *Store) CreateBatch(ctx context.Context, instance, id string, scheduledFor time.Time, discovering bool) error {
	k := s.Keys(instance)
	f := []any{BatchInstance, instance, BatchCreated, s.now().UnixMilli(), BatchOpen, 1, BatchTotal, 0}
	if !scheduledFor.IsZero() {
		f = append(f, BatchSched, scheduledFor.UnixMilli())
	}
	if discovering {
		f = append(f, BatchDiscovering, 1)
	}
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, k.Batch(id), f...)
		if !discovering {
			p.ZAdd(ctx, k.OpenBatches(), redis.Z{Score: float64(s.now().Add(s.lease).UnixMilli()), Member: id})
		}
		s.addRecent(ctx, p, k, id)
		return nil
	})
	if err != nil {
		return fmt.Errorf("create batch %s: %w", id, err)
	}
	return nil
}

// announceBatchScript, once a closed batch's tasks are all final, starts
// its expiry, enqueues its callback and announces it.
//
// KEYS[1] batch, KEYS[2] callback delivery set, KEYS[3] the queue's
// subscriptions, KEYS[4] completion channel.
// ARGV[1] batch TTL (s), ARGV[2] batch id, ARGV[3] delivery id, ARGV[4]
// now (ns).
// Returns 1 when the batch is done, else 0.
var announceBatchScript = redis.NewScript(batchLua + callbackLua + `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if batch_done(KEYS[1], ARGV[1]) then
  batch_finished(KEYS[1], KEYS[2], KEYS[3], ARGV[3], ARGV[4], KEYS[4], ARGV[2])
  return 1
end
return 0
`)

// announceBatch runs announceBatchScript after a close: a batch whose tasks
// all finished while it was open is done now, with the same callback and
// announcement as when its last task finishes.
func (s *Store) announceBatch(ctx context.Context, instance, id string, ttl time.Duration) error {
	k := s.Keys(instance)
	cb := s.callbackArgs(k)
	keys := append([]string{k.Batch(id)}, cb.keys...)
	args := append([]any{ttlSeconds(ttl), id}, cb.args[1:]...)
	if err := announceBatchScript.Run(ctx, s.rdb, keys, args...).Err(); err != nil {
		return fmt.Errorf("announce batch %s: %w", id, err)
	}
	return nil
}

// SetBatchCallback names the callback URL of an open batch (CreateBatch):
// it is posted the batch once the batch is done. A batch cannot be done
// before CloseBatch, so writing it after CreateBatch loses nothing.
func (s *Store) SetBatchCallback(ctx context.Context, instance, id, url string) error {
	if err := s.rdb.HSet(ctx, s.Keys(instance).Batch(id), FieldCallbackURL, url).Err(); err != nil {
		return fmt.Errorf("batch %s callback: %w", id, err)
	}
	return nil
}

// GetBatch reads a batch from any of the instances, or returns an error
// wrapping base.ErrNotFound.
func (s *Store) GetBatch(ctx context.Context, instances []string, id string) (*Batch, error) {
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(instances))
	for i, inst := range instances {
		cmds[i] = pipe.HGetAll(ctx, s.Keys(inst).Batch(id))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("get batch %s: %w", id, err)
	}
	for i, c := range cmds {
		if m := c.Val(); len(m) > 0 {
			return s.decodeBatch(id, instances[i], m), nil
		}
	}
	return nil, fmt.Errorf("batch %s: %w", id, base.ErrNotFound)
}

func (s *Store) decodeBatch(id, instance string, m map[string]string) *Batch {
	num := func(k string) int64 { n, _ := strconv.ParseInt(m[k], 10, 64); return n }
	b := &Batch{ID: id, Instance: instance, Total: num(BatchTotal), Counts: map[string]int64{}, Outcomes: map[string]int64{},
		Deduplicated: num(BatchDedup), Error: m[BatchError], Discovering: m[BatchDiscovering] != "",
		Interrupted: m[BatchInterrupted] != "", Open: m[BatchOpen] != ""}
	for _, st := range States {
		b.Counts[st] = num(st)
	}
	for f := range m {
		if o, ok := strings.CutPrefix(f, BatchOutcomePrefix); ok {
			b.Outcomes[o] = num(f)
		}
		if r, ok := strings.CutPrefix(f, BatchSkippedPrefix); ok {
			if b.Skipped == nil {
				b.Skipped = map[string]int64{}
			}
			b.Skipped[r] = num(f)
		}
	}
	if c := msTime(m[BatchCreated]); c != nil {
		b.CreatedAt = *c
	}
	b.ScheduledFor = msTime(m[BatchSched])
	b.Callback = decodeCallback(m)
	if p := msTime(m[BatchPaused]); p != nil {
		b.PausedAt, b.PausedBy = p, m[BatchPausedBy]
	}
	if b.ScheduledFor != nil && !b.ScheduledFor.After(s.now()) {
		b.Counts[StatePending] += b.Counts[StateScheduled]
		b.Counts[StateScheduled] = 0
	}
	final := b.Counts[StateCompleted] + b.Counts[StateDead] + b.Counts[StateCanceled]
	b.Done = m[BatchOpen] == "" && final >= b.Total
	return b
}
