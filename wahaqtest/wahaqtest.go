// Package wahaqtest runs wahaq end to end inside a Go test, the way River's
// rivertest does for River: a real Redis (package internal/redistest finds or
// starts one), a fake WAHA server on loopback (wahaclient/wahafake), a
// Producer and an Inspector, and a running Worker with fast retries, all in a
// namespace of their own so parallel tests never see each other's tasks.
//
//	func TestLogout(t *testing.T) {
//		t.Parallel()
//		env := wahaqtest.Start(t, wahaqtest.Options{Fake: wahafake.Options{Sessions: 1}})
//		task, err := env.Producer.Enqueue(ctx, tasks.LogoutRequest{Session: "session-0001"})
//		require.NoError(t, err)
//		done := env.WaitTask(t, task.ID, 10*time.Second)
//		require.Equal(t, tasks.OutcomeLoggedOut, *done.Outcome)
//	}
//
// Everything Start creates is stopped and deleted when the test ends.
package wahaqtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wahaq/wahaq/internal/redistest"
	"github.com/wahaq/wahaq/tasks"
	"github.com/wahaq/wahaq/wahaclient"
	"github.com/wahaq/wahaq/wahaclient/wahafake"
	"github.com/wahaq/wahaq/worker"
)

// Defaults of the worker that Start builds. They make retries and polling
// fast so a test waits milliseconds where production waits seconds.
const (
	// DefaultRetryBase is the worker's RetryBase unless Options.Worker
	// changes it.
	DefaultRetryBase = 10 * time.Millisecond
	// DefaultRetryMax is the worker's RetryMax unless Options.Worker changes
	// it. Raise it in a test that expects a longer Retry-After to be honoured:
	// the worker caps a server's Retry-After at RetryMax.
	DefaultRetryMax = 50 * time.Millisecond
	// DefaultPollInterval is how often an idle worker looks for tasks.
	DefaultPollInterval = 5 * time.Millisecond
	// DefaultDelayedInterval is how often due scheduled and retrying tasks
	// are moved to the queue.
	DefaultDelayedInterval = 20 * time.Millisecond
	// DefaultShutdownGrace bounds how long the cleanup waits for in-flight
	// logouts.
	DefaultShutdownGrace = 5 * time.Second
)

// Options configures Start. The zero value is a WAHA Plus-like fake that
// accepts any key and has only the STOPPED session "default", one instance
// named "default", and a started worker.
type Options struct {
	// Fake configures the fake WAHA server. The key it requires (its
	// APIKey, or on the current line the one it generated: Server.APIKey)
	// is also the key the worker sends, unless Worker changes
	// Instances[0].APIKey.
	Fake wahafake.Options
	// Instance is the name of the WAHA server the fake plays. Default
	// "default".
	Instance string
	// Tasks, when set, adjusts the configuration of Producer and Inspector
	// (MaxRetries, ResultTTL, ...) after Start has filled in Redis,
	// Namespace, Instances and WAHA (the fake, for Producer.Preview).
	Tasks func(*tasks.Config)
	// Worker, when set, adjusts the worker's configuration (API key,
	// concurrency, retry bounds, logger, validation, ...) after Start has
	// filled in its defaults.
	Worker func(*worker.Config)
	// NoStart leaves Env.Worker built but not started; start it with
	// Env.Worker.Start (Shutdown is registered in t.Cleanup either way).
	NoStart bool
}

// Env is one running wahaq: everything a test needs to enqueue logouts,
// watch them run against a fake WAHA and assert on the outcome.
type Env struct {
	// Redis is the client every part of the environment shares.
	Redis *redis.Client
	// Namespace is the environment's own namespace (queue names are
	// Namespace + ":" + instance); its keys are deleted when the test ends.
	Namespace string
	// Instance is the name of the WAHA server the fake plays.
	Instance string
	// Fake is the fake WAHA server the worker talks to.
	Fake *wahafake.Server
	// Producer enqueues logouts in the environment's namespace.
	Producer *tasks.Producer
	// Inspector reads tasks, batches and dead letters.
	Inspector *tasks.Inspector
	// Worker runs the logouts; it is started unless Options.NoStart.
	Worker *worker.Worker
	// TasksConfig is the configuration Producer and Inspector were built
	// from.
	TasksConfig tasks.Config
	// WorkerConfig is the configuration Worker was built from; StartWorker
	// builds more workers from it.
	WorkerConfig worker.Config
}

