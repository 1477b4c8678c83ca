// Package worker performs wahaq's logout tasks: an asynq server whose
// handler is a chain of small middlewares (rate limit, start, validate, logout) under
// one policy that classifies what happened, records it and tells asynq
// whether to retry.
package worker

import (
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/wahaq/wahaq/internal/reconcile"
	"github.com/wahaq/wahaq/tasks"
	"github.com/wahaq/wahaq/wahaclient"
)

// Instance is one WAHA server the worker logs sessions out of.
type Instance struct {
	// Name is the instance name tasks use. Required.
	Name string
	// BaseURL is the server's URL. Required.
	BaseURL string
	// APIKey is sent as X-Api-Key. It stays in this process: never in
	// Redis, payloads, results, logs or errors.
	APIKey string
	// Concurrency caps the logouts in flight against this server across
	// every worker process. Defaults to Config.InstanceConcurrency.
	Concurrency int
	// Rate caps logouts started per second against this server across every
	// worker process; fractions are kept (2.5 is one start every 400 ms).
	// Defaults to no rate cap.
	Rate float64
	// Timeout bounds one call to this server (the instances file's
	// timeout), so that a server that never answers holds a worker's task
	// slots for at most this long. Defaults to DefaultInstanceTimeout (30s).
	Timeout time.Duration
	// HTTPClient overrides the WAHA client's HTTP client (tests, proxies).
	// Defaults to wahaclient's.
	HTTPClient *http.Client
	// AwaitEvents says that wahaq serve receives this server's
	// session.status webhooks (the instances file's webhook_hmac_key_env):
	// a completed logout of a session that was running then awaits the
	// events that confirm it (internal/store/events.go). Defaults to false.
	AwaitEvents bool
}

// Defaults of Config.
const (
	// DefaultConcurrency is how many tasks one process runs at once.
	DefaultConcurrency = 20
	// DefaultInstanceConcurrency is the cap of logouts in flight against
	// one server across all workers.
	DefaultInstanceConcurrency = 4
	// DefaultRetryBase is the smallest backoff between attempts.
	DefaultRetryBase = 2 * time.Second
	// DefaultRetryMax is the largest backoff between attempts.
	DefaultRetryMax = 10 * time.Minute
	// DefaultPollInterval is how often an idle worker looks for tasks.
	DefaultPollInterval = 10 * time.Millisecond
	// DefaultDelayedInterval is how often due scheduled and retrying tasks
	// are moved to the queue.
	DefaultDelayedInterval = 250 * time.Millisecond
	// DefaultTakeBlock is the most tasks one take dequeues at once.
	DefaultTakeBlock = 4
	// FastPathOn and FastPathOff are Config.FastPath's values.
	FastPathOn  = "on"
	FastPathOff = "off"
	// DefaultShutdownGrace is how long in-flight logouts may run after
	// SIGTERM.
	DefaultShutdownGrace = 30 * time.Second
)

// DefaultInstanceTimeout bounds one WAHA call when Instance.Timeout is zero:
// a real logout takes about 3 s, so 30 s is room for a slow one without
// letting a hung server hold slots for a minute.
const DefaultInstanceTimeout = 30 * time.Second

