package tasks

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"

	"github.com/wahaq/wahaq/internal/base"
	"github.com/wahaq/wahaq/internal/callback"
	"github.com/wahaq/wahaq/internal/store"
)

// Defaults of Config, written into new tasks unless set.
const (
	// DefaultInstance is the instance a request without one names.
	DefaultInstance = "default"
	// DefaultMaxRetries is the default retry limit of transient failures.
	DefaultMaxRetries = 10
	// DefaultTaskTimeout is asynq's default per-attempt timeout: a WAHA
	// logout of a running session takes 3 s or more, on the WEBJS engine
	// much longer.
	DefaultTaskTimeout = 2 * time.Minute
	// DefaultResultTTL is how long finished tasks stay readable by default.
	DefaultResultTTL = 24 * time.Hour
	// DefaultMaxBatch is the default largest batch.
	DefaultMaxBatch = 100_000
)

// NoRetries, as Config.MaxRetries, means no retry: a transient failure kills
// the task at once. It exists because the zero MaxRetries means
// DefaultMaxRetries, as every zero field of Config means its default.
const NoRetries = -1

// Config configures a Producer or an Inspector. Producers and workers must
// agree on Namespace and on the instance names. Every zero field means its
// default.
type Config struct {
	// Redis is the client to use. Required. A *redis.Client, a failover
	// client (Sentinel) or a *redis.ClusterClient.
	Redis redis.UniversalClient
	// Namespace prefixes queue names. Defaults to DefaultNamespace ("wahaq").
	Namespace string
	// Instances are the WAHA server names tasks may name. An enqueue for any
	// other name is refused. Defaults to [DefaultInstance].
	Instances []string
	// MaxRetries is the retry limit written into new tasks
	// (WAHAQ_MAX_RETRIES). NoRetries means none; other negative values are
	// refused. Defaults to DefaultMaxRetries (10).
	MaxRetries int
	// TaskTimeout is asynq's per-attempt timeout written into new tasks.
	// Defaults to DefaultTaskTimeout (2m).
	TaskTimeout time.Duration
	// ResultTTL is how long finished and canceled tasks stay readable
	// (WAHAQ_RESULT_TTL); dead tasks stay until requeued or purged.
	// Defaults to DefaultResultTTL (24h).
	ResultTTL time.Duration
	// MaxBatch is the largest batch accepted. Defaults to DefaultMaxBatch
	// (100,000).
	MaxBatch int
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
	// CallbackAllow lists the destinations a callback URL may name
	// (WAHAQ_CALLBACK_ALLOW): see callback.Allow for what each entry allows.
	// Defaults to none: every callback URL is refused.
	CallbackAllow []string
	// OnEnqueued, when set, is called with the number of tasks a call
	// created (deduplicated ones not counted), e.g. to feed the
	// wahaq_enqueued_total metric. Defaults to none.
	OnEnqueued func(instance string, n int)
	// WAHA lists each instance's sessions for Preview (a *wahaclient.Client
	// per instance name). Defaults to none: Preview answers
	// ErrPreviewUnavailable.
	WAHA map[string]SessionLister
}

