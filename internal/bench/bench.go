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
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/wahaq/wahaq/internal/asynqwire"
	"github.com/wahaq/wahaq/internal/base"
	"github.com/wahaq/wahaq/internal/config"
	"github.com/wahaq/wahaq/tasks"
	"github.com/wahaq/wahaq/wahaclient"
	"github.com/wahaq/wahaq/wahaclient/wahafake"
	"github.com/wahaq/wahaq/worker"
)

// Scenario names, for --only.
const (
	ScenarioEnqueue    = "enqueue"
	ScenarioThroughput = "throughput"
	ScenarioLatency    = "latency"
	ScenarioTeardown   = "teardown"
	ScenarioFootprint  = "footprint"
)

// Scenarios lists every scenario in the order they run.
var Scenarios = []string{ScenarioEnqueue, ScenarioThroughput, ScenarioLatency, ScenarioTeardown, ScenarioFootprint}

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
}

// FullSizes are the sizes.
func FullSizes() Sizes {
	return Sizes{
		EnqueueN: 50_000, EnqueueGoroutines: 16,
		ThroughputN: 20_000, Concurrency: 20,
		LatencySamples: 200, LatencyBareSamples: 20,
		TeardownN: 400, TeardownCap: 8, TeardownWorkers: 2, TeardownLatency: 250 * time.Millisecond,
		FootprintN: 50_000,
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
	members, err := rdb.SMembers(ctx, asynqwire.AllQueues).Result()
	if err != nil {
		return err
	}
	for _, m := range members {
		if strings.HasPrefix(m, prefix) {
			rdb.SRem(ctx, asynqwire.AllQueues, m)
		}
	}
	return nil
}

// ---- helpers shared by the scenarios ----

func sessionNames(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = prefix + "-" + strconv.Itoa(i+1)
	}
	return out
}

func producer(rdb redis.UniversalClient, ns string) (*tasks.Producer, error) {
	return tasks.NewProducer(tasks.Config{Redis: rdb, Namespace: ns})
}

// inspector reads back what producer(rdb, ns) enqueued.
func inspector(rdb redis.UniversalClient, ns string) *tasks.Inspector {
	insp, err := tasks.NewInspector(tasks.Config{Redis: rdb, Namespace: ns})
	if err != nil {
		panic(err) // only a nil client fails, and rdb is not nil
	}
	return insp
}

// bareQueue is the queue of a scenario's bare-asynq baseline.
func bareQueue(ns string) string { return ns + "-bare" }

func barePayload(session string) []byte {
	return base.Payload{Instance: "default", Session: session, MaxRetries: 10}.Encode()
}

