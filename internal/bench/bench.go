// Package bench measures wahaq against bare asynq on a real Redis and an
// in-process fake WAHA: the scenarios of `wahaq bench`. Each scenario is a
// function that runs wahaq and its baseline in the same process, on the same
// Redis, one after the other, and returns both figures; report.go turns them
// into the table.
//
// Every scenario works in a namespace of its own (unique queue names for
// wahaq and for its baseline), so scenarios cannot disturb each other or the
// rest of the Redis, and deletes its keys when it ends.
package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wahaq/wahaq/internal/asynqcompat"
)

// Scenario names, for --only.
const (
	ScenarioEnqueue    = "enqueue"
	ScenarioThroughput = "throughput"
	ScenarioLatency    = "latency"
	ScenarioTeardown   = "teardown"
	ScenarioFootprint  = "footprint"
	ScenarioProcessing = "processing"
	ScenarioRedisCost  = "rediscost"
	ScenarioIsolation  = "isolation"
	ScenarioSkew       = "skew"
	ScenarioWaiting    = "waiting"
	ScenarioIdle       = "idle"
	ScenarioFleet      = "fleet"
	ScenarioCallbacks  = "callbacks"
)

// Scenarios lists every scenario in the order they run.
var Scenarios = []string{ScenarioEnqueue, ScenarioThroughput, ScenarioLatency, ScenarioTeardown, ScenarioFootprint,
	ScenarioProcessing, ScenarioRedisCost, ScenarioIsolation, ScenarioSkew, ScenarioWaiting, ScenarioIdle, ScenarioFleet, ScenarioCallbacks}

// Sizes are the scenarios' parameters.
type Sizes struct {
	// EnqueueN tasks are enqueued as one batch (wahaq) and one by one from
	// EnqueueGoroutines goroutines (bare asynq).
	EnqueueN, EnqueueGoroutines int
	// ThroughputN logouts are processed with Concurrency handlers.
	ThroughputN, Concurrency int
	// LatencySamples single logouts are timed on wahaq, LatencyBareSamples
	// on bare asynq (each costs up to 1.5 s there).
	LatencySamples, LatencyBareSamples int
	// TeardownN sessions, TeardownLatency per logout, TeardownCap per
	// server, TeardownWorkers worker instances.
	TeardownN, TeardownCap, TeardownWorkers int
	TeardownLatency                         time.Duration
	// FootprintN tasks are processed by a worker child process whose peak
	// RSS is read.
	FootprintN int
	// IsolationN sessions of a healthy server, IsolationLatency per
	// logout, are timed alone and beside a hung server.
	IsolationN       int
	IsolationLatency time.Duration
	// SkewSmall sessions on each of nine servers and 20× as many on a
	// tenth, SkewLatency per logout.
	SkewSmall   int
	SkewLatency time.Duration
	// WaitingWindow is how long the waiting-cost scenario counts Redis
	// work while a capped teardown waits.
	WaitingWindow time.Duration
	// IdleServers are the fleet sizes (WAHA servers, so queues) of the
	// idle scenario; a zero is skipped. IdleWindow is how long it counts
	// Redis commands at each, after a warm-up: longer than asynq's janitor
	// interval (8 s) and the worker's recheck of its queues (5 s, 20 s at
	// 1,000 servers), or the count misses them.
	IdleServers [3]int
	IdleWindow  time.Duration
	// FleetServers servers of FleetSessions sessions each, FleetLatency
	// per logout, one worker of FleetConcurrency handlers.
	FleetServers, FleetSessions, FleetConcurrency int
	FleetLatency                                  time.Duration
	// CallbacksN sessions (IsolationLatency per logout) are timed alone
	// and beside 40 hanging callback receivers.
	CallbacksN int
}

