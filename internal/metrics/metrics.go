// Package metrics defines wahaq's Prometheus metrics. The names are part of
// the product: deploy/prometheus/alerts.yml and the Grafana dashboard use
// them.
package metrics

import (
	"context"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Metrics are the worker's counters and histograms.
type Metrics struct {
	// Tasks counts finished tasks by instance and outcome.
	Tasks *prometheus.CounterVec
	// Responses counts WAHA answers by instance and HTTP status code
	// ("error" when no answer came).
	Responses *prometheus.CounterVec
	// LogoutDuration observes the time of each logout call to WAHA.
	LogoutDuration *prometheus.HistogramVec
	// Retries counts attempts that failed transiently and will run again.
	Retries *prometheus.CounterVec
	// LimiterWaits counts times a task waited for its server's concurrency
	// cap or rate, by reason.
	LimiterWaits *prometheus.CounterVec
	// Enqueued counts tasks created by this process.
	Enqueued *prometheus.CounterVec
	// CircuitState is each server's circuit breaker in this process: 0
	// closed, 1 half-open, 2 open.
	CircuitState *prometheus.GaugeVec
	// Reconciled counts the reconciler's repairs by instance and kind.
	Reconciled *prometheus.CounterVec
	// Events counts WAHA's webhook events served by POST
	// /v1/waha/{instance}/events, by instance ("" for one that takes no
	// events) and result.
	Events *prometheus.CounterVec
	// AuthRefused counts wrong bearer tokens at serve (surface "api" or
	// "console", reason "invalid") and requests refused by the limit on
	// them (reason "limited"): see api.AttemptLimiter.
	AuthRefused *prometheus.CounterVec
	// FastPath is 1 while the worker's fast path (its own replacements of
	// asynq's dequeue and done) runs, else 0, with the reason: "on",
	// "switch" (turned off by the operator), "asynq_version" or
	// "asynq_script" (an asynq the fast path does not know). One reason
	// has a value at a time.
	FastPath *prometheus.GaugeVec
	// Callbacks counts the steps of callback deliveries by instance and
	// result: "delivered"; "retry", an attempt that failed and runs again;
	// "failed", a delivery given up (refused for good, or retried past the
	// worker's CallbackRetryFor); "deferred", one not attempted yet because
	// its receiver's breaker is open or its slots are busy, or the worker
	// is stopping.
	Callbacks *prometheus.CounterVec
}

// Results of a callback delivery step (Metrics.Callbacks).
const (
	CallbackDelivered = "delivered"
	CallbackRetry     = "retry"
	CallbackFailed    = "failed"
	CallbackDeferred  = "deferred"
)

// New registers wahaq's metrics on reg (a new registry when nil).
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Tasks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wahaq_tasks_total", Help: "Finished logout tasks by instance and outcome.",
		}, []string{"instance", "outcome"}),
		Responses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wahaq_waha_responses_total", Help: "WAHA answers to logouts by instance and HTTP status code (\"error\" when none came).",
		}, []string{"instance", "code"}),
		LogoutDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "wahaq_logout_duration_seconds", Help: "Duration of logout calls to WAHA.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"instance"}),
		Retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wahaq_retries_total", Help: "Attempts that failed transiently and were scheduled again.",
		}, []string{"instance"}),
		LimiterWaits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wahaq_limiter_waits_total", Help: "Times a task waited for its server's concurrency cap or rate.",
		}, []string{"instance", "reason"}),
		AuthRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wahaq_auth_refused_total", Help: "Wrong bearer tokens (reason invalid) and requests refused by the per-address limit on them (reason limited), by surface (api, console).",
		}, []string{"surface", "reason"}),
		Enqueued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wahaq_enqueued_total", Help: "Logout tasks created by this process.",
		}, []string{"instance"}),
		CircuitState: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "wahaq_circuit_state", Help: "Circuit breaker of each WAHA server in this worker: 0 closed, 1 half-open, 2 open (its tasks are handed back without calling it).",
		}, []string{"instance"}),
		Reconciled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wahaq_reconciled_total", Help: "Records, claims, batches and queues the reconciler repaired because they disagreed with asynq's queues, by kind.",
		}, []string{"instance", "kind"}),
		Events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wahaq_waha_events_total", Help: "WAHA webhook events received, by instance and result (recorded, confirmed, duplicate, unmatched, ignored, refused, limited).",
		}, []string{"instance", "result"}),
		FastPath: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "wahaq_fast_path_enabled", Help: "1 while the worker's fast path (its own replacements of asynq's dequeue and done) runs, 0 when it is off, by reason: on, switch (WAHAQ_FAST_PATH=off), asynq_version or asynq_script (an asynq build the fast path does not know).",
		}, []string{"reason"}),
		Callbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wahaq_callback_deliveries_total", Help: "Steps of callback deliveries by instance and result: delivered, retry (an attempt failed and runs again), failed (given up for good), deferred (not attempted yet: the receiver's breaker is open or its slots busy, or the worker is stopping).",
		}, []string{"instance", "result"}),
	}
	if reg != nil {
		reg.MustRegister(m.Tasks, m.Responses, m.LogoutDuration, m.Retries, m.LimiterWaits, m.Enqueued, m.CircuitState, m.Reconciled, m.Events, m.AuthRefused, m.FastPath, m.Callbacks)
	}
	return m
}