// bareEnqueue enqueues one bare asynq task per session from g goroutines,
// one Client.Enqueue (one round trip) each, and returns how long it took.
func bareEnqueue(ctx context.Context, c *asynq.Client, q string, sessions []string, g int, opts ...asynq.Option) (time.Duration, error) {
	opts = append([]asynq.Option{asynq.Queue(q)}, opts...)
	var next atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for range g {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(sessions) {
					return
				}
				if _, err := c.EnqueueContext(ctx, asynq.NewTask(tasks.TypeLogout, barePayload(sessions[i])), opts...); err != nil {
					once.Do(func() { firstErr = err })
					next.Store(int64(len(sessions)))
					return
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(start), firstErr
}

// quietAsynq keeps asynq's own start/stop chatter off the terminal; it does
// not change how asynq works.
var quietAsynq = asynq.WarnLevel

// bareServer is a bare asynq server: default config, except concurrency and
// the queue (asynq's default queue would be shared with other users).
func bareServer(rdb redis.UniversalClient, q string, concurrency int) *asynq.Server {
	return asynq.NewServerFromRedisClient(rdb, asynq.Config{Concurrency: concurrency, Queues: map[string]int{q: 1}, LogLevel: quietAsynq})
}

// bareHandler makes the same HTTP call as wahaq's worker: decode the payload,
// log the session out. With writeResult it also stores the n8n-shaped result
// with asynq's ResultWriter (for tasks enqueued with asynq.Retention).
func bareHandler(client *wahaclient.Client, writeResult bool, done func()) asynq.HandlerFunc {
	return func(ctx context.Context, t *asynq.Task) error {
		p, err := base.DecodePayload(t.Payload())
		if err != nil {
			return fmt.Errorf("%v: %w", err, asynq.SkipRetry)
		}
		res, err := client.Logout(ctx, p.Session)
		if err != nil {
			return err
		}
		if writeResult {
			r := tasks.Result{Status: "success", Message: "Session logged out successfully", HTTPStatus: res.HTTPStatus}
			if res.Session != nil {
				r.SessionAfter, _ = json.Marshal(struct {
					Name   string         `json:"name"`
					Status string         `json:"status"`
					Me     *wahaclient.Me `json:"me"`
				}{res.Session.Name, res.Session.Status, res.Session.Me})
			}
			b, _ := json.Marshal(r)
			if _, err := t.ResultWriter().Write(b); err != nil {
				return err
			}
		}
		if done != nil {
			done()
		}
		return nil
	}
}

func newWorker(rdb redis.UniversalClient, ns, wahaURL string, concurrency, capacity int) (*worker.Worker, error) {
	return worker.New(worker.Config{
		Redis: rdb, Namespace: ns,
		Instances:   []worker.Instance{{Name: "default", BaseURL: wahaURL, Concurrency: capacity}},
		Concurrency: concurrency,
		Registerer:  prometheus.NewRegistry(),
	})
}

// waitBatch polls a batch every interval until it is done.
func waitBatch(ctx context.Context, insp *tasks.Inspector, id string, interval time.Duration, timeout time.Duration) (*tasks.Batch, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		b, err := insp.Batch(ctx, id)
		if err == nil && b.Done {
			return b, nil
		}
		if err != nil && !errors.Is(err, tasks.ErrNotFound) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			if b != nil {
				return nil, fmt.Errorf("batch %s not done after %s: %v", id, timeout, b.Counts)
			}
			return nil, ctx.Err()
		case <-time.After(interval):
		}
	}
}

func newFake(latency time.Duration) (*wahafake.Server, error) {
	return wahafake.New(wahafake.Options{LogoutLatency: latency})
}

// ---- 1. bulk enqueue ----

// EnqueueFigures are the bulk-enqueue scenario's figures, in tasks per second.
type EnqueueFigures struct {
	N, Goroutines int
	Wahaq, Bare   float64 // tasks/s
	WahaqTime     time.Duration
	BareTime      time.Duration
}

// BulkEnqueue enqueues N logouts as one wahaq batch (validation, dedup,
// batch counters, records) and N bare asynq tasks with Client.Enqueue from
// G goroutines.
func BulkEnqueue(ctx context.Context, e *env) (EnqueueFigures, error) {
	n, g := e.sizes.EnqueueN, e.sizes.EnqueueGoroutines
	f := EnqueueFigures{N: n, Goroutines: g}
	ns := e.ns(ScenarioEnqueue)
	p, err := producer(e.rdb, ns)
	if err != nil {
		return f, err
	}
	// Warm up both paths (script cache, connection pool) outside the clock.
	if _, err := p.EnqueueBatch(ctx, tasks.BatchRequest{Sessions: sessionNames("warm", 100)}); err != nil {
		return f, err
	}
	client := asynq.NewClientFromRedisClient(e.rdb)
	q := bareQueue(ns)
	if _, err := bareEnqueue(ctx, client, q, sessionNames("warm", 100), g); err != nil {
		return f, err
	}

	// One 50,000-task batch takes about a second, within the noise of a
	// shared machine: run both sides three times, alternately, on an emptied
	// Redis each time, and keep each side's median.
	const rounds = 3
	sessions := sessionNames("s", n)
	var wahaqTimes, bareTimes []time.Duration
	for r := 0; r < rounds; r++ {
		start := time.Now()
		info, err := p.EnqueueBatch(ctx, tasks.BatchRequest{Sessions: sessions})
		took := time.Since(start)
		if err != nil {
			return f, err
		}
		if info.Total != int64(n) {
			return f, fmt.Errorf("wahaq batch holds %d tasks, want %d", info.Total, n)
		}
		wahaqTimes = append(wahaqTimes, took)
		e.logf("enqueue: wahaq %d in %s", n, took.Round(time.Millisecond))
		if err := cleanup(ctx, e.rdb, ns+":"); err != nil { // free wahaq's tasks before the baseline
			return f, err
		}
		took, err = bareEnqueue(ctx, client, q, sessions, g)
		if err != nil {
			return f, err
		}
		bareTimes = append(bareTimes, took)
		e.logf("enqueue: bare asynq %d in %s", n, took.Round(time.Millisecond))
		if err := cleanup(ctx, e.rdb, q); err != nil {
			return f, err
		}
	}
	f.WahaqTime, f.BareTime = medianDuration(wahaqTimes), medianDuration(bareTimes)
	f.Wahaq = float64(n) / f.WahaqTime.Seconds()
	f.Bare = float64(n) / f.BareTime.Seconds()
	return f, nil
}