// Config configures a Worker. Every field documents its default.
type Config struct {
	// Redis is the client for wahaq's state and asynq. Required.
	Redis redis.UniversalClient
	// Namespace prefixes queue names. Defaults to tasks.DefaultNamespace
	// ("wahaq").
	Namespace string
	// Instances are the WAHA servers. Required (at least one).
	Instances []Instance
	// Trace makes each call to WAHA a span (otelhttp) of the attempt's
	// trace; set it when OpenTelemetry tracing is on. Attempt spans are
	// started either way (free on the global no-op provider). Defaults to
	// false.
	Trace bool
	// Concurrency is how many tasks this process runs at once
	// (WAHAQ_CONCURRENCY). Defaults to DefaultConcurrency (20).
	Concurrency int
	// InstanceConcurrency is the cap of logouts in flight against one server
	// across all workers, for instances without their own
	// (WAHAQ_INSTANCE_CONCURRENCY). Defaults to DefaultInstanceConcurrency
	// (4).
	InstanceConcurrency int
	// RetryBase and RetryMax bound the exponential backoff with jitter
	// between attempts (WAHAQ_RETRY_BASE, WAHAQ_RETRY_MAX). Default to
	// DefaultRetryBase (2s) and DefaultRetryMax (10m).
	RetryBase, RetryMax time.Duration
	// ResultTTL is how long completed results stay readable
	// (WAHAQ_RESULT_TTL). Defaults to tasks.DefaultResultTTL (24h).
	ResultTTL time.Duration
	// SlotWait is ignored: a task whose server's cap is full is handed back
	// to the queue at once (spending no retry) and its queue is gated until
	// a slot frees, instead of waiting on a worker slot.
	//
	// Deprecated: kept so that existing configurations compile.
	SlotWait time.Duration
	// SlotLease bounds how long a slot stays taken if its worker dies
	// holding it; a running call's slot is renewed every third of it.
	// Defaults to DefaultSlotLease (10s).
	SlotLease time.Duration
	// PollInterval is how often an idle worker looks for new tasks; asynq's
	// own default of 1s would add up to a second to every logout. With the
	// fast path on, a look at a queue with nothing announced is answered in
	// the process (queueview.go) and costs Redis nothing; with it off, each
	// look is asynq's dequeue, a script call per queue: about 100 a second
	// per queue of an idle worker, which a longer interval trades for pickup
	// latency. Defaults to DefaultPollInterval (10ms).
	PollInterval time.Duration
	// TakeBlock is the most tasks one take (worker/take.go) dequeues and
	// starts in one Redis call, never more than the queue's share of this
	// process's free handlers among its open queues; asynq asks for one
	// task at a time, and the rest of a block answer its next asks for the
	// queue without a round trip. 1 takes one task per ask, as asynq does
	// (WAHAQ_TAKE_BLOCK). Defaults to DefaultTakeBlock (4).
	TakeBlock int
	// FastPath is FastPathOn or FastPathOff (WAHAQ_FAST_PATH): whether the
	// worker replaces asynq's dequeue and done with its own scripts (the
	// take, the finish's settle, the gate view's answers; docs/architecture.md,
	// "The asynq boundary"). Off, asynq does its own work, at more Redis
	// round trips per task. It is off by itself, whatever this says, in a
	// binary built with an asynq whose internals wahaq does not know.
	// Defaults to the environment variable WAHAQ_FAST_PATH when it is set
	// (so that a whole test suite can run with the fast path off), else to
	// FastPathOn.
	FastPath string
	// DelayedInterval is how often scheduled and retrying tasks due now are
	// moved to the queue. Defaults to DefaultDelayedInterval (250ms).
	DelayedInterval time.Duration
	// ShutdownGrace is how long in-flight logouts may run after SIGTERM
	// before they are handed back to the queue (WAHAQ_SHUTDOWN_GRACE).
	// Defaults to DefaultShutdownGrace (30s).
	ShutdownGrace time.Duration
	// ReconcileInterval is how often this worker repairs records, claims,
	// batches and queues that disagree with asynq's queues
	// (WAHAQ_RECONCILE_INTERVAL); negative turns it off. Defaults to
	// reconcile.DefaultInterval (30s).
	ReconcileInterval time.Duration
	// Validation, when its URL is set, is the subscription/key check run
	// before each logout (WAHA_VALIDATION_URL, WAHA_VALIDATION_API_KEY).
	// Defaults to no check.
	Validation wahaclient.ValidatorConfig
	// CallbackSecret signs completion callbacks, Standard Webhooks style:
	// "whsec_" + base64 of 24 to 64 random bytes (WAHAQ_CALLBACK_SECRET).
	// Defaults to none: deliveries are retried, unsigned ones never sent.
	CallbackSecret string
	// CallbackAllow lists the destinations callbacks may connect to
	// (WAHAQ_CALLBACK_ALLOW; see callback.Allow for what each entry allows),
	// checked again on every connection after DNS. Defaults to none.
	CallbackAllow []string
	// CallbackRetryBase and CallbackRetryMax bound the backoff between
	// delivery attempts. Defaults to 5s and 1h.
	CallbackRetryBase, CallbackRetryMax time.Duration
	// CallbackRetryFor is how long a delivery is retried before it is given
	// up. Defaults to tasks.CallbackRetryFor (24h).
	CallbackRetryFor time.Duration
	// CallbackConcurrency is how many callback deliveries this process
	// posts at once, in a pool of their own beside the Concurrency handlers
	// that run logouts (WAHAQ_CALLBACK_CONCURRENCY). Defaults to
	// DefaultCallbackConcurrency (16).
	CallbackConcurrency int
	// Logger receives structured logs. Defaults to a disabled logger.
	Logger *zerolog.Logger
	// Registerer receives the worker's metrics. Defaults to none (the
	// metrics are kept but not registered).
	Registerer prometheus.Registerer
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
}

