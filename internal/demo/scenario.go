package demo

import (
	"context"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/wahaq/wahaq/internal/base"
	"github.com/wahaq/wahaq/tasks"
	"github.com/wahaq/wahaq/wahaclient/wahafake"
)

// startFakes starts the four fake WAHA servers and scripts their failures.
func (d *run) startFakes() error {
	add := func(name, key string, opts wahafake.Options) (*wahafake.Server, error) {
		opts.LogoutLatency = d.opts.Latency
		f, err := wahafake.New(opts)
		if err != nil {
			return nil, fmt.Errorf("demo: start the fake WAHA %q: %w", name, err)
		}
		in := &instance{name: name, fake: f, key: key}
		d.insts = append(d.insts, in)
		d.byName[name] = in
		return f, nil
	}
	// default: a WAHA Plus with many WORKING sessions, some failing.
	def, err := add("default", fakeKey, wahafake.Options{APIKey: fakeKey, Sessions: d.opts.Sessions})
	if err != nil {
		return err
	}
	f := faultySessions(d.opts.Sessions)
	def.Script(f.flaky, wahafake.Fault{Status: 503, Times: 2})
	def.Script(f.limited, wahafake.Fault{Status: 429, Times: 1, RetryAfter: time.Second})
	def.Script(f.reset, wahafake.Fault{Reset: true, Times: 1})
	def.Script(f.always503, wahafake.Fault{Status: 503})
	def.Script(f.always502, wahafake.Fault{Status: 502})
	// core: WAHA Core, which serves only the session "default".
	core, err := add("core", fakeKey, wahafake.Options{APIKey: fakeKey, Core: true})
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

// faulty names the default server's failing sessions among n. They are
// spread over the sessions, not bunched at the start: the worker dequeues
// in order, and five transient failures in a row would open the server's
// breaker for 5 s, a pause the plan does not show.
type faulty struct{ flaky, limited, reset, always503, always502 string }

func faultySessions(n int) faulty {
	// 2..n-2, evenly (n-1 and n are the single and the scheduled
	// logout); distinct from MinSessions (10) on
	at := func(k int) string { return sessionName(1 + k*(n-3)/5) }
	return faulty{flaky: at(1), limited: at(2), reset: at(3), always503: at(4), always502: at(5)}
}

func (d *run) printPlan() {
	n := d.opts.Sessions
	w := tabwriter.NewWriter(d.info, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "Fake WAHA servers in this process, and what each shows:")
	fmt.Fprintf(w, "  default\t%d WORKING sessions; a logout takes %s; at most %d at once\t-> logged_out\n", n, d.opts.Latency, instanceCap)
	f := faultySessions(n)
	fmt.Fprintf(w, "  \t%s: 503 twice, then works\t-> retried, logged_out (3 attempts)\n", f.flaky)
	fmt.Fprintf(w, "  \t%s: 429 with Retry-After: 1 once\t-> waits 1s, logged_out\n", f.limited)
	fmt.Fprintf(w, "  \t%s: connection reset once\t-> retried, logged_out\n", f.reset)
	fmt.Fprintf(w, "  \t%s: 503 for ever, %s: 502 for ever\t-> retries_exhausted after %d retries\n", f.always503, f.always502, MaxRetries)
	fmt.Fprintf(w, "  \tghost-1..3: not on the server\t-> not_found (nothing to do)\n")
	fmt.Fprintf(w, "  \t%s: scheduled in %s; %s: a single enqueue\t\n", sessionName(n), scheduleIn, sessionName(n-1))
	fmt.Fprintf(w, "  core\tWAHA Core: only the session \"default\" exists\t-> sales-bot: 422, rejected\n")
	fmt.Fprintf(w, "  locked\tits key was rotated; the worker has the old one\t-> 401, auth_failed\n")
	fmt.Fprintf(w, "  partner\tthe worker's key is scoped to partner-a, partner-b\t-> partner-c: 403, auth_failed\n")
	_ = w.Flush()
	fmt.Fprintf(d.info, "Retries: at most %d, backoff %s..%s with jitter (production defaults: 10, 2s..10m).\n\n", MaxRetries, retryBase, retryMax)
}

// enqueue enqueues the batches, a single logout and a scheduled one.
func (d *run) enqueue(ctx context.Context) error {
	n := d.opts.Sessions
	var wave1, wave2 []string
	for i := 1; i <= n-2; i++ {
		if i <= (n-2)/2 {
			wave1 = append(wave1, sessionName(i))
		} else {
			wave2 = append(wave2, sessionName(i))
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
	single, err := d.producer.Enqueue(ctx, tasks.LogoutRequest{Instance: "default", Session: sessionName(n - 1)})
	if err != nil {
		return fmt.Errorf("demo: enqueue: %w", err)
	}
	d.tasks = append(d.tasks, &task{id: single.ID, inst: "default", how: "single"})
	fmt.Fprintf(d.info, "Enqueued one logout of %s: task %s\n", single.Session, single.ID)
	sched, err := d.producer.Enqueue(ctx, tasks.LogoutRequest{Instance: "default", Session: sessionName(n), When: tasks.When{In: scheduleIn}})
	if err != nil {
		return fmt.Errorf("demo: enqueue: %w", err)
	}
	how := "in " + scheduleIn.String()
	d.tasks = append(d.tasks, &task{id: sched.ID, inst: "default", how: how})
	fmt.Fprintf(d.info, "Scheduled the logout of %s in %s: task %s\n", sched.Session, scheduleIn, sched.ID)
	// The same session again, now: wahaq answers with the live task.
	again, err := d.producer.Enqueue(ctx, tasks.LogoutRequest{Instance: "default", Session: sessionName(n)})
	if err != nil {
		return fmt.Errorf("demo: enqueue: %w", err)
	}
	if again.Deduplicated {
		fmt.Fprintf(d.info, "Enqueued %s again: deduplicated onto the scheduled task %s\n", again.Session, again.ID)
	} else {
		d.tasks = append(d.tasks, &task{id: again.ID, inst: "default", how: "single"})
	}
	fmt.Fprintln(d.info)
	return nil
}

// collectIDs learns the ids of the batches' tasks from asynq's pending and
// scheduled lists (nothing has run yet).
func (d *run) collectIDs(rdb redis.UniversalClient) error {
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
		pending, err := ai.ListPendingTasks(q, asynq.PageSize(MaxSessions+100))
		if err != nil && !errors.Is(err, asynq.ErrQueueNotFound) {
			return fmt.Errorf("demo: list the queue %s: %w", q, err)
		}
		sched, err := ai.ListScheduledTasks(q, asynq.PageSize(MaxSessions+100))
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
			d.tasks = append(d.tasks, &task{id: ti.ID, inst: p.Instance, how: how})
		}
	}
	return nil
}