// medianDuration returns the median of ds (which it sorts).
func medianDuration(ds []time.Duration) time.Duration {
	slices.Sort(ds)
	return ds[len(ds)/2]
}

// ---- 2. processing throughput ----

// ThroughputFigures are the processing scenario's figures, in tasks per
// second.
type ThroughputFigures struct {
	N, Concurrency int
	Wahaq, Bare    float64
	WahaqTime      time.Duration
	BareTime       time.Duration
}

// Throughput processes N logouts against a zero-latency fake WAHA: wahaq's
// worker (instance cap = concurrency, so the cap does not throttle) versus a
// bare asynq handler making the same call, same concurrency.
func Throughput(ctx context.Context, e *env) (ThroughputFigures, error) {
	n, conc := e.sizes.ThroughputN, e.sizes.Concurrency
	f := ThroughputFigures{N: n, Concurrency: conc}
	fake, err := newFake(0)
	if err != nil {
		return f, err
	}
	defer fake.Close()
	ns := e.ns(ScenarioThroughput)

	// Bare asynq first: enqueue (not timed), then time the processing.
	bareSessions := fake.AddSessions("tb", n, wahafake.StatusWorking)
	client := asynq.NewClientFromRedisClient(e.rdb)
	q := bareQueue(ns)
	if _, err := bareEnqueue(ctx, client, q, bareSessions, e.sizes.EnqueueGoroutines); err != nil {
		return f, err
	}
	wc, err := wahaclient.New(wahaclient.Config{BaseURL: fake.URL()})
	if err != nil {
		return f, err
	}
	var done atomic.Int64
	all := make(chan struct{})
	srv := bareServer(e.rdb, q, conc)
	start := time.Now()
	if err := srv.Start(bareHandler(wc, false, func() {
		if done.Add(1) == int64(n) {
			close(all)
		}
	})); err != nil {
		return f, err
	}
	select {
	case <-all:
	case <-ctx.Done():
		srv.Shutdown()
		return f, ctx.Err()
	case <-time.After(10 * time.Minute):
		srv.Shutdown()
		return f, fmt.Errorf("bare asynq processed %d of %d in 10m", done.Load(), n)
	}
	f.BareTime = time.Since(start)
	srv.Shutdown()
	e.logf("throughput: bare asynq %d in %s", n, f.BareTime.Round(time.Millisecond))

	// wahaq.
	p, err := producer(e.rdb, ns)
	if err != nil {
		return f, err
	}
	info, err := p.EnqueueBatch(ctx, tasks.BatchRequest{Sessions: fake.AddSessions("tw", n, wahafake.StatusWorking)})
	if err != nil {
		return f, err
	}
	w, err := newWorker(e.rdb, ns, fake.URL(), conc, conc)
	if err != nil {
		return f, err
	}
	start = time.Now()
	if err := w.Start(); err != nil {
		return f, err
	}
	b, err := waitBatch(ctx, inspector(e.rdb, ns), info.BatchID, 5*time.Millisecond, 10*time.Minute)
	f.WahaqTime = time.Since(start)
	w.Shutdown()
	if err != nil {
		return f, err
	}
	if b.Outcomes[tasks.OutcomeLoggedOut] != int64(n) {
		return f, fmt.Errorf("wahaq: %d of %d logged out (%v)", b.Outcomes[tasks.OutcomeLoggedOut], n, b.Outcomes)
	}
	e.logf("throughput: wahaq %d in %s", n, f.WahaqTime.Round(time.Millisecond))
	f.Wahaq = float64(n) / f.WahaqTime.Seconds()
	f.Bare = float64(n) / f.BareTime.Seconds()
	return f, nil
}