// FullSizes are the sizes.
func FullSizes() Sizes {
	return Sizes{
		EnqueueN: 50_000, EnqueueGoroutines: 16,
		ThroughputN: 20_000, Concurrency: 20,
		LatencySamples: 200, LatencyBareSamples: 20,
		TeardownN: 400, TeardownCap: 8, TeardownWorkers: 2, TeardownLatency: 250 * time.Millisecond,
		FootprintN: 50_000,
		IsolationN: 1000, IsolationLatency: 10 * time.Millisecond,
		SkewSmall: 20, SkewLatency: 50 * time.Millisecond,
		WaitingWindow: 20 * time.Second,
		IdleServers:   [3]int{1, 100, 1000}, IdleWindow: 30 * time.Second,
		FleetServers: 300, FleetSessions: 20, FleetConcurrency: 40, FleetLatency: 200 * time.Millisecond,
		CallbacksN: 400,
	}
}

// QuickSizes are a fifth of the work, for a first look.
func QuickSizes() Sizes {
	return Sizes{
		EnqueueN: 10_000, EnqueueGoroutines: 16,
		ThroughputN: 4_000, Concurrency: 20,
		LatencySamples: 100, LatencyBareSamples: 8,
		TeardownN: 80, TeardownCap: 8, TeardownWorkers: 2, TeardownLatency: 250 * time.Millisecond,
		FootprintN: 10_000,
		IsolationN: 200, IsolationLatency: 10 * time.Millisecond,
		SkewSmall: 5, SkewLatency: 50 * time.Millisecond,
		WaitingWindow: 6 * time.Second,
		IdleServers:   [3]int{1, 100, 1000}, IdleWindow: 10 * time.Second,
		FleetServers: 300, FleetSessions: 4, FleetConcurrency: 40, FleetLatency: 200 * time.Millisecond,
		CallbacksN: 200,
	}
}

// Options configures a run.
type Options struct {
	// Redis is the client to measure with. Required.
	Redis redis.UniversalClient
	// RedisURL is passed to worker child processes (footprint scenario).
	RedisURL string
	// Sizes; zero means FullSizes.
	Sizes Sizes
	// Only runs just these scenarios; empty runs all.
	Only []string
	// ChildArgs are the arguments that make os.Executable() run a worker
	// child (see ChildMain), e.g. ["bench", "--child"].
	ChildArgs []string
	// Progress receives one line per step; nil discards.
	Progress io.Writer
	// RunID names this run's namespaces (wbench-<RunID>-<scenario>), so
	// runs sharing a Redis do not touch each other. Default: random.
	RunID string
}

// env is what a scenario needs.
type env struct {
	rdb      redis.UniversalClient
	redisURL string
	sizes    Sizes
	run      string
	progress io.Writer
	child    []string
}

func (e *env) logf(format string, a ...any) {
	if e.progress != nil {
		fmt.Fprintf(e.progress, "bench: "+format+"\n", a...)
	}
}

// ns returns the namespace of one scenario. The bare baseline's queue is
// ns+"-bare"; cleanup deletes both.
func (e *env) ns(scenario string) string { return "wbench-" + e.run + "-" + scenario }