func (c Config) withDefaults() (Config, error) {
	if c.Redis == nil {
		return c, fmt.Errorf("tasks: Config.Redis is required")
	}
	if c.Namespace == "" {
		c.Namespace = DefaultNamespace
	}
	if len(c.Instances) == 0 {
		c.Instances = []string{DefaultInstance}
	}
	for _, in := range c.Instances {
		if err := ValidateInstanceName(in); err != nil {
			return c, err
		}
	}
	switch {
	case c.MaxRetries == 0:
		c.MaxRetries = DefaultMaxRetries
	case c.MaxRetries == NoRetries:
		c.MaxRetries = 0
	case c.MaxRetries < 0:
		return c, fmt.Errorf("tasks: Config.MaxRetries %d is negative (NoRetries means none)", c.MaxRetries)
	}
	if c.TaskTimeout <= 0 {
		c.TaskTimeout = DefaultTaskTimeout
	}
	if c.ResultTTL <= 0 {
		c.ResultTTL = DefaultResultTTL
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = DefaultMaxBatch
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, nil
}

// Producer enqueues logouts. It is safe for concurrent use.
type Producer struct {
	cfg   Config
	store *store.Store
	allow *callback.Allow
}

// NewProducer returns a Producer.
func NewProducer(cfg Config) (*Producer, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	allow, err := parseAllow(cfg.CallbackAllow)
	if err != nil {
		return nil, err
	}
	return &Producer{cfg: cfg, store: newStore(cfg), allow: allow}, nil
}

func newStore(cfg Config) *store.Store {
	return store.New(cfg.Redis, store.Options{Namespace: cfg.Namespace, Now: cfg.Now})
}

// Queue returns the asynq queue name of an instance ("<namespace>:<instance>"),
// as asynq's tools show it.
func (p *Producer) Queue(instance string) string { return p.store.Queue(instance) }

// When says when a logout should run: At or In, or neither for now.
type When struct {
	// At is an absolute time; it must not be in the past nor more than
	// DefaultMaxSchedule (366 days) ahead.
	At time.Time
	// In is a delay from now; it must not be negative nor more than
	// DefaultMaxSchedule.
	In time.Duration
}

// resolve turns a When into a process time (zero for now).
func (w When) resolve(now time.Time) (time.Time, error) {
	switch {
	case !w.At.IsZero() && w.In != 0:
		return time.Time{}, fmt.Errorf("%w: give either at or in, not both", ErrInvalidInput)
	case !w.At.IsZero():
		if w.At.Before(now.Add(-time.Second)) {
			return time.Time{}, fmt.Errorf("%w: at %s is in the past", ErrInvalidInput, w.At.UTC().Format(time.RFC3339))
		}
		if !w.At.After(now) {
			// Within the second of grace: run now. The store would queue it
			// as pending anyway; the answer must say so too.
			return time.Time{}, nil
		}
		if w.At.After(now.Add(DefaultMaxSchedule)) {
			return time.Time{}, fmt.Errorf("%w: at %s is more than %d days ahead; schedule at most %d days ahead",
				ErrInvalidInput, w.At.UTC().Format(time.RFC3339), DefaultMaxSchedule/(24*time.Hour), DefaultMaxSchedule/(24*time.Hour))
		}
		return w.At, nil
	case w.In < 0:
		return time.Time{}, fmt.Errorf("%w: in %s is negative", ErrInvalidInput, w.In)
	case w.In > DefaultMaxSchedule:
		return time.Time{}, fmt.Errorf("%w: in %s is more than %d days; schedule at most %d days ahead",
			ErrInvalidInput, w.In, DefaultMaxSchedule/(24*time.Hour), DefaultMaxSchedule/(24*time.Hour))
	case w.In > 0:
		return now.Add(w.In), nil
	}
	return time.Time{}, nil
}

// LogoutRequest asks for one logout.
type LogoutRequest struct {
	// Instance is the WAHA server name. Empty means "default".
	Instance string
	// Session is the WAHA session name.
	Session string
	When
	// CallbackURL, when set, is posted the task (signed, Standard Webhooks)
	// once it is completed, dead or canceled. It must be allowed by
	// Config.CallbackAllow. A request that joins a live task (deduplicated,
	// or pulling it forward) adds it to that task's callbacks: each URL the
	// task holds gets its own delivery when it ends, up to MaxCallbacks
	// (beyond: ErrTooManyCallbacks).
	CallbackURL string
}

func (p *Producer) checkInstance(instance string) (string, error) {
	if instance == "" {
		instance = DefaultInstance
	}
	if err := ValidateInstanceName(instance); err != nil {
		return "", err
	}
	if !slices.Contains(p.cfg.Instances, instance) {
		return "", fmt.Errorf("%w %q: configured instances are %v", ErrUnknownInstance, instance, p.cfg.Instances)
	}
	return instance, nil
}

// Enqueue enqueues one logout and returns the task. When the session already
// has a scheduled, pending, active or retrying logout, that task is returned
// with Deduplicated set and nothing new is created. Now means now: when that
// task is scheduled later than this request asks, it is pulled forward to
// this request's time (Rescheduled set, ScheduledFor updated: nil for now);
// a request for a later time joins the earlier task. Invalid input is an
// error wrapping ErrInvalidInput.
//
// Enqueue is safe to retry after a timeout: if the first call's task was
// written, the retry finds it through the session's dedup claim and returns
// it (Deduplicated).
func (p *Producer) Enqueue(ctx context.Context, r LogoutRequest) (*Task, error) {
	instance, err := p.checkInstance(r.Instance)
	if err != nil {
		return nil, err
	}
	if err := ValidateSessionName(r.Session); err != nil {
		return nil, err
	}
	if err := p.checkCallback(r.CallbackURL); err != nil {
		return nil, err
	}
	now := p.cfg.Now()
	at, err := r.When.resolve(now)
	if err != nil {
		return nil, err
	}
	ctx, span, tp := startEnqueue(ctx, instance, r.Session)
	defer span.End()
	res, err := p.store.Enqueue(ctx, []store.NewTask{{
		Instance: instance, Session: r.Session, MaxRetries: p.cfg.MaxRetries, ProcessAt: at, Timeout: p.cfg.TaskTimeout,
		TraceParent: tp,
		CallbackURL: r.CallbackURL,
	}})
	if err != nil {
		return nil, err
	}
	span.SetAttributes(attribute.String("task_id", res[0].ID))
	if res[0].CallbacksFull {
		return nil, fmt.Errorf("%w: task %s of session %q holds %d callback URLs already (the requests that joined it); wait for it to end, or poll it",
			ErrTooManyCallbacks, res[0].ID, r.Session, MaxCallbacks)
	}
	if !res[0].Deduplicated {
		p.enqueued(instance, 1)
	}
	if res[0].Deduplicated {
		r, err := p.store.Get(ctx, []string{instance}, res[0].ID)
		if err != nil {
			return nil, err
		}
		t := newTask(r)
		t.Deduplicated = true
		t.Rescheduled = res[0].Rescheduled
		return t, nil
	}
	t := &Task{ID: res[0].ID, Instance: instance, Session: r.Session, State: StatePending,
		MaxRetries: p.cfg.MaxRetries, EnqueuedAt: time.UnixMilli(now.UnixMilli()).UTC(), AttemptsLog: []Attempt{}}
	if id := base.TraceID(tp); id != "" {
		t.TraceID = &id
	}
	if r.CallbackURL != "" {
		t.Callback = &Callback{State: CallbackWaiting}
	}
	if !at.IsZero() {
		t.State = StateScheduled
		s := time.UnixMilli(at.UnixMilli()).UTC()
		t.ScheduledFor = &s
	}
	return t, nil
}

// BatchRequest asks for the logout of many sessions of one server.
type BatchRequest struct {
	// Instance is the WAHA server name. Empty means "default".
	Instance string
	// Sessions are the session names. Duplicates count once.
	Sessions []string
	When
	// OnCreated, when set, is called with the batch id once the batch
	// exists, before its first task is written, so that a caller can name
	// the batch even if it is killed while the tasks are enqueued.
	OnCreated func(batchID string)
	// CallbackURL, when set, is posted the batch once it is done.
	CallbackURL string
}

// BatchInfo is the answer to a batch enqueue.
type BatchInfo struct {
	// BatchID identifies the batch.
	BatchID string `json:"batch_id"`
	// Total is how many tasks the batch holds.
	Total int64 `json:"total"`
	// Requested is how many sessions the request named.
	Requested int `json:"requested"`
	// Deduplicated is how many named sessions already had a live logout (or
	// were named twice); those are not part of the batch.
	Deduplicated int `json:"deduplicated"`
	// Discovering is true while the worker lists the server's sessions
	// (an "all" batch); Total is known only afterwards.
	Discovering bool `json:"discovering,omitempty"`
}

// EnqueueBatch enqueues one logout per session as one batch. Every name is
// validated before anything is written: one bad name rejects the whole
// request and enqueues nothing. Once the batch exists, a failure part way
// is a *BatchError naming the batch and how many logouts it holds; the batch
// is closed with those and reads done once they are final.
//
// Called inside Idempotent, the batch id is IdempotentBatchID's, and a
// batch of that id that exists is resumed (see resumeBatch): a retry of a
// request whose first try was interrupted answers that first batch, with
// its true total, and fills it with what the first try did not enqueue.
func (p *Producer) EnqueueBatch(ctx context.Context, r BatchRequest) (*BatchInfo, error) {
	instance, err := p.checkInstance(r.Instance)
	if err != nil {
		return nil, err
	}
	if len(r.Sessions) == 0 {
		return nil, fmt.Errorf("%w: the batch names no session", ErrInvalidInput)
	}
	if len(r.Sessions) > p.cfg.MaxBatch {
		return nil, fmt.Errorf("%w: the batch names %d sessions; at most %d are allowed", ErrInvalidInput, len(r.Sessions), p.cfg.MaxBatch)
	}
	for i, s := range r.Sessions {
		if err := ValidateSessionName(s); err != nil {
			return nil, fmt.Errorf("sessions[%d]: %w", i, err)
		}
	}
	if err := p.checkCallback(r.CallbackURL); err != nil {
		return nil, err
	}
	at, err := r.When.resolve(p.cfg.Now())
	if err != nil {
		return nil, err
	}
	id, resumable := idempotentBatch(ctx)
	if !resumable {
		id = base.NewID()
	}
	ctx, span, tp := startEnqueueBatch(ctx, "wahaq.enqueue_batch", instance, id, len(r.Sessions))
	var info *BatchInfo
	if resumable {
		info, err = p.resumeBatch(ctx, instance, id, r, at, tp)
	} else {
		info, err = p.enqueueBatch(ctx, instance, id, r, at, tp)
	}
	if info != nil && span.IsRecording() {
		span.SetAttributes(attribute.Int64("total", info.Total), attribute.Int("deduplicated", info.Deduplicated))
	}
	endSpan(span, err)
	return info, err
}

func (p *Producer) enqueueBatch(ctx context.Context, instance, id string, r BatchRequest, at time.Time, tp string) (*BatchInfo, error) {
	if err := p.createBatch(ctx, instance, id, at, false, r.CallbackURL); err != nil {
		return nil, err
	}
	if r.OnCreated != nil {
		r.OnCreated(id)
	}
	f, err := p.store.FillBatchTraced(ctx, instance, id, r.Sessions, at, p.cfg.MaxRetries, p.cfg.TaskTimeout, p.cfg.ResultTTL, tp)
	p.enqueued(instance, int(f.Total))
	if err != nil {
		return nil, p.interrupted(ctx, instance, id, f.Total, err)
	}
	return &BatchInfo{BatchID: id, Total: f.Total, Requested: f.Requested, Deduplicated: f.Deduplicated}, nil
}

func (p *Producer) enqueued(instance string, n int) {
	if p.cfg.OnEnqueued != nil && n > 0 {
		p.cfg.OnEnqueued(instance, n)
	}
}

// Cancel cancels a task that has not started yet. It returns ErrNotFound for
// an unknown id and ErrAlreadyStarted once the task has started.
func (p *Producer) Cancel(ctx context.Context, id string) (*Task, error) {
	if err := ValidateTaskID(id); err != nil {
		return nil, err
	}
	r, err := p.store.Cancel(ctx, p.cfg.Instances, id, p.cfg.ResultTTL)
	if err != nil {
		return nil, err
	}
	return newTask(r), nil
}

// createBatch writes an open batch and its callback URL, if any. The batch
// cannot be done before it is closed, so the two writes need not be one.
func (p *Producer) createBatch(ctx context.Context, instance, id string, at time.Time, discovering bool, callbackURL string) error {
	if err := p.store.CreateBatch(ctx, instance, id, at, discovering); err != nil {
		return err
	}
	if callbackURL != "" {
		return p.store.SetBatchCallback(ctx, instance, id, callbackURL)
	}
	return nil
}