// ---- 3. latency ----

// LatencyFigures are enqueue-to-completed latencies of single logouts on an
// idle system.
type LatencyFigures struct {
	Samples, BareSamples int
	WahaqP50, WahaqP99   time.Duration
	BareP50, BareP99     time.Duration
}

// pollEvery is how often a latency sample looks for its task's completion;
// it adds at most that much to each sample, on both sides.
const pollEvery = 500 * time.Microsecond

// Latency enqueues single logouts one at a time on an idle system and times
// each from just before the enqueue until Redis shows the task completed:
// wahaq's worker with its defaults (PollInterval 10ms) versus bare asynq
// with its defaults (1 s task check interval).
func Latency(ctx context.Context, e *env) (LatencyFigures, error) {
	f := LatencyFigures{Samples: e.sizes.LatencySamples, BareSamples: e.sizes.LatencyBareSamples}
	fake, err := newFake(0)
	if err != nil {
		return f, err
	}
	defer fake.Close()
	ns := e.ns(ScenarioLatency)
	idle := func() { time.Sleep(20*time.Millisecond + time.Duration(mrand.IntN(10_000))*time.Microsecond) }

	// wahaq, default worker config.
	p, err := producer(e.rdb, ns)
	if err != nil {
		return f, err
	}
	w, err := worker.New(worker.Config{Redis: e.rdb, Namespace: ns,
		Instances: []worker.Instance{{Name: "default", BaseURL: fake.URL()}}, Registerer: prometheus.NewRegistry()})
	if err != nil {
		return f, err
	}
	if err := w.Start(); err != nil {
		return f, err
	}
	sessions := fake.AddSessions("lw", f.Samples+5, wahafake.StatusWorking)
	// Warm-up (connections, scripts), not counted.
	for _, s := range sessions[f.Samples:] {
		if _, err := p.Enqueue(ctx, tasks.LogoutRequest{Session: s}); err != nil {
			w.Shutdown()
			return f, err
		}
	}
	time.Sleep(300 * time.Millisecond)
	wahaq := make([]time.Duration, 0, f.Samples)
	for _, s := range sessions[:f.Samples] {
		idle()
		start := time.Now()
		t, err := p.Enqueue(ctx, tasks.LogoutRequest{Session: s})
		if err != nil {
			w.Shutdown()
			return f, err
		}
		if err := waitUntil(ctx, 5*time.Second, func() (bool, error) {
			got, err := inspector(e.rdb, ns).Task(ctx, t.ID)
			if err != nil {
				return false, err
			}
			return got.State == tasks.StateCompleted, nil
		}); err != nil {
			w.Shutdown()
			return f, fmt.Errorf("wahaq task %s: %w", t.ID, err)
		}
		wahaq = append(wahaq, time.Since(start))
	}
	w.Shutdown()
	f.WahaqP50, f.WahaqP99 = percentile(wahaq, 50), percentile(wahaq, 99)
	e.logf("latency: wahaq p50 %s p99 %s over %d", f.WahaqP50, f.WahaqP99, len(wahaq))

	// bare asynq, default config.
	wc, err := wahaclient.New(wahaclient.Config{BaseURL: fake.URL()})
	if err != nil {
		return f, err
	}
	q := bareQueue(ns)
	srv := bareServer(e.rdb, q, e.sizes.Concurrency)
	if err := srv.Start(bareHandler(wc, false, nil)); err != nil {
		return f, err
	}
	defer srv.Shutdown()
	client := asynq.NewClientFromRedisClient(e.rdb)
	bare := make([]time.Duration, 0, f.BareSamples)
	for _, s := range fake.AddSessions("lb", f.BareSamples, wahafake.StatusWorking) {
		idle()
		start := time.Now()
		info, err := client.EnqueueContext(ctx, asynq.NewTask(tasks.TypeLogout, barePayload(s)), asynq.Queue(q))
		if err != nil {
			return f, err
		}
		key := asynqwire.TaskKey(q, info.ID)
		// Without Retention asynq deletes the task's hash when it completes.
		if err := waitUntil(ctx, 10*time.Second, func() (bool, error) {
			n, err := e.rdb.Exists(ctx, key).Result()
			return n == 0, err
		}); err != nil {
			return f, fmt.Errorf("bare task %s: %w", info.ID, err)
		}
		bare = append(bare, time.Since(start))
	}
	f.BareP50, f.BareP99 = percentile(bare, 50), percentile(bare, 99)
	e.logf("latency: bare asynq p50 %s p99 %s over %d", f.BareP50, f.BareP99, len(bare))
	return f, nil
}