func newRunID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Run runs the scenarios and returns the report.
func Run(ctx context.Context, opts Options) (*Report, error) {
	if opts.Redis == nil {
		return nil, errors.New("bench: Options.Redis is required")
	}
	if opts.Sizes == (Sizes{}) {
		opts.Sizes = FullSizes()
	}
	for _, o := range opts.Only {
		if !slices.Contains(Scenarios, o) {
			return nil, fmt.Errorf("bench: unknown scenario %q (one of %s)", o, strings.Join(Scenarios, ", "))
		}
	}
	if opts.RunID == "" {
		opts.RunID = newRunID()
	}
	e := &env{rdb: opts.Redis, redisURL: opts.RedisURL, sizes: opts.Sizes, run: opts.RunID, progress: opts.Progress, child: opts.ChildArgs}
	rep := &Report{Cores: runtime.NumCPU(), GoVersion: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH,
		Sizes: opts.Sizes, Started: time.Now().UTC()}
	if info, err := e.rdb.Info(ctx, "server").Result(); err == nil {
		rep.RedisVersion = infoField(info, "redis_version")
	}
	defer func() {
		// Whatever happened, leave no key behind.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = cleanup(cctx, e.rdb, "wbench-"+e.run+"-")
	}()
	want := func(s string) bool { return len(opts.Only) == 0 || slices.Contains(opts.Only, s) }
	start := time.Now()
	for _, s := range Scenarios {
		if !want(s) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		e.logf("%s: start", s)
		t0 := time.Now()
		var err error
		switch s {
		case ScenarioEnqueue:
			var f EnqueueFigures
			if f, err = BulkEnqueue(ctx, e); err == nil {
				rep.Enqueue = &f
			}
		case ScenarioThroughput:
			var f ThroughputFigures
			if f, err = Throughput(ctx, e); err == nil {
				rep.Throughput = &f
			}
		case ScenarioLatency:
			var f LatencyFigures
			if f, err = Latency(ctx, e); err == nil {
				rep.Latency = &f
			}
		case ScenarioTeardown:
			var f TeardownFigures
			if f, err = Teardown(ctx, e); err == nil {
				rep.Teardown = &f
			}
		case ScenarioFootprint:
			var f FootprintFigures
			if f, err = Footprint(ctx, e); err == nil {
				rep.Footprint = &f
			}
		case ScenarioProcessing:
			var f ProcessingFigures
			if f, err = Processing(ctx, e); err == nil {
				rep.Processing = &f
			}
		case ScenarioRedisCost:
			var f RedisCostFigures
			if f, err = RedisCost(ctx, e); err == nil {
				rep.RedisCost = &f
			}
		case ScenarioIsolation:
			var f IsolationFigures
			if f, err = Isolation(ctx, e); err == nil {
				rep.Isolation = &f
			}
		case ScenarioSkew:
			var f SkewFigures
			if f, err = Skew(ctx, e); err == nil {
				rep.Skew = &f
			}
		case ScenarioWaiting:
			var f WaitingFigures
			if f, err = Waiting(ctx, e); err == nil {
				rep.Waiting = &f
			}
		case ScenarioIdle:
			var f IdleFigures
			if f, err = Idle(ctx, e); err == nil {
				rep.Idle = &f
			}
		case ScenarioFleet:
			var f FleetFigures
			if f, err = Fleet(ctx, e); err == nil {
				rep.Fleet = &f
			}
		case ScenarioCallbacks:
			var f CallbacksFigures
			if f, err = Callbacks(ctx, e); err == nil {
				rep.Callbacks = &f
			}
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		cerr := cleanup(cctx, e.rdb, e.ns(s))
		cancel()
		if err != nil {
			return nil, fmt.Errorf("bench %s: %w", s, err)
		}
		if cerr != nil {
			return nil, fmt.Errorf("bench %s: cleanup: %w", s, cerr)
		}
		e.logf("%s: done in %s", s, time.Since(t0).Round(10*time.Millisecond))
	}
	rep.Elapsed = time.Since(start)
	return rep, nil
}

func infoField(info, name string) string {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	return ""
}

// cleanup deletes every key whose name holds prefix (wahaq's and asynq's keys
// of the namespace and of its bare queue) and unregisters the queues.
func cleanup(ctx context.Context, rdb redis.UniversalClient, prefix string) error {
	var keys []string
	iter := rdb.Scan(ctx, 0, "*"+prefix+"*", 2000).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
		if len(keys) == 1000 {
			if err := rdb.Unlink(ctx, keys...).Err(); err != nil {
				return err
			}
			keys = keys[:0]
		}
	}
	if err := iter.Err(); err != nil {
		return err
	}
	if len(keys) > 0 {
		if err := rdb.Unlink(ctx, keys...).Err(); err != nil {
			return err
		}
	}
	members, err := rdb.SMembers(ctx, asynqcompat.AllQueues).Result()
	if err != nil {
		return err
	}
	for _, m := range members {
		if strings.HasPrefix(m, prefix) {
			rdb.SRem(ctx, asynqcompat.AllQueues, m)
		}
	}
	return nil
}
