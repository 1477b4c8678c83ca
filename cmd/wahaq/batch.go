package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/wahaq/wahaq/tasks"
	"github.com/wahaq/wahaq/wahaclient"
)

func init() { register(newBatchCmd) }

// plainEvery is how often --wait prints a progress line when its output is
// not a terminal.
const plainEvery = 2 * time.Second

func newBatchCmd() *cobra.Command {
	var (
		wait    bool
		timeout time.Duration
		asJSON  bool
	)
	cmd := &cobra.Command{
		Use:   "batch BATCH_ID [--wait [--timeout D]] [--json] | batch cancel|pause|resume BATCH_ID | batch tasks BATCH_ID | batch list",
		Short: "Show a bulk teardown's progress: counts by state and outcome",
		Long: `Show a bulk teardown (a batch made by wahaq bulk, POST /v1/batches or a
schedule): how many of its tasks are in each state and outcome. --json prints
the batch as the HTTP API returns it (GET /v1/batches/{id}).

--wait follows the batch until every task is completed, dead or canceled. On a
terminal it shows a progress bar (done/total, rate, ETA); otherwise it prints a
line every 2 seconds. With --json the progress goes to stderr and only the
final batch goes to stdout.

Exit codes: 0 the batch was found (with --wait: it is done, whatever the
outcomes: read the counts); 1 unknown batch id, the session listing of an
--all batch failed, --timeout passed, or Redis does not answer; 2 bad usage or
a malformed id.`,
		Example: `  wahaq batch 7d6a3c1e-6b55-4d0b-8f55-3c2e8e1b9a40
  wahaq batch "$bid" --wait
  wahaq batch "$bid" --wait --json | jq .outcomes`,
		Args: oneID("batch", "BATCH_ID", "the id that wahaq bulk printed"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := args[0]
			if err := checkWaitFlags(wait, timeout); err != nil {
				return err
			}
			if err := tasks.ValidateBatchID(id); err != nil {
				return err
			}
			a, insp, err := newInspectorApp(cmd)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if wait {
				return a.cliErr(ctx, followBatch(ctx, cmd, insp, id, timeout, asJSON))
			}
			b, err := insp.Batch(ctx, id)
			if err != nil {
				return a.cliErr(ctx, batchErr(id, err))
			}
			return printBatch(cmd.OutOrStdout(), b, asJSON)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&wait, "wait", false, "follow the batch until every task is completed, dead or canceled")
	f.DurationVar(&timeout, "timeout", 0, "with --wait: give up after this long (0: wait as long as it takes)")
	f.BoolVar(&asJSON, "json", false, "print the batch as JSON (the HTTP API's shape)")
	cmd.AddCommand(newBatchCancelCmd(), newBatchPauseCmd(true), newBatchPauseCmd(false), newBatchTasksCmd(), newBatchListCmd())
	return cmd
}

func batchErr(id string, err error) error {
	if errors.Is(err, tasks.ErrNotFound) {
		return fmt.Errorf("batch %s not found (unknown id, or it expired WAHAQ_RESULT_TTL after it finished): %w", id, tasks.ErrNotFound)
	}
	return err
}

// followBatch waits for a batch to be done, showing progress, then prints
// it. Progress goes to stdout, or to stderr with --json.
func followBatch(ctx context.Context, cmd *cobra.Command, insp *tasks.Inspector, id string, timeout time.Duration, asJSON bool) error {
	progress := cmd.OutOrStdout()
	if asJSON {
		progress = cmd.ErrOrStderr()
	}
	b, err := waitBatch(ctx, insp, id, timeout, progress)
	if b != nil {
		if perr := printBatch(cmd.OutOrStdout(), b, asJSON); perr != nil {
			return perr
		}
	}
	if err != nil {
		return batchErr(id, err)
	}
	if b.Error != "" {
		return fmt.Errorf("batch %s: %s", id, b.Error)
	}
	return nil
}

// isTTY reports whether v (a writer or a reader) is a terminal.
func isTTY(v any) bool {
	f, ok := v.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// waitBatch polls a batch until it is done, reporting progress on w: a
// progress bar when w is a terminal, else a line every plainEvery.
func waitBatch(ctx context.Context, insp *tasks.Inspector, id string, timeout time.Duration, w io.Writer) (*tasks.Batch, error) {
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	var bar *progressbar.ProgressBar
	defer func() {
		if bar != nil {
			_ = bar.Exit()
			fmt.Fprintln(w)
		}
	}()
	tty := isTTY(w)
	var lastLine time.Time
	delay := pollFirst
	for {
		b, err := insp.Batch(ctx, id)
		if err != nil {
			return nil, err
		}
		done := finalCount(b)
		switch {
		case tty && bar == nil && !(b.Done && b.Total == 0):
			max := b.Total
			if b.Discovering {
				max = -1
			}
			bar = progressbar.NewOptions64(max,
				progressbar.OptionSetWriter(w),
				progressbar.OptionSetDescription("batch "+shortID(id)),
				progressbar.OptionShowCount(),
				progressbar.OptionShowIts(),
				progressbar.OptionSetItsString("tasks"),
				progressbar.OptionSetPredictTime(true),
				progressbar.OptionThrottle(100*time.Millisecond),
				progressbar.OptionSetRenderBlankState(true),
			)
			_ = bar.Set64(done)
		case tty && bar != nil:
			if !b.Discovering && bar.GetMax64() != b.Total {
				bar.ChangeMax64(b.Total)
			}
			_ = bar.Set64(done)
		case !tty && (lastLine.IsZero() || time.Since(lastLine) >= plainEvery || b.Done):
			fmt.Fprintln(w, progressLine(b))
			lastLine = time.Now()
		}
		if b.Done {
			if bar != nil {
				_ = bar.Finish()
			}
			return b, nil
		}
		if !deadline.IsZero() && time.Now().After(deadline) {
			return b, fmt.Errorf("batch %s is not done after %s (%d of %d tasks final): %w", id, timeout, done, b.Total, errWaitTimeout)
		}
		// A long-poll as long as the progress refresh: it returns at once
		// when the batch is done (the finishing script wakes it).
		if _, err := insp.WaitBatch(ctx, id, delay); ctx.Err() != nil {
			return b, fmt.Errorf("%w while waiting: batch %s has %d of %d tasks final", errInterrupted, id, done, b.Total)
		} else if err != nil {
			return b, err
		}
		delay = min(delay*3/2, pollMax)
	}
}

func finalCount(b *tasks.Batch) int64 {
	return b.Counts[tasks.StateCompleted] + b.Counts[tasks.StateDead] + b.Counts[tasks.StateCanceled]
}

func shortID(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

// progressLine is the plain progress report: one line.
func progressLine(b *tasks.Batch) string {
	c := b.Counts
	if b.Discovering {
		return fmt.Sprintf("batch %s: listing the sessions of %s…", b.BatchID, b.Instance)
	}
	s := fmt.Sprintf("batch %s: %d/%d done (completed %d, dead %d, canceled %d)",
		b.BatchID, finalCount(b), b.Total, c[tasks.StateCompleted], c[tasks.StateDead], c[tasks.StateCanceled])
	if b.Done {
		return s
	}
	if b.Paused {
		s += ", paused"
	}
	return s + fmt.Sprintf(", %d to go (scheduled %d, pending %d, active %d, retrying %d)",
		b.Total-finalCount(b), c[tasks.StateScheduled], c[tasks.StatePending], c[tasks.StateActive], c[tasks.StateRetrying])
}

// printBatch prints a batch as JSON or as a summary for people.
func printBatch(w io.Writer, b *tasks.Batch, asJSON bool) error {
	if asJSON {
		return printJSON(w, b)
	}
	c := b.Counts
	status := "in progress"
	switch {
	case b.Discovering:
		status = "listing the server's sessions"
	case b.Done:
		status = "done"
	case b.Paused:
		status = fmt.Sprintf("paused since %s by %s", fmtTime(b.PausedAt), b.PausedBy)
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "batch %s on %s: %s, %d of %d tasks final\n", b.BatchID, b.Instance, status, finalCount(b), b.Total)
	fmt.Fprintf(&sb, "  completed %d%s\n", c[tasks.StateCompleted], outcomeList(b, tasks.OutcomeLoggedOut, tasks.OutcomeNotFound))
	fmt.Fprintf(&sb, "  dead      %d%s\n", c[tasks.StateDead], outcomeList(b, tasks.OutcomeAuthFailed, tasks.OutcomeRejected, tasks.OutcomeRetriesExhausted, tasks.OutcomeArchived))
	fmt.Fprintf(&sb, "  canceled  %d\n", c[tasks.StateCanceled])
	if !b.Done {
		fmt.Fprintf(&sb, "  to go     %d (scheduled %d, pending %d, active %d, retrying %d)\n", b.Total-finalCount(b),
			c[tasks.StateScheduled], c[tasks.StatePending], c[tasks.StateActive], c[tasks.StateRetrying])
	}
	if b.ScheduledFor != nil {
		fmt.Fprintf(&sb, "  scheduled for %s\n", fmtTime(b.ScheduledFor))
	}
	if b.Deduplicated > 0 {
		fmt.Fprintf(&sb, "  %d requested sessions already had a logout task and are not part of this batch\n", b.Deduplicated)
	}
	if len(b.Skipped) > 0 {
		fmt.Fprintf(&sb, "  skipped   %d listing entries that are not sessions%s\n", skippedTotal(b), skippedList(b))
	}
	if b.Interrupted {
		fmt.Fprintf(&sb, "  interrupted: closed before its producer had enqueued every session; it holds %d tasks\n", b.Total)
	}
	if b.Error != "" {
		fmt.Fprintf(&sb, "  error: %s\n", oneLine(b.Error, 0))
	}
	if c[tasks.StateDead] > 0 {
		fmt.Fprintf(&sb, "  dead tasks are in the dead-letter queue: wahaq batch tasks %s --state dead\n", b.BatchID)
	}
	_, err := io.WriteString(w, sb.String())
	return err
}

func outcomeList(b *tasks.Batch, outs ...tasks.Outcome) string {
	var parts []string
	for _, o := range outs {
		if n := b.Outcomes[o]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", o, n))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

func skippedTotal(b *tasks.Batch) int64 {
	var n int64
	for _, v := range b.Skipped {
		n += v
	}
	return n
}

// skippedList renders the skip reasons in wahaclient's fixed order, e.g.
// " (bad_name 3, not_object 1)".
func skippedList(b *tasks.Batch) string {
	var parts []string
	for _, r := range wahaclient.SkipReasons {
		if n := b.Skipped[r]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", r, n))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, ", ") + ")"
}