func waitUntil(ctx context.Context, timeout time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not completed within %s", timeout)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		time.Sleep(pollEvery)
	}
}

// percentile returns the p-th percentile (nearest rank).
func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

// ---- 4. teardown efficiency ----

// TeardownFigures compare a capped bulk teardown with its ideal time.
type TeardownFigures struct {
	N, Cap, Workers int
	Latency         time.Duration
	Ideal, Actual   time.Duration
	MaxInFlight     int // the most logouts the fake saw at once (≤ Cap)
}

// Teardown logs out N running sessions, each logout taking L on the fake,
// with a per-server cap C shared by W worker.Worker instances in this
// process (each with the default concurrency of 20). Ideal is ceil(N/C)·L.
func Teardown(ctx context.Context, e *env) (TeardownFigures, error) {
	sz := e.sizes
	f := TeardownFigures{N: sz.TeardownN, Cap: sz.TeardownCap, Workers: sz.TeardownWorkers, Latency: sz.TeardownLatency}
	f.Ideal = time.Duration(math.Ceil(float64(f.N)/float64(f.Cap))) * f.Latency
	fake, err := newFake(f.Latency)
	if err != nil {
		return f, err
	}
	defer fake.Close()
	sessions := fake.AddSessions("td", f.N, wahafake.StatusWorking)
	ns := e.ns(ScenarioTeardown)
	p, err := producer(e.rdb, ns)
	if err != nil {
		return f, err
	}
	var ws []*worker.Worker
	defer func() {
		for _, w := range ws {
			w.Shutdown()
		}
	}()
	for range f.Workers {
		w, err := newWorker(e.rdb, ns, fake.URL(), 0, f.Cap) // 0: default concurrency (20)
		if err != nil {
			return f, err
		}
		if err := w.Start(); err != nil {
			return f, err
		}
		ws = append(ws, w)
	}
	time.Sleep(200 * time.Millisecond) // let the workers settle
	start := time.Now()
	info, err := p.EnqueueBatch(ctx, tasks.BatchRequest{Sessions: sessions})
	if err != nil {
		return f, err
	}
	b, err := waitBatch(ctx, inspector(e.rdb, ns), info.BatchID, 2*time.Millisecond, 10*f.Ideal+time.Minute)
	f.Actual = time.Since(start)
	if err != nil {
		return f, err
	}
	if got := b.Outcomes[tasks.OutcomeLoggedOut]; got != int64(f.N) {
		return f, fmt.Errorf("%d of %d logged out (%v)", got, f.N, b.Outcomes)
	}
	f.MaxInFlight = fake.MaxInFlight()
	e.logf("teardown: %d sessions in %s (ideal %s, max in flight %d)", f.N, f.Actual.Round(time.Millisecond), f.Ideal, f.MaxInFlight)
	return f, nil
}

// ---- 5. footprint ----

// FootprintFigures are Redis bytes per retained result and worker peak RSS.
type FootprintFigures struct {
	N int
	// Bytes per completed task kept for polling: MEMORY USAGE summed over
	// every key of the namespace (records, batch, queue bookkeeping)
	// divided by N.
	WahaqBytes, BareBytes float64
	// Peak RSS (VmHWM) of a worker child process while it ran the N-task
	// batch; 0 where /proc is missing.
	WahaqRSS, BareRSS int64
	WahaqTime         time.Duration
	BareTime          time.Duration
}

