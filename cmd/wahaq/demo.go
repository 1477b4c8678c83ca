package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/wahaq/wahaq/internal/base"
	"github.com/wahaq/wahaq/tasks"
	"github.com/wahaq/wahaq/wahaclient/wahafake"
	"github.com/wahaq/wahaq/worker"
)

func init() { register(newDemoCmd) }

// demoWarning is the first thing the demo says.
const demoWarning = "DEMO MODE: Redis is in memory and WAHA is a fake; nothing is durable and nothing real is logged out."

// The demo's fixed set-up. The retry settings are small so that every
// outcome shows within seconds; production defaults are 10 retries between
// 2s and 10m.
const (
	demoMinSessions     = 10
	demoMaxSessions     = 5000
	demoMaxRetries      = 2
	demoRetryBase       = 100 * time.Millisecond
	demoRetryMax        = time.Second // Retry-After is honoured up to RetryMax: 1s lets the fake's "Retry-After: 1" through whole
	demoConcurrency     = 8
	demoInstanceCap     = 4
	demoScheduleIn      = 2 * time.Second
	demoTimeout         = 2 * time.Minute
	demoPoll            = 100 * time.Millisecond
	demoKey             = "demo-key"
	demoMessageWidth    = 72
	demoDefaultLatency  = 150 * time.Millisecond
	demoDefaultSessions = 36
)

type demoOptions struct {
	sessions int
	latency  time.Duration
	json     bool
	verbose  bool
}

func newDemoCmd() *cobra.Command {
	o := demoOptions{}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "See wahaq work end to end in one process: in-memory Redis, fake WAHA servers, no set-up",
		Long: `demo runs everything in this one process: an embedded in-memory Redis, four
in-process fake WAHA servers, a worker, and a producer that enqueues batches,
single and scheduled logouts. Some sessions are scripted to fail so that every
outcome shows: logged_out, not_found, auth_failed, rejected, retries_exhausted.

It ignores REDIS_URL, WAHA_BASE_URL and every other setting: nothing is durable
and nothing real is logged out. The results are printed as a table (or, with
--json, as a JSON array of tasks in the shape of GET /v1/tasks/{id}).`,
		Example: "  wahaq demo\n  wahaq demo --sessions 200 --latency 500ms\n  wahaq demo --json | jq '.[] | {session, outcome, attempts}'",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.sessions < demoMinSessions || o.sessions > demoMaxSessions {
				return usagef("--sessions must be between %d and %d, not %d", demoMinSessions, demoMaxSessions, o.sessions)
			}
			if o.latency < 0 || o.latency > 10*time.Second {
				return usagef("--latency must be between 0 and 10s, not %s", o.latency)
			}
			return runDemo(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.sessions, "sessions", demoDefaultSessions, fmt.Sprintf("WORKING sessions on the fake WAHA server named default (%d..%d)", demoMinSessions, demoMaxSessions))
	f.DurationVar(&o.latency, "latency", demoDefaultLatency, "how long the fake WAHA takes to log out a running session (a real one: about 3s)")
	f.BoolVar(&o.json, "json", false, "print the final tasks as a JSON array (the task model of the HTTP API) instead of a table")
	f.BoolVarP(&o.verbose, "verbose", "v", false, "show the worker's logs on stderr")
	return cmd
}

// demoInstance is one fake WAHA server and how the worker talks to it.
type demoInstance struct {
	name string
	fake *wahafake.Server
	key  string // the key the worker sends
}

// demoTask is one task the demo enqueued.
type demoTask struct {
	id   string
	inst string
	how  string // "batch 1", "single", "in 2s"
	task *tasks.Task
}

// demoRun holds one run of the demo.
type demoRun struct {
	opts      demoOptions
	info      io.Writer // the warning, the plan and the live summary
	out       io.Writer // the final table or JSON
	insts     []*demoInstance
	byName    map[string]*demoInstance
	producer  *tasks.Producer
	inspector *tasks.Inspector
	batches   []string
	tasks     []*demoTask
}

