package tasks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/wahaq/wahaq/internal/asynqwire"
)

// DefaultNamespace prefixes wahaq's queue names: the queue of instance I is
// "wahaq:I".
const DefaultNamespace = "wahaq"

// asynqMaxRetry is the retry limit written into asynq's message. wahaq counts
// retries itself (Payload.MaxRetries) because asynq archives a task whose
// retry count is reached even when the handler only waited for a
// concurrency slot, and such a wait must never spend a retry.
const asynqMaxRetry = math.MaxInt32

// pipelineChunk bounds how many scripts go to Redis in one pipeline, keeping
// the client's buffers and Redis' reply buffer small.
const pipelineChunk = 1000

// Store is the Redis side of wahaq's task model: records, dedup, batches,
// concurrency slots and dead letters, all next to asynq's keys. Producer,
// Inspector and the worker are built on it; most users want those.
type Store struct {
	rdb       redis.UniversalClient
	ns        string
	now       func() time.Time
	published sync.Map // queue name -> struct{}: registered in asynq:queues
}

// StoreOptions configures a Store.
type StoreOptions struct {
	// Namespace prefixes queue names. Default DefaultNamespace ("wahaq").
	// Tests use a namespace each to share one Redis.
	Namespace string
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// NewStore returns a Store on rdb.
func NewStore(rdb redis.UniversalClient, opts StoreOptions) *Store {
	if opts.Namespace == "" {
		opts.Namespace = DefaultNamespace
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Store{rdb: rdb, ns: opts.Namespace, now: opts.Now}
}

// Redis returns the client the store uses.
func (s *Store) Redis() redis.UniversalClient { return s.rdb }

// Namespace returns the store's namespace.
func (s *Store) Namespace() string { return s.ns }

// Queue returns the asynq queue name of an instance.
func (s *Store) Queue(instance string) string { return s.ns + ":" + instance }

// keys names wahaq's keys of one queue. They share asynq's hash tag
// "{queue}", so scripts can touch both on Redis Cluster.
type keys struct{ q, p string }

func (s *Store) keys(instance string) keys {
	q := s.Queue(instance)
	return keys{q: q, p: "wahaq:{" + q + "}:"}
}

func (k keys) record(id string) string  { return k.p + "t:" + id }
func (k keys) dedup(sess string) string { return k.p + "d:" + sess }
func (k keys) batch(bid string) string  { return k.p + "b:" + bid }
func (k keys) deadLetters() string      { return k.p + "dlq" }
func (k keys) slots() string            { return k.p + "slots" }

// NewID returns a new task or batch id.
func NewID() string { return uuid.NewString() }

// NewTask describes one task to create.
type NewTask struct {
	// ID is the task id; empty means a new one is generated.
	ID string
	// Instance and Session name the logout. Both must be valid.
	Instance, Session string
	// BatchID is the batch the task belongs to, if any.
	BatchID string
	// MaxRetries is the retry limit of transient failures.
	MaxRetries int
	// ProcessAt is when to run; zero or past means now.
	ProcessAt time.Time
	// Timeout is asynq's per-attempt timeout. Zero means none.
	Timeout time.Duration
}

// Enqueued is the result of creating one task.
type Enqueued struct {
	// ID is the task's id, or the live task's id when Deduplicated.
	ID string
	// Deduplicated is true when the session already had a live task.
	Deduplicated bool
}

func (s *Store) publish(ctx context.Context, q string) error {
	if _, ok := s.published.Load(q); ok {
		return nil
	}
	if err := s.rdb.SAdd(ctx, asynqwire.AllQueues, q).Err(); err != nil {
		return fmt.Errorf("register queue %s: %w", q, err)
	}
	s.published.Store(q, struct{}{})
	return nil
}

// scriptCall is one call of a script in a pipeline.
type scriptCall struct {
	keys []string
	args []any
}

// runPipelined runs calls of one script in a single round trip and returns
// their replies in order. EVALSHA fails with NOSCRIPT when Redis does not know
// the script (first use, a restart, a failover); such a call did not run, so
// it is safe to load the script and send just those calls again.
func (s *Store) runPipelined(ctx context.Context, script *redis.Script, calls []scriptCall) ([]*redis.Cmd, error) {
	cmds := make([]*redis.Cmd, len(calls))
	todo := make([]int, len(calls))
	for i := range todo {
		todo[i] = i
	}
	for round := 0; round < 2 && len(todo) > 0; round++ {
		pipe := s.rdb.Pipeline()
		for _, i := range todo {
			cmds[i] = script.EvalSha(ctx, pipe, calls[i].keys, calls[i].args...)
		}
		_, _ = pipe.Exec(ctx)
		var again []int
		for _, i := range todo {
			if err := cmds[i].Err(); err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
				again = append(again, i)
			}
		}
		if len(again) > 0 {
			if err := script.Load(ctx, s.rdb).Err(); err != nil {
				return nil, err
			}
		}
		todo = again
	}
	for _, c := range cmds {
		if err := c.Err(); err != nil {
			return nil, err
		}
	}
	return cmds, nil
}

// enqueueGroup is how many tasks one enqueue script call creates.
const enqueueGroup = 100

// Enqueue creates tasks: groups of up to 100 tasks that share an instance,
// process time, batch and retry limit go to Redis as one script call, and
// up to ten such calls as one pipeline, so a 50,000-session batch takes 50
// round trips. Each task is created atomically with its dedup entry and batch
// count; a session that already has a live task (or comes twice) is
// deduplicated. Inputs must be validated already.
func (s *Store) Enqueue(ctx context.Context, ts []NewTask) ([]Enqueued, error) {
	out := make([]Enqueued, len(ts))
	now := s.now()
	type group struct{ start, end int }
	var groups []group
	same := func(a, b *NewTask) bool {
		return a.Instance == b.Instance && a.BatchID == b.BatchID && a.MaxRetries == b.MaxRetries &&
			a.Timeout == b.Timeout && a.ProcessAt.Equal(b.ProcessAt)
	}
	for i := 0; i < len(ts); {
		j := i + 1
		for j < len(ts) && j-i < enqueueGroup && same(&ts[i], &ts[j]) {
			j++
		}
		groups = append(groups, group{i, j})
		i = j
	}
	const groupsPerPipeline = pipelineChunk / enqueueGroup
	for gi := 0; gi < len(groups); gi += groupsPerPipeline {
		batch := groups[gi:min(gi+groupsPerPipeline, len(groups))]
		calls := make([]scriptCall, 0, len(batch))
		for _, g := range batch {
			first := &ts[g.start]
			k := s.keys(first.Instance)
			if err := s.publish(ctx, k.q); err != nil {
				return nil, err
			}
			listKey, processAt, sched := asynqwire.PendingKey(k.q), "0", ""
			if first.ProcessAt.After(now) {
				listKey = asynqwire.ScheduledKey(k.q)
				processAt = strconv.FormatInt(ceilUnix(first.ProcessAt), 10)
				sched = strconv.FormatInt(first.ProcessAt.UnixMilli(), 10)
			}
			n := g.end - g.start
			keys := make([]string, 0, 2+3*n)
			keys = append(keys, listKey, k.batch(first.BatchID))
			args := make([]any, 0, 7+3*n)
			args = append(args, now.UnixNano(), processAt, first.BatchID, now.UnixMilli(),
				first.MaxRetries, sched, asynqwire.TaskKeyPrefix(k.q))
			timeout := int64(math.Ceil(first.Timeout.Seconds()))
			for i := g.start; i < g.end; i++ {
				t := &ts[i]
				if t.ID == "" {
					t.ID = NewID()
				}
				payload := Payload{Instance: t.Instance, Session: t.Session, BatchID: t.BatchID, MaxRetries: t.MaxRetries}.Encode()
				msg := asynqwire.Encode(asynqwire.Message{
					Type: TypeLogout, Payload: payload, ID: t.ID, Queue: k.q, Retry: asynqMaxRetry, TimeoutSeconds: timeout,
				})
				keys = append(keys, k.record(t.ID), k.dedup(t.Session), asynqwire.TaskKey(k.q, t.ID))
				args = append(args, t.ID, msg, t.Session)
			}
			calls = append(calls, scriptCall{keys: keys, args: args})
		}
		cmds, err := s.runPipelined(ctx, enqueueManyScript, calls)
		if err != nil {
			return nil, fmt.Errorf("enqueue: %w", err)
		}
		for ci, c := range cmds {
			g := batch[ci]
			v, _ := c.Slice()
			if len(v) != 2*(g.end-g.start) {
				return nil, fmt.Errorf("enqueue: unexpected reply %v", c.Val())
			}
			for i := g.start; i < g.end; i++ {
				id, _ := v[2*(i-g.start)].(string)
				flag, _ := v[2*(i-g.start)+1].(int64)
				out[i] = Enqueued{ID: id, Deduplicated: flag == 1}
			}
		}
	}
	return out, nil
}

// Start takes a concurrency slot of the instance for the task and marks it
// active. It returns false, and changes nothing, when the instance already
// has capacity logouts in flight (capacity 0 means no cap). The slot is a
// lease that ends at lease from now, or at Finish.
func (s *Store) Start(ctx context.Context, id string, p Payload, attempt, capacity int, lease time.Duration) (bool, error) {
	k := s.keys(p.Instance)
	now := s.now()
	n, err := startScript.Run(ctx, s.rdb,
		[]string{k.slots(), k.record(id), k.batch(p.BatchID), k.deadLetters()},
		id, now.UnixMilli(), now.Add(lease).UnixMilli(), capacity, attempt,
		p.Instance, p.Session, p.BatchID, p.MaxRetries).Int()
	if err != nil {
		return false, fmt.Errorf("start task %s: %w", id, err)
	}
	return n == 1, nil
}

// Finish records the end of an attempt and frees the task's slot.
type Finish struct {
	// State is StateRetrying, StateCompleted or StateDead.
	State State
	// Outcome is set for completed and dead tasks.
	Outcome Outcome
	// LastError is the error of this attempt, if any. Never a secret.
	LastError string
	// Result is WAHA's answer, if any.
	Result *Result
	// NextAttempt is when a retrying task runs again.
	NextAttempt time.Time
	// ResultTTL is how long a completed record is kept.
	ResultTTL time.Duration
}

// Finish applies f to the task.
func (s *Store) Finish(ctx context.Context, id string, p Payload, f Finish) error {
	k := s.keys(p.Instance)
	var result []byte
	if f.Result != nil {
		var err error
		if result, err = json.Marshal(f.Result); err != nil {
			return fmt.Errorf("finish task %s: %w", id, err)
		}
	}
	var next int64
	if !f.NextAttempt.IsZero() {
		next = f.NextAttempt.UnixMilli()
	}
	ttl := int64(math.Ceil(f.ResultTTL.Seconds()))
	if ttl < 1 {
		ttl = 1
	}
	err := finishScript.Run(ctx, s.rdb,
		[]string{k.slots(), k.record(id), k.batch(p.BatchID), k.dedup(p.Session), k.deadLetters()},
		id, string(f.State), string(f.Outcome), s.now().UnixMilli(), next, f.LastError, result, ttl, p.BatchID).Err()
	if err != nil {
		return fmt.Errorf("finish task %s: %w", id, err)
	}
	return nil
}

// Get returns the task with the given id from any of the instances.
func (s *Store) Get(ctx context.Context, instances []string, id string) (*Task, error) {
	_, t, err := s.find(ctx, instances, id)
	return t, err
}

func (s *Store) find(ctx context.Context, instances []string, id string) (string, *Task, error) {
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(instances))
	for i, inst := range instances {
		cmds[i] = pipe.HGetAll(ctx, s.keys(inst).record(id))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return "", nil, fmt.Errorf("get task %s: %w", id, err)
	}
	for i, c := range cmds {
		if m := c.Val(); len(m) > 0 {
			return instances[i], s.decodeRecord(id, instances[i], m), nil
		}
	}
	return "", nil, fmt.Errorf("task %s: %w", id, ErrNotFound)
}