// Footprint enqueues N logouts, lets a worker child process (`wahaq bench
// --child`, a real wahaq worker) perform them, reads its peak RSS from
// /proc/PID/status, and measures Redis memory of the retained results. The
// baseline is a bare asynq child whose tasks are enqueued with
// asynq.Retention(24h) and whose handler writes the same result JSON with
// the ResultWriter.
func Footprint(ctx context.Context, e *env) (FootprintFigures, error) {
	n := e.sizes.FootprintN
	f := FootprintFigures{N: n}
	fake, err := newFake(0)
	if err != nil {
		return f, err
	}
	defer fake.Close()
	ns := e.ns(ScenarioFootprint)
	conc := e.sizes.Concurrency

	// wahaq.
	p, err := producer(e.rdb, ns)
	if err != nil {
		return f, err
	}
	info, err := p.EnqueueBatch(ctx, tasks.BatchRequest{Sessions: fake.AddSessions("fw", n, wahafake.StatusWorking)})
	if err != nil {
		return f, err
	}
	start := time.Now()
	f.WahaqRSS, err = e.runChild(ctx, ChildSpec{Mode: "wahaq", RedisURL: e.redisURL, Namespace: ns, WahaURL: fake.URL(), Concurrency: conc},
		func() (bool, error) {
			b, err := inspector(e.rdb, ns).Batch(ctx, info.BatchID)
			if err != nil {
				return false, err
			}
			return b.Done, nil
		})
	f.WahaqTime = time.Since(start)
	if err != nil {
		return f, fmt.Errorf("wahaq worker child: %w", err)
	}
	if f.WahaqBytes, err = bytesPerTask(ctx, e.rdb, ns+":", n); err != nil {
		return f, err
	}
	e.logf("footprint: wahaq %d in %s, peak RSS %d KiB, %.0f B/result", n, f.WahaqTime.Round(time.Millisecond), f.WahaqRSS>>10, f.WahaqBytes)
	if err := cleanup(ctx, e.rdb, ns+":"); err != nil {
		return f, err
	}

	// bare asynq with retention.
	q := bareQueue(ns)
	client := asynq.NewClientFromRedisClient(e.rdb)
	if _, err := bareEnqueue(ctx, client, q, fake.AddSessions("fb", n, wahafake.StatusWorking), e.sizes.EnqueueGoroutines,
		asynq.Retention(24*time.Hour)); err != nil {
		return f, err
	}
	insp := asynq.NewInspectorFromRedisClient(e.rdb)
	start = time.Now()
	f.BareRSS, err = e.runChild(ctx, ChildSpec{Mode: "bare", RedisURL: e.redisURL, Queue: q, WahaURL: fake.URL(), Concurrency: conc},
		func() (bool, error) {
			qi, err := insp.GetQueueInfo(q)
			if err != nil {
				return false, err
			}
			return qi.Completed >= n, nil
		})
	f.BareTime = time.Since(start)
	if err != nil {
		return f, fmt.Errorf("bare asynq child: %w", err)
	}
	if f.BareBytes, err = bytesPerTask(ctx, e.rdb, q, n); err != nil {
		return f, err
	}
	e.logf("footprint: bare asynq %d in %s, peak RSS %d KiB, %.0f B/result", n, f.BareTime.Round(time.Millisecond), f.BareRSS>>10, f.BareBytes)
	return f, nil
}

// bytesPerTask sums MEMORY USAGE over every key whose name holds prefix and
// divides by n.
func bytesPerTask(ctx context.Context, rdb redis.UniversalClient, prefix string, n int) (float64, error) {
	var total int64
	var keys []string
	flush := func() error {
		pipe := rdb.Pipeline()
		cmds := make([]*redis.IntCmd, len(keys))
		for i, k := range keys {
			cmds[i] = pipe.MemoryUsage(ctx, k, 0)
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		for _, c := range cmds {
			total += c.Val()
		}
		keys = keys[:0]
		return nil
	}
	iter := rdb.Scan(ctx, 0, "*{"+prefix+"*", 2000).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
		if len(keys) == 1000 {
			if err := flush(); err != nil {
				return 0, err
			}
		}
	}
	if err := iter.Err(); err != nil {
		return 0, err
	}
	if err := flush(); err != nil {
		return 0, err
	}
	return float64(total) / float64(n), nil
}

