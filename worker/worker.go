package worker

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"

	"github.com/wahaq/wahaq/internal/asynqcompat"
	"github.com/wahaq/wahaq/internal/base"
	"github.com/wahaq/wahaq/internal/metrics"
	"github.com/wahaq/wahaq/internal/reconcile"
	"github.com/wahaq/wahaq/internal/store"
	"github.com/wahaq/wahaq/wahaclient"
)

// instance is a configured WAHA server, ready to use.
type instance struct {
	name     string
	client   *wahaclient.Client
	capacity int
	limit    *redis_rate.Limit
	rateKey  string
	breaker  *breaker
	// awaitEvents: Instance.AwaitEvents
	awaitEvents bool
}

// Worker runs logout tasks. Create it with New, then Run or Start.
type Worker struct {
	cfg       Config
	store     *store.Store
	instances map[string]*instance
	starter   starter
	validator checker
	rate      limiter
	metrics   *metrics.Metrics
	log       zerolog.Logger
	srv       *asynq.Server
	pipeline  step
	// discoverPipeline is the chain of a discovery: the logout's steps
	// that apply to listing a server (no rate or slot: one call per batch).
	discoverPipeline step
	recon            *reconcile.Reconciler
	stopRecon        context.CancelFunc
	reconDone        chan struct{}
	callbacks        *callbacks
	// deliveries is the callback delivery loop (callback.go).
	deliveries deliveries

	// held are the tasks this process holds a concurrency slot for.
	held inflight
	// gates is the view of the queues' gates that spares asynq's dequeue
	// of a closed queue its round trip (gate.go).
	gates *gateView
	// queues is the view of what the queues hold that spares an idle
	// worker's polls their round trips (queueview.go).
	queues    *queueView
	stopGates context.CancelFunc
	gatesDone chan struct{}
	// hook answers asynq's queue scripts on the worker's Redis client
	// (hook.go); it holds the completed tasks whose asynq done Finish did
	// already.
	hook *asynqcompat.Hook
	// ahead are the tasks a block take dequeued for asks of asynq still to
	// come (take.go).
	ahead takeAhead
	// finishes shares round trips between handlers' Finishes (combine.go).
	finishes finishes
	// running counts handler calls in progress.
	running atomic.Int64
	// force, closed by Force, ends Shutdown's wait for running calls.
	force     chan struct{}
	forceOnce sync.Once

	mu          sync.Mutex
	started     bool
	stopRenewal context.CancelFunc
	renewDone   chan struct{}
	// id names this Worker in Redis reports (its breakers' states).
	id string
	// reports are the breaker-state writes in flight; Shutdown waits for
	// them.
	reports sync.WaitGroup
	// stopping is set once Shutdown begins: a canceled attempt then is the
	// shutdown's, not an operator's.
	stopping atomic.Bool
}

