package worker

import (
	"context"
	"fmt"
	"sync"

	"github.com/go-redis/redis_rate/v10"
	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"

	"github.com/wahaq/wahaq/internal/base"
	"github.com/wahaq/wahaq/internal/metrics"
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
	callbacks *callbacks

	mu      sync.Mutex
	started bool
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
	}
	names := make([]string, 0, len(cfg.Instances))
	queues := map[string]int{}
	for _, in := range cfg.Instances {
		c, err := wahaclient.New(wahaclient.Config{BaseURL: in.BaseURL, APIKey: in.APIKey, HTTPClient: in.HTTPClient})
		if err != nil {
			return nil, fmt.Errorf("worker: instance %q: %w", in.Name, err)
		}
		capacity := in.Concurrency
		if capacity == 0 {
			capacity = cfg.InstanceConcurrency
		}
		k := w.store.Keys(in.Name)
		q := k.Queue
		w.instances[in.Name] = &instance{name: in.Name, client: c, capacity: capacity,
			limit: rateLimit(in.Rate), rateKey: k.Rate()}
		names = append(names, in.Name)
		// Equal weights: asynq picks queues at random by weight, so one
		// server's 50,000-session teardown cannot starve another's logouts.
		queues[q] = 1
	}
	w.starter = w.store
	if cfg.Validation.URL != "" {
		v, err := wahaclient.NewValidator(cfg.Validation)
		if err != nil {
			return nil, fmt.Errorf("worker: validation: %w", err)
		}
		w.validator = v
	}
	if w.callbacks, err = newCallbacks(cfg); err != nil {
		return nil, err
	}
	w.pipeline = chain(w.logout, w.limitRate, w.start, w.validate)
	w.srv = asynq.NewServerFromRedisClient(cfg.Redis, asynq.Config{
		Concurrency:              cfg.Concurrency,
		Queues:                   queues,
		RetryDelayFunc:           w.retryDelay,
		IsFailure:                isFailure,
		ShutdownTimeout:          cfg.ShutdownGrace,
		TaskCheckInterval:        cfg.PollInterval,
		DelayedTaskCheckInterval: cfg.DelayedInterval,
		Logger:                   asynqLogger{w.log},
		LogLevel:                 asynq.WarnLevel,
	})
	return w, nil
}

// OnEnqueued counts n tasks enqueued for instance in the worker's
// wahaq_enqueued_total. Pass it as tasks.Config.OnEnqueued so that what a
// producer in the same process enqueues (the schedule runner's teardowns)
// counts there too.
func (w *Worker) OnEnqueued(instance string, n int) {
	w.metrics.Enqueued.WithLabelValues(instance).Add(float64(n))
}

// Handler returns the asynq handler for wahaq's task types.
func (w *Worker) Handler() asynq.Handler {
	mux := asynq.NewServeMux()
	mux.Handle(base.TypeLogout, w)
	mux.HandleFunc(base.TypeDiscover, w.discover)
	mux.HandleFunc(base.TypeCallback, w.deliverCallback)
	return mux
}

// Start starts processing in the background. Stop it with Shutdown.
func (w *Worker) Start() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.srv.Start(w.Handler()); err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	w.started = true
	w.log.Info().Int("concurrency", w.cfg.Concurrency).Int("instances", len(w.instances)).Msg("worker started")
	return nil
}

// Shutdown stops taking tasks, lets in-flight logouts finish within
// ShutdownGrace, and hands back to the queue those that do not; the logout
// is idempotent, so running one again later is safe.
func (w *Worker) Shutdown() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.started {
		return
	}
	w.srv.Shutdown()
	w.started = false
	w.log.Info().Msg("worker stopped")
}

// Run processes tasks until ctx is done, then shuts down gracefully.
func (w *Worker) Run(ctx context.Context) error {
	if err := w.Start(); err != nil {
		return err
	}
	<-ctx.Done()
	w.Shutdown()
	return nil
}

// asynqLogger sends asynq's own logs to zerolog.
type asynqLogger struct{ l zerolog.Logger }

func (a asynqLogger) Debug(args ...any) { a.l.Debug().Msg(fmt.Sprint(args...)) }
func (a asynqLogger) Info(args ...any)  { a.l.Info().Msg(fmt.Sprint(args...)) }
func (a asynqLogger) Warn(args ...any)  { a.l.Warn().Msg(fmt.Sprint(args...)) }
func (a asynqLogger) Error(args ...any) { a.l.Error().Msg(fmt.Sprint(args...)) }
func (a asynqLogger) Fatal(args ...any) { a.l.Fatal().Msg(fmt.Sprint(args...)) }