func runDemo(ctx context.Context, o demoOptions, stdout, stderr io.Writer) (err error) {
	d := &demoRun{opts: o, info: stdout, out: stdout, byName: map[string]*demoInstance{}}
	if o.json {
		// stdout carries only the JSON array.
		d.info = stderr
	}
	fmt.Fprintln(d.info, demoWarning)
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
	tcfg := tasks.Config{Redis: rdb, Instances: names, MaxRetries: demoMaxRetries, ResultTTL: time.Hour}
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
	if o.verbose {
		log = zerolog.New(zerolog.ConsoleWriter{Out: stderr, TimeFormat: "15:04:05"}).With().Timestamp().Logger()
	}
	w, err := worker.New(worker.Config{
		Redis: rdb, Instances: winsts,
		Concurrency: demoConcurrency, InstanceConcurrency: demoInstanceCap,
		RetryBase: demoRetryBase, RetryMax: demoRetryMax, ResultTTL: time.Hour,
		ShutdownGrace: 5 * time.Second, Logger: &log,
	})
	if err != nil {
		return err
	}
	if err := w.Start(); err != nil {
		return err
	}
	fmt.Fprintf(d.info, "Worker started: %d tasks at once, at most %d logouts in flight per WAHA server.\n\n", demoConcurrency, demoInstanceCap)

	waitErr := d.wait(ctx)
	w.Shutdown()
	if waitErr != nil && !errors.Is(waitErr, errDemoTimeout) {
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

var errDemoTimeout = errors.New("demo: the tasks did not all finish in time")

func demoSession(i int) string { return fmt.Sprintf("session-%04d", i) }

// startFakes starts the four fake WAHA servers and scripts their failures.
func (d *demoRun) startFakes() error {
	add := func(name, key string, opts wahafake.Options) (*wahafake.Server, error) {
		opts.LogoutLatency = d.opts.latency
		f, err := wahafake.New(opts)
		if err != nil {
			return nil, fmt.Errorf("demo: start the fake WAHA %q: %w", name, err)
		}
		in := &demoInstance{name: name, fake: f, key: key}
		d.insts = append(d.insts, in)
		d.byName[name] = in
		return f, nil
	}
	// default: a WAHA Plus with many WORKING sessions, some failing.
	def, err := add("default", demoKey, wahafake.Options{APIKey: demoKey, Sessions: d.opts.sessions})
	if err != nil {
		return err
	}
	def.Script(demoSession(2), wahafake.Fault{Status: 503, Times: 2})
	def.Script(demoSession(4), wahafake.Fault{Status: 429, Times: 1, RetryAfter: time.Second})
	def.Script(demoSession(5), wahafake.Fault{Reset: true, Times: 1})
	def.Script(demoSession(6), wahafake.Fault{Status: 503})
	def.Script(demoSession(8), wahafake.Fault{Status: 502})
	// core: WAHA Core, which serves only the session "default".
	core, err := add("core", demoKey, wahafake.Options{APIKey: demoKey, Core: true})
	if err != nil {
		return err
	}
	core.AddSession(wahafake.DefaultSession, wahafake.StatusWorking)
	// locked: its key was rotated; the worker still has the old one.
	locked, err := add("locked", "stale-key", wahafake.Options{APIKey: "rotated-key"})
	if err != nil {
		return err
	}
	locked.AddSession("ops-1", wahafake.StatusWorking)
	locked.AddSession("ops-2", wahafake.StatusWorking)
	// partner: the worker holds a key scoped to some sessions only.
	partner, err := add("partner", "partner-scoped-key", wahafake.Options{APIKey: "partner-admin-key",
		ScopedKeys: map[string][]string{"partner-scoped-key": {"partner-a", "partner-b"}}})
	if err != nil {
		return err
	}
	for _, s := range []string{"partner-a", "partner-b", "partner-c"} {
		partner.AddSession(s, wahafake.StatusWorking)
	}
	return nil
}

func (d *demoRun) printPlan() {
	n := d.opts.sessions
	w := tabwriter.NewWriter(d.info, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "Fake WAHA servers in this process, and what each shows:")
	fmt.Fprintf(w, "  default\t%d WORKING sessions; a logout takes %s; at most %d at once\t-> logged_out\n", n, d.opts.latency, demoInstanceCap)
	fmt.Fprintf(w, "  \t%s: 503 twice, then works\t-> retried, logged_out (3 attempts)\n", demoSession(2))
	fmt.Fprintf(w, "  \t%s: 429 with Retry-After: 1 once\t-> waits 1s, logged_out\n", demoSession(4))
	fmt.Fprintf(w, "  \t%s: connection reset once\t-> retried, logged_out\n", demoSession(5))
	fmt.Fprintf(w, "  \t%s: 503 for ever, %s: 502 for ever\t-> retries_exhausted after %d retries\n", demoSession(6), demoSession(8), demoMaxRetries)
	fmt.Fprintf(w, "  \tghost-1..3: not on the server\t-> not_found (nothing to do)\n")
	fmt.Fprintf(w, "  \t%s: scheduled in %s; %s: a single enqueue\t\n", demoSession(n), demoScheduleIn, demoSession(n-1))
	fmt.Fprintf(w, "  core\tWAHA Core: only the session \"default\" exists\t-> sales-bot: 422, rejected\n")
	fmt.Fprintf(w, "  locked\tits key was rotated; the worker has the old one\t-> 401, auth_failed\n")
	fmt.Fprintf(w, "  partner\tthe worker's key is scoped to partner-a, partner-b\t-> partner-c: 403, auth_failed\n")
	_ = w.Flush()
	fmt.Fprintf(d.info, "Retries: at most %d, backoff %s..%s with jitter (production defaults: 10, 2s..10m).\n\n", demoMaxRetries, demoRetryBase, demoRetryMax)
}

// enqueue enqueues the batches, a single logout and a scheduled one.
func (d *demoRun) enqueue(ctx context.Context) error {
	n := d.opts.sessions
	var wave1, wave2 []string
	for i := 1; i <= n-2; i++ {
		if i <= (n-2)/2 {
			wave1 = append(wave1, demoSession(i))
		} else {
			wave2 = append(wave2, demoSession(i))
		}
	}
	wave2 = append(wave2, "ghost-1", "ghost-2", "ghost-3")
	reqs := []tasks.BatchRequest{
		{Instance: "default", Sessions: wave1},
		{Instance: "default", Sessions: wave2},
		{Instance: "core", Sessions: []string{wahafake.DefaultSession, "sales-bot"}},
		{Instance: "locked", Sessions: []string{"ops-1", "ops-2"}},
		{Instance: "partner", Sessions: []string{"partner-a", "partner-b", "partner-c"}},
	}
	for _, r := range reqs {
		info, err := d.producer.EnqueueBatch(ctx, r)
		if err != nil {
			return fmt.Errorf("demo: enqueue a batch: %w", err)
		}
		d.batches = append(d.batches, info.BatchID)
		fmt.Fprintf(d.info, "Enqueued batch %d on %-8s %s: %d logouts\n", len(d.batches), r.Instance, info.BatchID, info.Total)
	}
	single, err := d.producer.Enqueue(ctx, tasks.LogoutRequest{Instance: "default", Session: demoSession(n - 1)})
	if err != nil {
		return fmt.Errorf("demo: enqueue: %w", err)
	}
	d.tasks = append(d.tasks, &demoTask{id: single.ID, inst: "default", how: "single"})
	fmt.Fprintf(d.info, "Enqueued one logout of %s: task %s\n", single.Session, single.ID)
	sched, err := d.producer.Enqueue(ctx, tasks.LogoutRequest{Instance: "default", Session: demoSession(n), When: tasks.When{In: demoScheduleIn}})
	if err != nil {
		return fmt.Errorf("demo: enqueue: %w", err)
	}
	how := "in " + demoScheduleIn.String()
	d.tasks = append(d.tasks, &demoTask{id: sched.ID, inst: "default", how: how})
	fmt.Fprintf(d.info, "Scheduled the logout of %s in %s: task %s\n", sched.Session, demoScheduleIn, sched.ID)
	// The same session again, now: wahaq answers with the live task.
	again, err := d.producer.Enqueue(ctx, tasks.LogoutRequest{Instance: "default", Session: demoSession(n)})
	if err != nil {
		return fmt.Errorf("demo: enqueue: %w", err)
	}
	if again.Deduplicated {
		fmt.Fprintf(d.info, "Enqueued %s again: deduplicated onto the scheduled task %s\n", again.Session, again.ID)
	} else {
		d.tasks = append(d.tasks, &demoTask{id: again.ID, inst: "default", how: "single"})
	}
	fmt.Fprintln(d.info)
	return nil
}

// collectIDs learns the ids of the batches' tasks from asynq's pending and
// scheduled lists (nothing has run yet).
func (d *demoRun) collectIDs(rdb redis.UniversalClient) error {
	known := map[string]bool{}
	for _, t := range d.tasks {
		known[t.id] = true
	}
	batchNo := map[string]int{}
	for i, b := range d.batches {
		batchNo[b] = i + 1
	}
	ai := asynq.NewInspectorFromRedisClient(rdb)
	for _, in := range d.insts {
		q := d.producer.Queue(in.name)
		pending, err := ai.ListPendingTasks(q, asynq.PageSize(demoMaxSessions+100))
		if err != nil && !errors.Is(err, asynq.ErrQueueNotFound) {
			return fmt.Errorf("demo: list the queue %s: %w", q, err)
		}
		sched, err := ai.ListScheduledTasks(q, asynq.PageSize(demoMaxSessions+100))
		if err != nil && !errors.Is(err, asynq.ErrQueueNotFound) {
			return fmt.Errorf("demo: list the queue %s: %w", q, err)
		}
		for _, ti := range append(pending, sched...) {
			if known[ti.ID] {
				continue
			}
			p, err := base.DecodePayload(ti.Payload)
			if err != nil {
				return fmt.Errorf("demo: task %s: %w", ti.ID, err)
			}
			how := "single"
			if n := batchNo[p.BatchID]; n > 0 {
				how = fmt.Sprintf("batch %d", n)
			}
			known[ti.ID] = true
			d.tasks = append(d.tasks, &demoTask{id: ti.ID, inst: p.Instance, how: how})
		}
	}
	return nil
}

// refresh reads every task.
func (d *demoRun) refresh(ctx context.Context) error {
	for _, t := range d.tasks {
		got, err := d.inspector.Task(ctx, t.id)
		if err != nil {
			return fmt.Errorf("demo: read task %s: %w", t.id, err)
		}
		t.task = got
	}
	return nil
}

// wait shows a live summary until every batch is done and every task final.
func (d *demoRun) wait(ctx context.Context) error {
	start := time.Now()
	tty := isTerminal(d.info)
	tick := time.NewTicker(demoPoll)
	defer tick.Stop()
	lastPrint := time.Time{}
	deadline := start.Add(demoTimeout)
	for {
		if err := d.refresh(ctx); err != nil {
			return err
		}
		done, err := d.allDone(ctx)
		if err != nil {
			return err
		}
		now := time.Now()
		if done || now.Sub(lastPrint) >= time.Second || lastPrint.IsZero() {
			line := d.summaryLine(now.Sub(start))
			if tty {
				fmt.Fprintf(d.info, "\r\033[K%s", line)
				if done {
					fmt.Fprintln(d.info)
				}
			} else {
				fmt.Fprintln(d.info, line)
			}
			lastPrint = now
		}
		if done {
			fmt.Fprintf(d.info, "All %d batches done in %s.\n\n", len(d.batches), time.Since(start).Round(100*time.Millisecond))
			return nil
		}
		if now.After(deadline) {
			if tty {
				fmt.Fprintln(d.info)
			}
			return fmt.Errorf("%w (%s)", errDemoTimeout, demoTimeout)
		}
		select {
		case <-ctx.Done():
			if tty {
				fmt.Fprintln(d.info)
			}
			return fmt.Errorf("demo interrupted: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

func (d *demoRun) allDone(ctx context.Context) (bool, error) {
	for _, t := range d.tasks {
		if t.task == nil || !t.task.State.Final() {
			return false, nil
		}
	}
	for _, id := range d.batches {
		b, err := d.inspector.Batch(ctx, id)
		if err != nil {
			return false, fmt.Errorf("demo: read batch %s: %w", id, err)
		}
		if !b.Done {
			return false, nil
		}
	}
	return true, nil
}

func (d *demoRun) summaryLine(elapsed time.Duration) string {
	counts := map[tasks.State]int{}
	done := 0
	for _, t := range d.tasks {
		if t.task == nil {
			continue
		}
		counts[t.task.State]++
		if t.task.State.Final() {
			done++
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "[%4.1fs] %d/%d done", elapsed.Seconds(), done, len(d.tasks))
	for _, st := range tasks.AllStates {
		if counts[st] > 0 {
			fmt.Fprintf(&b, "  %s %d", st, counts[st])
		}
	}
	fmt.Fprintf(&b, "  | WAHA default: %d/%d in flight", d.byName["default"].fake.InFlight(), demoInstanceCap)
	return b.String()
}

// report prints the final table (or JSON), the tally and the dead letters.
func (d *demoRun) report(ctx context.Context) error {
	order := map[string]int{}
	for i, in := range d.insts {
		order[in.name] = i
	}
	slices.SortStableFunc(d.tasks, func(a, b *demoTask) int {
		if c := order[a.inst] - order[b.inst]; c != 0 {
			return c
		}
		return strings.Compare(a.task.Session, b.task.Session)
	})
	if d.opts.json {
		out := make([]*tasks.Task, len(d.tasks))
		for i, t := range d.tasks {
			out[i] = t.task
		}
		enc := json.NewEncoder(d.out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return err
		}
	} else {
		w := tabwriter.NewWriter(d.out, 0, 0, 2, ' ', 0)
		fmt.Fprintln(w, "INSTANCE\tSESSION\tENQUEUED\tSTATE\tOUTCOME\tATTEMPTS\tWAHA CALLS\tRESULT")
		for _, t := range d.tasks {
			outcome := "-"
			if t.task.Outcome != nil {
				outcome = string(*t.task.Outcome)
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n", t.inst, t.task.Session, t.how, t.task.State, outcome,
				t.task.Attempts, d.byName[t.inst].fake.LogoutCalls(t.task.Session), demoMessage(t.task))
		}
		if err := w.Flush(); err != nil {
			return err
		}
		fmt.Fprintln(d.out)
	}

	tally := map[tasks.Outcome]int{}
	for _, t := range d.tasks {
		if t.task.Outcome != nil {
			tally[*t.task.Outcome]++
		}
	}
	w := tabwriter.NewWriter(d.info, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "OUTCOME\tTASKS\tSTATE")
	for _, o := range tasks.AllOutcomes {
		fmt.Fprintf(w, "%s\t%d\t%s\n", o, tally[o], o.State())
	}
	if err := w.Flush(); err != nil {
		return err
	}
	page, err := d.inspector.DeadLetters(ctx, "", 0, 0)
	if err != nil {
		return err
	}
	fmt.Fprintf(d.info, "\nThe default server never had more than %d logouts in flight at once (cap %d).\n",
		d.byName["default"].fake.MaxInFlight(), demoInstanceCap)
	fmt.Fprintf(d.info, "Dead-letter queue: %d tasks, kept until a person requeues or purges them.\n", page.Total)
	fmt.Fprintln(d.info, "In production: wahaq dlq list / wahaq dlq requeue --all")
	return nil
}

// demoMessage is the result's sentence, or the last error, cut to fit a row.
func demoMessage(t *tasks.Task) string {
	msg := ""
	switch {
	case t.Result != nil:
		msg = t.Result.Message
	case t.LastError != nil:
		msg = *t.LastError
	}
	msg = strings.Join(strings.Fields(msg), " ")
	if r := []rune(msg); len(r) > demoMessageWidth {
		msg = string(r[:demoMessageWidth-1]) + "…"
	}
	return msg
}

// isTerminal reports whether w is a terminal, where the live summary
// rewrites one line instead of printing one a second.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