// New returns a Worker for cfg.
func New(cfg Config) (*Worker, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	w := &Worker{
		cfg:       cfg,
		store:     store.New(cfg.Redis, store.Options{Namespace: cfg.Namespace, Now: cfg.Now}),
		instances: map[string]*instance{},
		rate:      redis_rate.NewLimiter(cfg.Redis),
		metrics:   metrics.New(cfg.Registerer),
		log:       *cfg.Logger,
		force:     make(chan struct{}),
		id:        rand.Text(),
	}
	w.finishes.st = w.store
	w.gates = newGateView(cfg.Redis, cfg.Now, cfg.PollInterval, &w.log)
	w.queues = newQueueView(w.store, cfg.Now, &w.log)
	w.gates.changed = w.queues.forgetInstance
	names := make([]string, 0, len(cfg.Instances))
	var awaiting []string // instances whose logouts await WAHA's events
	queues := map[string]int{}
	secrets := cfg.secrets()
	for _, in := range cfg.Instances {
		timeout := in.Timeout
		if timeout <= 0 {
			timeout = DefaultInstanceTimeout
		}
		c, err := wahaclient.New(wahaclient.Config{BaseURL: in.BaseURL, APIKey: in.APIKey, HTTPClient: in.HTTPClient, Timeout: timeout,
			Trace: cfg.Trace, Redact: secrets})
		if err != nil {
			return nil, fmt.Errorf("worker: instance %q: %w", in.Name, err)
		}
		capacity := in.Concurrency
		if capacity == 0 {
			capacity = cfg.InstanceConcurrency
		}
		k := w.store.Keys(in.Name)
		q := k.Queue
		w.queues.add(in.Name, k, w.gates.add(in.Name, k))
		w.instances[in.Name] = &instance{name: in.Name, client: c, capacity: capacity,
			limit: rateLimit(in.Rate), rateKey: k.Rate(), breaker: w.newBreaker(in.Name, timeout), awaitEvents: in.AwaitEvents}
		names = append(names, in.Name)
		if in.AwaitEvents {
			awaiting = append(awaiting, in.Name)
		}
		// Equal weights: asynq picks queues at random by weight, so one
		// server's 50,000-session teardown cannot starve another's logouts.
		queues[q] = 1
	}
	w.starter = w.store
	if cfg.Validation.URL != "" {
		vc := cfg.Validation
		vc.Redact = append(append([]string(nil), vc.Redact...), secrets...)
		v, err := wahaclient.NewValidator(vc)
		if err != nil {
			return nil, fmt.Errorf("worker: validation: %w", err)
		}
		w.validator = v
	}
	if w.callbacks, err = newCallbacks(cfg); err != nil {
		return nil, err
	}
	w.deliveries.slots = make(chan struct{}, cfg.CallbackConcurrency)
	w.deliveries.wake = make(chan struct{}, 1)
	w.pipeline = chain(w.logout, w.circuit, w.limitRate, w.start, w.validate)
	w.discoverPipeline = chain(w.list, w.circuit, w.validate)
	if w.recon, err = reconcile.New(reconcile.Config{Redis: cfg.Redis, Namespace: cfg.Namespace, Instances: names, AwaitEvents: awaiting,
		ResultTTL: cfg.ResultTTL, Metrics: w.metrics, Logger: &w.log, Now: cfg.Now}); err != nil {
		return nil, fmt.Errorf("worker: %w", err)
	}
	// asynq's queue scripts go through the worker's hook (hook.go; it only
	// acts while the worker runs; a client shared by several workers gets
	// one hook each).
	w.metrics.FastPath.WithLabelValues(asynqcompat.ReasonOn).Set(1)
	fence := asynqcompat.NewFence(cfg.FastPath == FastPathOn, asynqcompat.BuiltVersion(), w.fastPathOff)
	w.hook = asynqcompat.NewHook(answers{gates: w.gates, take: w.take, ahead: &w.ahead, queues: w.queues}, fence)
	cfg.Redis.AddHook(w.hook)
	w.srv = asynq.NewServerFromRedisClient(cfg.Redis, asynq.Config{
		Concurrency:    cfg.Concurrency,
		Queues:         queues,
		RetryDelayFunc: w.retryDelay,
		IsFailure:      isFailure,
		// Shutdown waits ShutdownGrace itself (it can be cut short by
		// Force); asynq then only has to hand back what still runs.
		ShutdownTimeout:          handBackWait,
		TaskCheckInterval:        cfg.PollInterval,
		DelayedTaskCheckInterval: cfg.DelayedInterval,
		Logger:                   asynqLogger{w.log},
		LogLevel:                 asynq.WarnLevel,
	})
	return w, nil
}

// secrets lists every secret the worker is configured with: each
// instance's API key and base-URL password, the validation service's key
// and the callback secret (whole and its key part). Every WAHA client and
// the validator remove all of them from what their server answers before
// it becomes an error or a result (issue 11: a server that echoes another
// server's key, or the validation key, must not get it stored or logged).
func (c Config) secrets() []string {
	var out []string
	for _, in := range c.Instances {
		out = append(out, in.APIKey)
		if u, err := url.Parse(in.BaseURL); err == nil && u.User != nil {
			if p, ok := u.User.Password(); ok {
				out = append(out, p)
			}
		}
	}
	out = append(out, c.Validation.APIKey)
	if c.CallbackSecret != "" {
		out = append(out, c.CallbackSecret, strings.TrimPrefix(c.CallbackSecret, "whsec_"))
	}
	// Empty ones are dropped by the redactor; short ones are kept: a key
	// is a key however short.
	return out
}

