// Package demo is the scenario behind `wahaq demo`: all of wahaq in one
// process, with an embedded in-memory Redis (miniredis) and in-process fake
// WAHA servers scripted so that every outcome shows. cmd/wahaq only parses
// the flags and calls Run.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"github.com/wahaq/wahaq/tasks"
	"github.com/wahaq/wahaq/wahaclient/wahafake"
	"github.com/wahaq/wahaq/worker"
)

// Warning is the first thing the demo says.
const Warning = "DEMO MODE: Redis is in memory and WAHA is a fake; nothing is durable and nothing real is logged out."

// Limits and defaults of the command's flags.
const (
	// MinSessions is the fewest sessions a run accepts.
	MinSessions = 10
	// MaxSessions is the most sessions a run accepts.
	MaxSessions = 5000
	// DefaultSessions is the --sessions default.
	DefaultSessions = 36
	// DefaultLatency is the --latency default.
	DefaultLatency = 150 * time.Millisecond
	// MaxRetries is the demo's retry budget: small so that every outcome
	// shows within seconds (production defaults are 10 retries between 2s
	// and 10m).
	MaxRetries = 2
)

// The demo's fixed set-up.
const (
	retryBase    = 100 * time.Millisecond
	retryMax     = time.Second // Retry-After is honoured up to RetryMax: 1s lets the fake's "Retry-After: 1" through whole
	concurrency  = 8
	instanceCap  = 4
	scheduleIn   = 2 * time.Second
	timeout      = 2 * time.Minute
	poll         = 100 * time.Millisecond
	fakeKey      = "demo-key"
	messageWidth = 72
)

// Options configure one run of the demo. The command line checks the ranges
// (MinSessions..MaxSessions, latency 0..10s) before calling Run.
type Options struct {
	// Sessions is the number of WORKING sessions on the fake WAHA server
	// named default. Defaults to DefaultSessions (in the command's flag).
	Sessions int
	// Latency is how long the fake WAHA takes to log out a running session
	// (a real one: about 3s). Defaults to DefaultLatency (in the command's flag).
	Latency time.Duration
	// JSON prints the final tasks as a JSON array (the task model of the HTTP
	// API) instead of a table; the rest goes to stderr. Defaults to false.
	JSON bool
	// Verbose shows the worker's logs on stderr. Defaults to false.
	Verbose bool
}

// instance is one fake WAHA server and how the worker talks to it.
type instance struct {
	name string
	fake *wahafake.Server
	key  string // the key the worker sends
}

// task is one task the demo enqueued.
type task struct {
	id   string
	inst string
	how  string // "batch 1", "single", "in 2s"
	task *tasks.Task
}

// run holds one run of the demo.
type run struct {
	opts      Options
	info      io.Writer // the warning, the plan and the live summary
	out       io.Writer // the final table or JSON
	insts     []*instance
	byName    map[string]*instance
	producer  *tasks.Producer
	inspector *tasks.Inspector
	batches   []string
	tasks     []*task
}

// Run runs the demo once: it starts an in-memory Redis, the fake WAHA
// servers, a producer and a worker, enqueues the scenario, shows a live
// summary on stdout (stderr with JSON) and prints the final tasks. It returns
// ErrTimeout, after the report, if the tasks did not all finish in time.
func Run(ctx context.Context, o Options, stdout, stderr io.Writer) (err error) {
	d := &run{opts: o, info: stdout, out: stdout, byName: map[string]*instance{}}
	if o.JSON {
		// stdout carries only the JSON array.
		d.info = stderr
	}
	fmt.Fprintln(d.info, Warning)
	fmt.Fprintln(d.info)

	// The embedded Redis. ClockTTL makes keys expire with the wall clock, as
	// on a real Redis (miniredis otherwise expires only on FastForward).
	mr, err := miniredis.Run()
	if err != nil {
		return fmt.Errorf("demo: start the in-memory Redis: %w", err)
	}
	defer mr.Close()
	mr.ClockTTL(true)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer func() { _ = rdb.Close() }()

	if err := d.startFakes(); err != nil {
		return err
	}
	defer func() {
		for _, in := range d.insts {
			_ = in.fake.Close()
		}
	}()
	d.printPlan()

	names := make([]string, len(d.insts))
	winsts := make([]worker.Instance, len(d.insts))
	for i, in := range d.insts {
		names[i] = in.name
		winsts[i] = worker.Instance{Name: in.name, BaseURL: in.fake.URL(), APIKey: in.key}
	}
	tcfg := tasks.Config{Redis: rdb, Instances: names, MaxRetries: MaxRetries, ResultTTL: time.Hour}
	if d.producer, err = tasks.NewProducer(tcfg); err != nil {
		return err
	}
	if d.inspector, err = tasks.NewInspector(tcfg); err != nil {
		return err
	}

	// Everything is enqueued before the worker starts, so the live summary
	// starts from zero and the demo knows every task id (a batch answers only
	// its id and size; the ids come from asynq's pending and scheduled lists).
	if err := d.enqueue(ctx); err != nil {
		return err
	}
	if err := d.collectIDs(rdb); err != nil {
		return err
	}

	log := zerolog.Nop()
	if o.Verbose {
		log = zerolog.New(zerolog.ConsoleWriter{Out: stderr, TimeFormat: "15:04:05"}).With().Timestamp().Logger()
	}
	w, err := worker.New(worker.Config{
		Redis: rdb, Instances: winsts,
		Concurrency: concurrency, InstanceConcurrency: instanceCap,
		RetryBase: retryBase, RetryMax: retryMax, ResultTTL: time.Hour,
		ShutdownGrace: 5 * time.Second, Logger: &log,
	})
	if err != nil {
		return err
	}
	if err := w.Start(); err != nil {
		return err
	}
	fmt.Fprintf(d.info, "Worker started: %d tasks at once, at most %d logouts in flight per WAHA server.\n\n", concurrency, instanceCap)

	waitErr := d.wait(ctx)
	w.Shutdown()
	if waitErr != nil && !errors.Is(waitErr, ErrTimeout) {
		return waitErr
	}
	if err := d.refresh(context.WithoutCancel(ctx)); err != nil {
		return err
	}
	if err := d.report(context.WithoutCancel(ctx)); err != nil {
		return err
	}
	return waitErr
}

// ErrTimeout is returned by Run when the tasks did not all finish in time.
var ErrTimeout = errors.New("demo: the tasks did not all finish in time")

func sessionName(i int) string { return fmt.Sprintf("session-%04d", i) }