// Start builds and starts an environment and registers its teardown in
// t.Cleanup: the worker is shut down first, then the inspector's long-poll
// subscriptions end, the fake is closed and the namespace's keys are deleted. It fails the test if anything cannot start.
func Start(t testing.TB, opts Options) *Env {
	t.Helper()
	if opts.Instance == "" {
		opts.Instance = "default"
	}
	rdb := redistest.Client(t)
	ns := redistest.Namespace(t)
	fake := wahafake.NewT(t, opts.Fake)

	tcfg := tasks.Config{Redis: rdb, Namespace: ns, Instances: []string{opts.Instance}}
	// the Producer previews batches (Producer.Preview) from the fake
	if lister, err := wahaclient.New(wahaclient.Config{BaseURL: fake.URL(), APIKey: opts.Fake.APIKey}); err == nil {
		tcfg.WAHA = map[string]tasks.SessionLister{opts.Instance: lister}
	}
	if opts.Tasks != nil {
		opts.Tasks(&tcfg)
	}
	prod, err := tasks.NewProducer(tcfg)
	if err != nil {
		t.Fatalf("wahaqtest: producer: %v", err)
	}
	insp, err := tasks.NewInspector(tcfg)
	if err != nil {
		t.Fatalf("wahaqtest: inspector: %v", err)
	}
	// A long-poll (WaitTask, WaitBatch) leaves a subscription open.
	t.Cleanup(func() { _ = insp.Close() })

	wcfg := worker.Config{
		Redis:     rdb,
		Namespace: ns,
		Instances: []worker.Instance{{
			Name: opts.Instance, BaseURL: fake.URL(), APIKey: fake.APIKey(),
		}},
		RetryBase:       DefaultRetryBase,
		RetryMax:        DefaultRetryMax,
		PollInterval:    DefaultPollInterval,
		DelayedInterval: DefaultDelayedInterval,
		ShutdownGrace:   DefaultShutdownGrace,
	}
	if opts.Worker != nil {
		opts.Worker(&wcfg)
	}
	env := &Env{Redis: rdb, Namespace: ns, Instance: opts.Instance, Fake: fake, Producer: prod, Inspector: insp,
		TasksConfig: tcfg, WorkerConfig: wcfg}
	env.Worker = env.newWorker(t, wcfg, !opts.NoStart)
	return env
}

// StartWorker starts one more worker on the environment's Redis and
// namespace, from Env.WorkerConfig adjusted by adjust (which may be nil), as
// a second process of the same fleet would be. It is shut down when the test
// ends.
func (e *Env) StartWorker(t testing.TB, adjust func(*worker.Config)) *worker.Worker {
	t.Helper()
	cfg := e.WorkerConfig
	cfg.Instances = append([]worker.Instance(nil), cfg.Instances...)
	if adjust != nil {
		adjust(&cfg)
	}
	return e.newWorker(t, cfg, true)
}

func (e *Env) newWorker(t testing.TB, cfg worker.Config, start bool) *worker.Worker {
	t.Helper()
	w, err := worker.New(cfg)
	if err != nil {
		t.Fatalf("wahaqtest: worker: %v", err)
	}
	// Shutdown does nothing on a worker that was never started, so it is
	// safe to register before Start and covers a later manual Start too.
	t.Cleanup(w.Shutdown)
	if start {
		if err := w.Start(); err != nil {
			t.Fatalf("wahaqtest: start worker: %v", err)
		}
	}
	return w
}

// pollEvery is how often the Wait helpers read Redis.
const pollEvery = 10 * time.Millisecond

// WaitTask polls the task through Env.Inspector until it is in a final state
// (completed, dead or canceled) and returns it. On timeout it fails the test
// and shows the last state it saw.
func (e *Env) WaitTask(t testing.TB, id string, timeout time.Duration) *tasks.Task {
	t.Helper()
	return e.WaitTaskFunc(t, id, timeout, "a final state", func(task *tasks.Task) bool { return task.State.Final() })
}

// WaitTaskFunc polls the task until cond holds and returns it; what names the
// condition in the failure message. On timeout it fails the test and shows
// the last state it saw. A task that does not exist yet is waited for.
func (e *Env) WaitTaskFunc(t testing.TB, id string, timeout time.Duration, what string, cond func(*tasks.Task) bool) *tasks.Task {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(timeout)
	var last *tasks.Task
	var lastErr error
	for {
		task, err := e.Inspector.Task(ctx, id)
		switch {
		case err == nil:
			last, lastErr = task, nil
			if cond(task) {
				return task
			}
		case errors.Is(err, tasks.ErrNotFound):
			lastErr = err
		default:
			t.Fatalf("wahaqtest: reading task %s: %v", id, err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("wahaqtest: task %s did not reach %s within %s; last seen: %s (last error: %v)",
				id, what, timeout, show(last), lastErr)
			return nil
		}
		time.Sleep(pollEvery)
	}
}

// WaitBatch polls the batch through Env.Inspector until it is done (every
// task final and, for a discovery batch, the sessions listed) and returns
// it. On timeout it fails the test and shows the last counts it saw.
func (e *Env) WaitBatch(t testing.TB, id string, timeout time.Duration) *tasks.Batch {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(timeout)
	var last *tasks.Batch
	for {
		b, err := e.Inspector.Batch(ctx, id)
		switch {
		case err == nil:
			last = b
			if b.Done {
				return b
			}
		case errors.Is(err, tasks.ErrNotFound):
		default:
			t.Fatalf("wahaqtest: reading batch %s: %v", id, err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("wahaqtest: batch %s was not done within %s; last seen: %s", id, timeout, show(last))
			return nil
		}
		time.Sleep(pollEvery)
	}
}

func show(v any) string {
	if v == nil {
		return "nothing"
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// LogBuffer is an io.Writer safe for concurrent writers, such as a zerolog
// logger shared by a worker's goroutines, whose contents a test can read at
// any time. Use it to assert on logs, e.g. that a secret never appears.
type LogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns everything written so far.
func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