func msTime(v string) *time.Time {
	if v == "" {
		return nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n == 0 {
		return nil
	}
	t := time.UnixMilli(n).UTC()
	return &t
}

func (s *Store) decodeRecord(id, instance string, m map[string]string) *Task {
	t := &Task{ID: id, Instance: instance, Session: m["session"], State: State(m["state"])}
	t.Attempts, _ = strconv.Atoi(m["attempts"])
	t.MaxRetries, _ = strconv.Atoi(m["max"])
	if b := m["batch"]; b != "" {
		t.BatchID = &b
	}
	if e := msTime(m["enq"]); e != nil {
		t.EnqueuedAt = *e
	}
	t.ScheduledFor = msTime(m["sched"])
	t.NextAttemptAt = msTime(m["next"])
	t.FinishedAt = msTime(m["fin"])
	if o := m["outcome"]; o != "" {
		oc := Outcome(o)
		t.Outcome = &oc
	}
	if e := m["err"]; e != "" {
		t.LastError = &e
	}
	if r := m["result"]; r != "" {
		var res Result
		if json.Unmarshal([]byte(r), &res) == nil {
			t.Result = &res
		}
	}
	// asynq moves a scheduled task to pending on its own; the record learns
	// of it only when the task starts.
	if t.State == StateScheduled && t.ScheduledFor != nil && !t.ScheduledFor.After(s.now()) {
		t.State = StatePending
	}
	return t
}

// Cancel cancels a task that has not started. It returns ErrNotFound for an
// unknown id and ErrAlreadyStarted once the task has started or finished.
func (s *Store) Cancel(ctx context.Context, instances []string, id string, resultTTL time.Duration) (*Task, error) {
	inst, t, err := s.find(ctx, instances, id)
	if err != nil {
		return nil, err
	}
	k := s.keys(inst)
	bid := ""
	if t.BatchID != nil {
		bid = *t.BatchID
	}
	n, err := cancelScript.Run(ctx, s.rdb,
		[]string{k.record(id), asynqwire.TaskKey(k.q, id), asynqwire.PendingKey(k.q), asynqwire.ScheduledKey(k.q),
			asynqwire.RetryKey(k.q), k.batch(bid), k.dedup(t.Session)},
		id, s.now().UnixMilli(), int64(math.Max(1, math.Ceil(resultTTL.Seconds())))).Int()
	if err != nil {
		return nil, fmt.Errorf("cancel task %s: %w", id, err)
	}
	switch n {
	case 0:
		return nil, fmt.Errorf("task %s: %w", id, ErrNotFound)
	case -1:
		return nil, fmt.Errorf("task %s is %s: %w", id, t.State, ErrAlreadyStarted)
	}
	return s.Get(ctx, []string{inst}, id)
}

// ClaimTick claims one tick of a recurring schedule. Exactly one caller, of
// however many replicas ask, gets true for a given schedule and tick: asynq's
// own Scheduler has no leader election, so each replica would enqueue its own
// copy. The claim is kept for a week.
func (s *Store) ClaimTick(ctx context.Context, instance, schedule string, tick time.Time) (bool, error) {
	k := s.keys(instance)
	ok, err := s.rdb.SetNX(ctx, k.p+"cron:"+schedule+":"+strconv.FormatInt(tick.Unix(), 10), s.now().UnixMilli(), 7*24*time.Hour).Result()
	if err != nil {
		return false, fmt.Errorf("claim tick of %s: %w", schedule, err)
	}
	return ok, nil
}
