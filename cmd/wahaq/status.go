package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/wahaq/wahaq/tasks"
)

func init() { register(newStatusCmd) }

// Polling while waiting: every 200ms at first, growing to 1s.
const (
	pollFirst = 200 * time.Millisecond
	pollMax   = time.Second
)

func newStatusCmd() *cobra.Command {
	var (
		wait    bool
		timeout time.Duration
		asJSON  bool
	)
	cmd := &cobra.Command{
		Use:   "status TASK_ID [--wait [--timeout D]] [--json]",
		Short: "Show a task: state, outcome, attempts, last error, result",
		Long: `Show a logout task: its state, outcome, attempts, last error and WAHA's
answer. --json prints the task as the HTTP API returns it (GET /v1/tasks/{id}).

--wait long-polls (woken by the worker, no polling) until the task reaches a final state
(completed, dead or canceled), then prints it. --timeout bounds the wait.

Exit codes:
  0  the task was found; with --wait: it completed (logged_out or not_found)
  1  unknown task id (or its result expired after WAHAQ_RESULT_TTL); with
     --wait: the task ended dead or canceled, or --timeout passed (the task
     is printed all the same), or Redis does not answer
  2  bad usage, or a malformed task id`,
		Example: `  wahaq status 0b8e4f6a-5d0e-4a7c-9a57-2f1f0b2f7d11
  wahaq status "$id" --wait --timeout 5m --json | jq -r .outcome
  if wahaq status "$id" --wait; then echo logged out; fi`,
		Args: oneID("status", "TASK_ID", "the id that wahaq enqueue printed"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := args[0]
			if err := checkWaitFlags(wait, timeout); err != nil {
				return err
			}
			if err := tasks.ValidateTaskID(id); err != nil {
				return err
			}
			a, insp, err := newInspectorApp(cmd)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			var t *tasks.Task
			if wait {
				t, err = waitTask(ctx, insp, id, timeout)
			} else {
				t, err = insp.Task(ctx, id)
			}
			if t != nil {
				if perr := printTask(cmd.OutOrStdout(), t, asJSON); perr != nil {
					return perr
				}
			}
			if err != nil {
				return a.cliErr(ctx, taskErr(id, err))
			}
			if wait && t.State != tasks.StateCompleted {
				return fmt.Errorf("task %s ended %s%s", id, t.State, outcomeSuffix(t))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&wait, "wait", false, "wait until the task is completed, dead or canceled")
	f.DurationVar(&timeout, "timeout", 0, "with --wait: give up after this long (0: wait as long as it takes)")
	f.BoolVar(&asJSON, "json", false, "print the task as JSON (the HTTP API's shape)")
	return cmd
}

// oneID accepts exactly one positional argument.
func oneID(name, what, hint string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		switch len(args) {
		case 1:
			return nil
		case 0:
			return usagef("%s needs a %s: %s", name, what, hint)
		default:
			return usagef("%s takes one %s, got %d arguments", name, what, len(args))
		}
	}
}

// taskErr says "task X not found" for an unknown id.
func taskErr(id string, err error) error {
	if errors.Is(err, tasks.ErrNotFound) {
		return fmt.Errorf("task %s not found (unknown id, or its result expired after WAHAQ_RESULT_TTL): %w", id, tasks.ErrNotFound)
	}
	return err
}

func outcomeSuffix(t *tasks.Task) string {
	if t.Outcome != nil {
		return " (" + string(*t.Outcome) + ")"
	}
	return ""
}

// errWaitTimeout is returned when --timeout passes before the end.
var errWaitTimeout = errors.New("timed out")

// waitTask long-polls a task (tasks.Inspector.WaitTask: no Redis command
// while waiting, the finishing script wakes it) until it reaches a final
// state. On timeout or interruption it returns the task as last read with
// the error.
func waitTask(ctx context.Context, insp *tasks.Inspector, id string, timeout time.Duration) (*tasks.Task, error) {
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	defer insp.Close()
	var last *tasks.Task
	for {
		wait := tasks.MaxWait
		if !deadline.IsZero() {
			wait = min(wait, max(time.Until(deadline), 0))
		}
		t, err := insp.WaitTask(ctx, id, wait)
		if ctx.Err() != nil {
			if last == nil {
				return nil, fmt.Errorf("%w while waiting: task %s", errInterrupted, id)
			}
			return last, fmt.Errorf("%w while waiting: task %s is %s", errInterrupted, id, last.State)
		}
		if err != nil {
			return nil, err
		}
		last = t
		if t.State.Final() {
			return t, nil
		}
		if !deadline.IsZero() && !time.Now().Before(deadline) {
			return t, fmt.Errorf("task %s is still %s after %s: %w", id, t.State, timeout, errWaitTimeout)
		}
	}
}

// printTask prints a task as JSON or as a short summary for people.
func printTask(w io.Writer, t *tasks.Task, asJSON bool) error {
	if asJSON {
		return printJSON(w, t)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	line := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	line("task", t.ID)
	line("session", oneLine(t.Session+" on "+t.Instance, 0))
	line("state", string(t.State)+outcomeSuffix(t))
	line("attempts", fmt.Sprintf("%d (max retries %d)", t.Attempts, t.MaxRetries))
	if t.BatchID != nil {
		line("batch", *t.BatchID)
	}
	line("enqueued", fmtTime(&t.EnqueuedAt))
	if t.ScheduledFor != nil {
		line("scheduled for", fmtTime(t.ScheduledFor))
	}
	if t.NextAttemptAt != nil && !t.State.Final() {
		line("next attempt", fmtTime(t.NextAttemptAt))
	}
	if t.FinishedAt != nil {
		line("finished", fmtTime(t.FinishedAt))
	}
	if t.LastError != nil {
		line("last error", oneLine(*t.LastError, 0))
	}
	if r := t.Result; r != nil {
		msg := r.Status + ": " + oneLine(r.Message, 0)
		if r.HTTPStatus != 0 {
			msg += fmt.Sprintf(" (HTTP %d)", r.HTTPStatus)
		}
		line("result", msg)
	}
	if c := t.Confirmed; c != nil {
		// WAHA's session.status event (README "Confirmation from WAHA's events")
		line("confirmed", oneLine(c.Status, 0)+" at "+fmtTime(&c.At)+" (WAHA's event)")
	}
	if t.TraceID != nil {
		line("trace", *t.TraceID)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return printAttempts(w, t.AttemptsLog)
}

func fmtTime(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// oneLine makes s safe for a terminal (terminalSafe), folds it onto one
// line and, when max > 0, cuts it to max runes.
func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(terminalSafe(s)), " ")
	if r := []rune(s); max > 0 && len(r) > max {
		return string(r[:max-1]) + "…"
	}
	return s
}