// OnEnqueued counts n tasks enqueued for instance in the worker's
// wahaq_enqueued_total. Pass it as tasks.Config.OnEnqueued so that what a
// producer in the same process enqueues (the schedule runner's teardowns)
// counts there too.
func (w *Worker) OnEnqueued(instance string, n int) {
	w.metrics.Enqueued.WithLabelValues(instance).Add(float64(n))
}

// Handler returns the asynq handler for wahaq's task types, to mount in
// an asynq server of one's own (Start runs the worker's). It is safe
// there: that server's asynq does every done itself, because only the
// worker's own server, whose client hook answers asynq's done, has its
// completed tasks' dones done by wahaq's finish (the fast path). Tasks
// that server takes run as the worker's would; Shutdown waits for them.
func (w *Worker) Handler() asynq.Handler { return w.handler(false) }

// ownServer marks, in a handler's context, a task the worker's own asynq
// server delivered.
type ownServer struct{}

// handler is Handler; own marks its tasks as the worker's own server's.
func (w *Worker) handler(own bool) asynq.Handler {
	mux := asynq.NewServeMux()
	mux.Handle(base.TypeLogout, w)
	mux.HandleFunc(base.TypeDiscover, w.discover)
	mux.HandleFunc(base.TypeCallback, w.adoptCallback)
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		// Counted so that Shutdown knows when nothing runs any more.
		w.running.Add(1)
		defer w.running.Add(-1)
		if own {
			ctx = context.WithValue(ctx, ownServer{}, ownServer{})
		}
		return mux.ProcessTask(ctx, t)
	})
}

// Start starts processing in the background. Stop it with Shutdown.
func (w *Worker) Start() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	gctx, stopGates := context.WithCancel(context.Background())
	w.stopGates, w.gatesDone = stopGates, make(chan struct{})
	go func() {
		defer close(w.gatesDone)
		if w.hook.Fence().On() {
			// the views are the fast path's: off, asynq polls its queues itself
			var wg sync.WaitGroup
			wg.Go(func() { w.queues.run(gctx) })
			w.gates.run(gctx)
			wg.Wait()
		}
	}()
	if err := w.srv.Start(w.handler(true)); err != nil {
		stopGates()
		<-w.gatesDone
		return fmt.Errorf("worker: %w", err)
	}
	w.started = true
	ctx, cancel := context.WithCancel(context.Background())
	w.stopRenewal, w.renewDone = cancel, make(chan struct{})
	go func() {
		defer close(w.renewDone)
		w.renewLoop(ctx)
	}()
	w.stopping.Store(false)
	w.startDeliveries()
	if w.cfg.ReconcileInterval > 0 {
		ctx, cancel := context.WithCancel(context.Background())
		w.stopRecon, w.reconDone = cancel, make(chan struct{})
		go func() {
			defer close(w.reconDone)
			w.recon.Run(ctx, w.cfg.ReconcileInterval)
		}()
	}
	w.log.Info().Int("concurrency", w.cfg.Concurrency).Int("instances", len(w.instances)).
		Str("fast_path", w.hook.Fence().Status().Reason).Msg("worker started")
	return nil
}

// handBackWait is how long asynq waits, once Shutdown has stopped waiting,
// before it pushes the tasks still running back to their queues.
const handBackWait = 500 * time.Millisecond

// Shutdown stops taking tasks, lets in-flight logouts finish within
// ShutdownGrace (or until Force), and hands back to the queue those that do
// not, freeing their concurrency slots; the logout is idempotent, so running
// one again later is safe.
func (w *Worker) Shutdown() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.started {
		return
	}
	w.stopping.Store(true)
	w.stopDeliveries()
	if w.stopRecon != nil {
		w.stopRecon()
		<-w.reconDone
		w.stopRecon = nil
	}
	w.srv.Stop()
	// asynq asks for no more tasks: what a block take dequeued for it goes
	// back to the queue for other workers
	w.giveBackAhead(0)
	grace := time.NewTimer(w.cfg.ShutdownGrace)
	defer grace.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