func (c Config) withDefaults() (Config, error) {
	if c.Redis == nil {
		return c, fmt.Errorf("worker: Config.Redis is required")
	}
	if len(c.Instances) == 0 {
		return c, fmt.Errorf("worker: at least one instance is required")
	}
	seen := map[string]bool{}
	for _, in := range c.Instances {
		if err := tasks.ValidateInstanceName(in.Name); err != nil {
			return c, fmt.Errorf("worker: %w", err)
		}
		if seen[in.Name] {
			return c, fmt.Errorf("worker: instance %q is configured twice", in.Name)
		}
		seen[in.Name] = true
		if in.BaseURL == "" {
			return c, fmt.Errorf("worker: instance %q has no base URL", in.Name)
		}
		if in.Concurrency < 0 || in.Rate < 0 || in.Timeout < 0 {
			return c, fmt.Errorf("worker: instance %q: concurrency, rate and timeout must not be negative", in.Name)
		}
	}
	if c.Namespace == "" {
		c.Namespace = tasks.DefaultNamespace
	}
	setDefault(&c.Concurrency, DefaultConcurrency)
	setDefault(&c.InstanceConcurrency, DefaultInstanceConcurrency)
	setDefault(&c.RetryBase, DefaultRetryBase)
	setDefault(&c.RetryMax, DefaultRetryMax)
	if c.RetryMax < c.RetryBase {
		return c, fmt.Errorf("worker: retry max %s is below retry base %s", c.RetryMax, c.RetryBase)
	}
	setDefault(&c.ResultTTL, tasks.DefaultResultTTL)
	setDefault(&c.SlotLease, DefaultSlotLease)
	setDefault(&c.PollInterval, DefaultPollInterval)
	setDefault(&c.TakeBlock, DefaultTakeBlock)
	if c.FastPath == "" {
		c.FastPath = os.Getenv("WAHAQ_FAST_PATH")
	}
	switch c.FastPath {
	case "":
		c.FastPath = FastPathOn
	case FastPathOn, FastPathOff:
	default:
		return c, fmt.Errorf("worker: fast path %q is not on or off", c.FastPath)
	}
	setDefault(&c.DelayedInterval, DefaultDelayedInterval)
	setDefault(&c.ShutdownGrace, DefaultShutdownGrace)
	if c.ReconcileInterval == 0 { // negative means off, so not setDefault
		c.ReconcileInterval = reconcile.DefaultInterval
	}
	c.callbackDefaults()
	if c.Logger == nil {
		l := zerolog.Nop()
		c.Logger = &l
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, nil
}

func setDefault[T int | time.Duration](v *T, d T) {
	if *v <= 0 {
		*v = d
	}
}