// QueueCounter counts what wahaq keeps beside asynq's queue of an
// instance: its dead letters and its callback deliveries not yet delivered
// or failed. *store.Store is one.
type QueueCounter interface {
	CountDeadLetters(ctx context.Context, instance string) (int64, error)
	PendingDeliveries(ctx context.Context, instance string) (int64, error)
}

// QueueCollector reports queue depth per state, dead letters, the callback
// backlog and the age of the oldest pending task, read from Redis at scrape
// time.
type QueueCollector struct {
	insp      *asynq.Inspector
	counts    QueueCounter
	queues    map[string]string // instance -> queue
	log       zerolog.Logger
	depth     *prometheus.Desc
	deadDesc  *prometheus.Desc
	oldest    *prometheus.Desc
	backlog   *prometheus.Desc
	scrapeErr *prometheus.Desc
}

// NewQueueCollector returns a collector over the given instance→queue map.
func NewQueueCollector(insp *asynq.Inspector, counts QueueCounter, queues map[string]string, log zerolog.Logger) *QueueCollector {
	return &QueueCollector{
		insp: insp, counts: counts, queues: queues, log: log,
		depth:     prometheus.NewDesc("wahaq_queue_tasks", "Tasks in the queue by state.", []string{"instance", "state"}, nil),
		deadDesc:  prometheus.NewDesc("wahaq_dead_letters", "Tasks in the dead-letter queue.", []string{"instance"}, nil),
		oldest:    prometheus.NewDesc("wahaq_oldest_pending_seconds", "Age of the oldest pending task.", []string{"instance"}, nil),
		backlog:   prometheus.NewDesc("wahaq_callback_backlog", "Callback deliveries of the instance's queue not yet delivered or failed (due, in flight or waiting for a retry).", []string{"instance"}, nil),
		scrapeErr: prometheus.NewDesc("wahaq_queue_scrape_errors", "1 when reading the queue from Redis failed at this scrape.", []string{"instance"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *QueueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.depth
	ch <- c.deadDesc
	ch <- c.oldest
	ch <- c.backlog
	ch <- c.scrapeErr
}

// Collect implements prometheus.Collector.
func (c *QueueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for inst, q := range c.queues {
		failed := 0.0
		info, err := c.insp.GetQueueInfo(q)
		if err == nil {
			for state, n := range map[string]int{"pending": info.Pending, "active": info.Active, "scheduled": info.Scheduled,
				"retry": info.Retry, "archived": info.Archived} {
				ch <- prometheus.MustNewConstMetric(c.depth, prometheus.GaugeValue, float64(n), inst, state)
			}
			ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, info.Latency.Seconds(), inst)
		} else {
			// A queue nobody has written to yet does not exist for asynq.
			ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, 0, inst)
		}
		if n, err := c.counts.CountDeadLetters(ctx, inst); err == nil {
			ch <- prometheus.MustNewConstMetric(c.deadDesc, prometheus.GaugeValue, float64(n), inst)
		} else {
			failed = 1
			c.log.Warn().Err(err).Str("instance", inst).Msg("metrics: cannot count dead letters")
		}
		if n, err := c.counts.PendingDeliveries(ctx, inst); err == nil {
			ch <- prometheus.MustNewConstMetric(c.backlog, prometheus.GaugeValue, float64(n), inst)
		} else {
			failed = 1
			c.log.Warn().Err(err).Str("instance", inst).Msg("metrics: cannot count callback deliveries")
		}
		ch <- prometheus.MustNewConstMetric(c.scrapeErr, prometheus.GaugeValue, failed, inst)
	}
}

// ConfirmCount is one instance's logouts confirmed by WAHA's events, and
// those whose wait for one ended without it.
type ConfirmCount struct {
	Confirmed, Unconfirmed int64
}

// ConfirmCollector exports the confirmation counters kept in Redis
// (internal/store/events.go) at scrape time, as
// wahaq_logouts_confirmed_total and wahaq_logouts_unconfirmed_total.
type ConfirmCollector struct {
	read        func(ctx context.Context) (map[string]ConfirmCount, error)
	log         zerolog.Logger
	confirmed   *prometheus.Desc
	unconfirmed *prometheus.Desc
}

// NewConfirmCollector returns a collector over read, which returns the
// counters of every instance whose events are received.
func NewConfirmCollector(read func(ctx context.Context) (map[string]ConfirmCount, error), log zerolog.Logger) *ConfirmCollector {
	return &ConfirmCollector{read: read, log: log,
		confirmed: prometheus.NewDesc("wahaq_logouts_confirmed_total",
			"Completed logouts that a session.status event from WAHA confirmed (SCAN_QR_CODE or STOPPED).", []string{"instance"}, nil),
		unconfirmed: prometheus.NewDesc("wahaq_logouts_unconfirmed_total",
			"Completed logouts of running sessions with no confirming event from WAHA within 10 minutes.", []string{"instance"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *ConfirmCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.confirmed
	ch <- c.unconfirmed
}

// Collect implements prometheus.Collector.
func (c *ConfirmCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	counts, err := c.read(ctx)
	if err != nil {
		c.log.Warn().Err(err).Msg("metrics: cannot read the confirmation counters")
		return
	}
	for inst, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.confirmed, prometheus.CounterValue, float64(n.Confirmed), inst)
		ch <- prometheus.MustNewConstMetric(c.unconfirmed, prometheus.CounterValue, float64(n.Unconfirmed), inst)
	}
}