wait:
	for w.running.Load() > 0 {
		select {
		case <-w.force:
			w.log.Warn().Int64("in_flight", w.running.Load()).Msg("second signal: forcing the stop; handing in-flight tasks back to the queue")
			break wait
		case <-grace.C:
			w.log.Warn().Int64("in_flight", w.running.Load()).Dur("grace", w.cfg.ShutdownGrace).Msg("shutdown grace is over; handing in-flight tasks back to the queue")
			break wait
		case <-tick.C:
		}
	}
	w.srv.Shutdown()
	w.giveBackAhead(0) // a take in progress at the first one may have added some
	w.announceHandBack()
	// asynq has pushed what still ran back to pending; free its slots now
	// rather than when their leases end.
	w.stopRenewal()
	<-w.renewDone
	w.releaseHeld()
	w.stopGates()
	<-w.gatesDone
	// No handler runs now, so no breaker changes state: the last reports
	// are in Redis when Shutdown returns.
	w.reports.Wait()
	w.started = false
	w.log.Info().Msg("worker stopped")
}

// announceHandBack tells the other workers that asynq has pushed the
// tasks still running back to their queues (store.AnnounceWork): their
// views of the queues (queueview.go) would otherwise hear of them only at
// their next recheck.
func (w *Worker) announceHandBack() {
	names := make([]string, 0, len(w.instances))
	for name := range w.instances {
		names = append(names, name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.store.AnnounceWork(ctx, names...); err != nil {
		w.log.Debug().Err(err).Msg("cannot announce the tasks handed back; other workers find them at their next recheck")
	}
}

// Force cuts short a Shutdown in progress (or the next one): the logouts
// still running are handed back to the queue at once instead of after
// ShutdownGrace. Call it on a second SIGTERM.
func (w *Worker) Force() { w.forceOnce.Do(func() { close(w.force) }) }

// Run processes tasks until ctx is done, then shuts down gracefully.
func (w *Worker) Run(ctx context.Context) error {
	if err := w.Start(); err != nil {
		return err
	}
	<-ctx.Done()
	w.Shutdown()
	return nil
}

// Reconcile walks the whole namespace once and repairs every record, dedup
// claim, batch and queue that disagrees with asynq's queues, as the
// background reconciler does every ReconcileInterval. It returns how many
// repairs it made.
func (w *Worker) Reconcile(ctx context.Context) (int, error) {
	reps, err := w.recon.Sweep(ctx)
	return len(reps), err
}

// fastPathOff is told, once, that the fence turned the fast path off
// (asynqcompat.Fence): at New when the switch or the asynq build says so,
// or later when the hook sees one of asynq's scripts it does not know.
func (w *Worker) fastPathOff(s asynqcompat.Status) {
	for _, r := range asynqcompat.Reasons {
		w.metrics.FastPath.DeleteLabelValues(r)
	}
	w.metrics.FastPath.WithLabelValues(s.Reason).Set(0)
	ev := w.log.Warn()
	if s.Reason == asynqcompat.ReasonSwitch {
		ev = w.log.Info()
	}
	ev.Str("reason", s.Reason).Str("asynq_version", asynqcompat.BuiltVersion()).Str("detail", s.Detail).
		Msg("fast path off: asynq dequeues and completes tasks itself")
}

// asynqLogger sends asynq's own logs to zerolog.
type asynqLogger struct{ l zerolog.Logger }

func (a asynqLogger) Debug(args ...any) { a.l.Debug().Msg(fmt.Sprint(args...)) }
func (a asynqLogger) Info(args ...any)  { a.l.Info().Msg(fmt.Sprint(args...)) }
func (a asynqLogger) Warn(args ...any) {
	if msg := fmt.Sprint(args...); !asynqcompat.QuietLog(msg) {
		a.l.Warn().Msg(msg)
	}
}
func (a asynqLogger) Error(args ...any) { a.l.Error().Msg(fmt.Sprint(args...)) }
func (a asynqLogger) Fatal(args ...any) { a.l.Fatal().Msg(fmt.Sprint(args...)) }
