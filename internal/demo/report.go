package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/wahaq/wahaq/tasks"
)

// refresh reads every task.
func (d *run) refresh(ctx context.Context) error {
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
func (d *run) wait(ctx context.Context) error {
	start := time.Now()
	tty := isTerminal(d.info)
	tick := time.NewTicker(poll)
	defer tick.Stop()
	lastPrint := time.Time{}
	deadline := start.Add(timeout)
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
			return fmt.Errorf("%w (%s)", ErrTimeout, timeout)
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

func (d *run) allDone(ctx context.Context) (bool, error) {
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

func (d *run) summaryLine(elapsed time.Duration) string {
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
	fmt.Fprintf(&b, "  | WAHA default: %d/%d in flight", d.byName["default"].fake.InFlight(), instanceCap)
	return b.String()
}

// report prints the final table (or JSON), the tally and the dead letters.
func (d *run) report(ctx context.Context) error {
	order := map[string]int{}
	for i, in := range d.insts {
		order[in.name] = i
	}
	slices.SortStableFunc(d.tasks, func(a, b *task) int {
		if c := order[a.inst] - order[b.inst]; c != 0 {
			return c
		}
		return strings.Compare(a.task.Session, b.task.Session)
	})
	if d.opts.JSON {
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
				t.task.Attempts, d.byName[t.inst].fake.LogoutCalls(t.task.Session), message(t.task))
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
		d.byName["default"].fake.MaxInFlight(), instanceCap)
	fmt.Fprintf(d.info, "Dead-letter queue: %d tasks, kept until a person requeues or purges them.\n", page.Total)
	fmt.Fprintln(d.info, "In production: wahaq dlq list / wahaq dlq requeue --all")
	return nil
}

// message is the result's sentence, or the last error, cut to fit a row.
func message(t *tasks.Task) string {
	msg := ""
	switch {
	case t.Result != nil:
		msg = t.Result.Message
	case t.LastError != nil:
		msg = *t.LastError
	}
	msg = strings.Join(strings.Fields(msg), " ")
	if r := []rune(msg); len(r) > messageWidth {
		msg = string(r[:messageWidth-1]) + "…"
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