// ---- the worker child process ----

// ChildEnv names the environment variable that carries a ChildSpec to a
// worker child process.
const ChildEnv = "WAHAQ_BENCH_CHILD"

// ChildSpec tells a child process what worker to run.
type ChildSpec struct {
	// Mode is "wahaq" (a wahaq worker, as `wahaq worker` builds it) or
	// "bare" (a bare asynq server with the bare handler).
	Mode        string `json:"mode"`
	RedisURL    string `json:"redis_url"`
	Namespace   string `json:"namespace,omitempty"`
	Queue       string `json:"queue,omitempty"`
	WahaURL     string `json:"waha_url"`
	Concurrency int    `json:"concurrency"`
}

// runChild starts a worker child, waits until done reports true, reads the
// child's peak RSS, and stops it.
func (e *env) runChild(ctx context.Context, spec ChildSpec, done func() (bool, error)) (int64, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, err
	}
	if spec.RedisURL == "" {
		return 0, errors.New("no Redis URL for the child process")
	}
	raw, _ := json.Marshal(spec)
	cmd := exec.CommandContext(ctx, exe, e.child...)
	cmd.Env = append(os.Environ(), ChildEnv+"="+string(raw))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe() // the child exits when this closes (parent gone)
	if err != nil {
		return 0, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer func() {
		_ = stdin.Close()
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		return 0, fmt.Errorf("child did not start (%q, %v)", line, err)
	}
	if err := waitUntil(ctx, 10*time.Minute, func() (bool, error) {
		time.Sleep(20 * time.Millisecond)
		return done()
	}); err != nil {
		return 0, err
	}
	return peakRSS(cmd.Process.Pid), nil
}

// peakRSS reads VmHWM (peak resident set size) of a process, in bytes; 0
// where /proc is not available.
func peakRSS(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// ChildMain runs a worker child from the ChildSpec in the environment until
// SIGTERM, SIGINT or the end of stdin, and returns the exit code. It prints
// "ready" once the worker runs.
func ChildMain() int {
	var spec ChildSpec
	if err := json.Unmarshal([]byte(os.Getenv(ChildEnv)), &spec); err != nil {
		fmt.Fprintf(os.Stderr, "bench child: bad %s: %v\n", ChildEnv, err)
		return 2
	}
	rdb, err := config.NewRedis(spec.RedisURL, nil)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench child: %v\n", err)
		return 2
	}
	defer rdb.Close()
	var stop func()
	switch spec.Mode {
	case "wahaq":
		// As `wahaq worker` builds it: JSON logs at info (written to
		// nowhere, but formatted), metrics registered, instance cap equal
		// to the concurrency so the cap does not throttle.
		log := zerolog.New(io.Discard).Level(zerolog.InfoLevel).With().Timestamp().Logger()
		w, err := worker.New(worker.Config{Redis: rdb, Namespace: spec.Namespace,
			Instances:   []worker.Instance{{Name: "default", BaseURL: spec.WahaURL, Concurrency: spec.Concurrency}},
			Concurrency: spec.Concurrency, Logger: &log, Registerer: prometheus.NewRegistry()})
		if err == nil {
			err = w.Start()
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench child: %v\n", err)
			return 1
		}
		stop = w.Shutdown
	case "bare":
		wc, err := wahaclient.New(wahaclient.Config{BaseURL: spec.WahaURL})
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench child: %v\n", err)
			return 1
		}
		srv := bareServer(rdb, spec.Queue, spec.Concurrency)
		if err := srv.Start(bareHandler(wc, true, nil)); err != nil {
			fmt.Fprintf(os.Stderr, "bench child: %v\n", err)
			return 1
		}
		stop = srv.Shutdown
	default:
		fmt.Fprintf(os.Stderr, "bench child: unknown mode %q\n", spec.Mode)
		return 2
	}
	fmt.Println("ready")
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	eof := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); close(eof) }()
	select {
	case <-sig:
	case <-eof:
	}
	stop()
	return 0
}
