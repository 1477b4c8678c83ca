package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/wahaq/wahaq/internal/audit"
	"github.com/wahaq/wahaq/tasks"
)

func init() { register(newDLQCmd) }

// DLQ paging limits, as in the HTTP API.
const (
	dlqDefaultLimit = 100
	dlqMaxLimit     = 1000
)

// Requeueing a dead letter that asynq is still archiving answers "busy";
// the CLI tries those again this many times, this far apart.
const (
	requeueBusyTries = 10
	requeueBusyDelay = 200 * time.Millisecond
)

func newDLQCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dlq (list | requeue | purge)",
		Short: "Look at, replay or purge the dead-letter queue",
		Long: `The dead-letter queue holds the tasks that ended dead: auth_failed (401/403
from WAHA or the validation service), rejected (WAHA refused for good) and
retries_exhausted, and archived (archived in asynq's tools; a worker's
reconciler moved it here). Nothing leaves it until a person requeues or purges it.`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usagef("unknown dlq subcommand %q: use list, requeue or purge", args[0])
			}
			return usagef("dlq needs a subcommand: list, requeue or purge")
		},
		RunE: func(*cobra.Command, []string) error { return nil },
	}
	cmd.AddCommand(newDLQListCmd(), newDLQRequeueCmd(), newDLQPurgeCmd())
	return cmd
}

func newDLQListCmd() *cobra.Command {
	var (
		instance, batch string
		limit, offset   int64
		asJSON          bool
	)
	cmd := &cobra.Command{
		Use:   "list [--instance I] [--batch ID] [--limit N] [--offset N] [--json]",
		Short: "List dead letters, oldest first",
		Long: `List dead letters by instance, oldest first, as a table: id, instance,
session, outcome, attempts, finished at, last error. --batch keeps the dead
letters of one batch (also after the batch itself expired; it reads every dead
letter's batch). --json prints the page as the HTTP API returns it
(GET /v1/dlq): {"tasks", "total", "next_offset"}.

Exit codes: 0 listed (even when empty); 1 Redis does not answer; 2 bad usage.`,
		Example: `  wahaq dlq list
  wahaq dlq list --instance eu --limit 1000 --json | jq -r '.tasks[].id'
  wahaq dlq list --batch "$bid"`,
		Args: noArgs("dlq list", "filter with --instance"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if limit < 1 || limit > dlqMaxLimit {
				return usagef("--limit must be from 1 to %d", dlqMaxLimit)
			}
			if offset < 0 {
				return usagef("--offset must not be negative")
			}
			if batch != "" {
				if err := tasks.ValidateBatchID(batch); err != nil {
					return err
				}
			}
			a, insp, err := newInspectorApp(cmd)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			var page *tasks.DeadLetterPage
			if batch != "" {
				page, err = insp.DeadLettersOfBatch(ctx, instance, batch, offset, limit)
			} else {
				page, err = insp.DeadLetters(ctx, instance, offset, limit)
			}
			if err != nil {
				return a.cliErr(ctx, err)
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), page)
			}
			if batch != "" && page.Total == 0 {
				_, err := fmt.Fprintf(cmd.OutOrStdout(), "batch %s has no dead letters\n", batch)
				return err
			}
			return printDeadLetters(cmd.OutOrStdout(), page, offset)
		},
	}
	f := cmd.Flags()
	f.StringVar(&instance, "instance", "", "only this WAHA server's dead letters (default: every instance)")
	f.StringVar(&batch, "batch", "", "only the dead letters of this batch")
	f.Int64Var(&limit, "limit", dlqDefaultLimit, fmt.Sprintf("at most this many (1 to %d)", dlqMaxLimit))
	f.Int64Var(&offset, "offset", 0, "skip this many (the next_offset of the previous page)")
	f.BoolVar(&asJSON, "json", false, "print the page as JSON (the HTTP API's shape)")
	return cmd
}

func printDeadLetters(w io.Writer, page *tasks.DeadLetterPage, offset int64) error {
	if page.Total == 0 {
		_, err := fmt.Fprintln(w, "the dead-letter queue is empty")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tINSTANCE\tSESSION\tOUTCOME\tATTEMPTS\tFINISHED_AT\tLAST_ERROR")
	for _, t := range page.Tasks {
		outcome, lastErr := outcomeAndError(t)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", oneLine(t.ID, 0), oneLine(t.Instance, 0), oneLine(t.Session, 0), outcome, t.Attempts, fmtTime(t.FinishedAt), lastErr)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	from, to := offset+1, offset+int64(len(page.Tasks))
	msg := fmt.Sprintf("%d-%d of %d dead letters", from, to, page.Total)
	if len(page.Tasks) == 0 {
		msg = fmt.Sprintf("no dead letters past offset %d; there are %d", offset, page.Total)
	}
	if page.NextOffset >= 0 {
		msg += fmt.Sprintf("; next page: --offset %d", page.NextOffset)
	}
	_, err := fmt.Fprintln(w, msg)
	return err
}

// selectionEntry is the audit entry of a requeue or purge of sel.
func selectionEntry(action string, sel tasks.Selection) audit.Entry {
	e := audit.Entry{Action: action, Target: audit.Target{Instance: sel.Instance},
		Params: map[string]any{"all": sel.All, "ids": len(sel.IDs)}}
	if sel.Outcome != "" {
		e.Params["outcome"] = sel.Outcome
	}
	if len(sel.IDs) == 1 {
		e.Target.Task = sel.IDs[0]
	}
	return e
}

// selectionFlags are the flags shared by requeue and purge.
type selectionFlags struct {
	all      bool
	instance string
	outcome  string
}

func (s *selectionFlags) add(cmd *cobra.Command) {
	f := cmd.Flags()
	f.BoolVar(&s.all, "all", false, "every dead letter (of --instance, with --outcome, when given)")
	f.StringVar(&s.instance, "instance", "", "only this WAHA server's dead letters")
	f.StringVar(&s.outcome, "outcome", "", "only dead letters with this outcome: auth_failed, rejected, retries_exhausted or archived")
}

func (s *selectionFlags) selection(verb string, ids []string) (tasks.Selection, error) {
	sel := tasks.Selection{IDs: ids, All: s.all, Instance: s.instance, Outcome: tasks.Outcome(s.outcome)}
	if s.all == (len(ids) > 0) {
		return sel, usagef("give task ids to %s, or --all, not both or neither", verb)
	}
	switch sel.Outcome {
	case "", tasks.OutcomeAuthFailed, tasks.OutcomeRejected, tasks.OutcomeRetriesExhausted, tasks.OutcomeArchived:
	default:
		return sel, usagef("--outcome %q is not a dead-letter outcome: use auth_failed, rejected, retries_exhausted or archived", s.outcome)
	}
	for _, id := range ids {
		if err := tasks.ValidateTaskID(id); err != nil {
			return sel, err
		}
	}
	return sel, nil
}

// requeueResponse is the HTTP API's answer to POST /v1/dlq/requeue.
type requeueResponse struct {
	Results  []tasks.RequeueResult `json:"results"`
	Requeued int                   `json:"requeued"`
}

func newDLQRequeueCmd() *cobra.Command {
	var (
		sf     selectionFlags
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "requeue (--all [--outcome O] [--instance I] | TASK_ID...) [--json]",
		Short: "Put dead letters back in the queue with fresh retries",
		Long: `Put dead letters back in the queue with fresh retries, under the same ids.
Fix the cause first (e.g. the WAHA key for auth_failed), then requeue.

A dead letter whose session meanwhile got another live logout task is closed
in its favour instead (counted as deduplicated). A task that died a moment ago
may still be being archived (busy); wahaq tries those again for a few seconds.
An id that is not in the dead-letter queue rejects the whole request.

Prints the counts: requeued, deduplicated, busy. --json prints the HTTP API's
answer (POST /v1/dlq/requeue): {"results": [{"id", "status", "live_id"}],
"requeued"}.

Exit codes: 0 done; 1 some dead letters stayed busy, an id is unknown, or
Redis does not answer; 2 bad usage, or an id that is not a dead letter.`,
		Example: `  wahaq dlq requeue 0b8e4f6a-5d0e-4a7c-9a57-2f1f0b2f7d11
  wahaq dlq requeue --all --outcome auth_failed`,
		RunE: func(cmd *cobra.Command, ids []string) error {
			sel, err := sf.selection("requeue", ids)
			if err != nil {
				return err
			}
			a, insp, err := newInspectorApp(cmd)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			results, err := requeueAll(ctx, insp, sel)
			entry := selectionEntry("dlq.requeue", sel)
			if err != nil {
				a.audit(ctx, entry, err)
				return a.cliErr(ctx, err)
			}
			resp := requeueResponse{Results: results}
			counts := map[tasks.RequeueStatus]int{}
			entry.Result = map[string]int64{}
			for _, r := range results {
				counts[r.Status]++
				entry.Result[string(r.Status)]++
			}
			a.audit(ctx, entry, nil)
			resp.Requeued = counts[tasks.Requeued]
			if asJSON {
				if err := printJSON(cmd.OutOrStdout(), resp); err != nil {
					return err
				}
			} else {
				out := cmd.OutOrStdout()
				if len(results) == 0 {
					fmt.Fprintln(out, "nothing to requeue: no dead letter matches")
				}
				for _, r := range results {
					switch r.Status {
					case tasks.RequeueSuperseded:
						fmt.Fprintf(out, "%s: deduplicated: the session already has live task %s\n", r.ID, r.LiveID)
					case tasks.RequeueNotDead:
						fmt.Fprintf(out, "%s: not in the dead-letter queue any more\n", r.ID)
					case tasks.RequeueBusy:
						fmt.Fprintf(out, "%s: busy: still being archived\n", r.ID)
					}
				}
				fmt.Fprintf(out, "requeued %d, deduplicated %d, busy %d", counts[tasks.Requeued], counts[tasks.RequeueSuperseded], counts[tasks.RequeueBusy])
				if n := counts[tasks.RequeueNotDead]; n > 0 {
					fmt.Fprintf(out, ", gone %d", n)
				}
				fmt.Fprintln(out)
			}
			if n := counts[tasks.RequeueBusy]; n > 0 {
				return fmt.Errorf("%d dead letters were still being archived by asynq; run the same command again", n)
			}
			return nil
		},
	}
	sf.add(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the results as JSON (the HTTP API's shape)")
	return cmd
}

// requeueAll requeues, then tries the busy ones again for a while.
func requeueAll(ctx context.Context, insp *tasks.Inspector, sel tasks.Selection) ([]tasks.RequeueResult, error) {
	results, err := insp.Requeue(ctx, sel)
	if err != nil {
		return nil, err
	}
	for try := 0; try < requeueBusyTries; try++ {
		var busy []string
		at := map[string]int{}
		for i, r := range results {
			if r.Status == tasks.RequeueBusy {
				busy = append(busy, r.ID)
				at[r.ID] = i
			}
		}
		if len(busy) == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return results, nil
		case <-time.After(requeueBusyDelay):
		}
		again, err := insp.Requeue(ctx, tasks.Selection{IDs: busy, Instance: sel.Instance})
		if err != nil {
			return nil, err
		}
		for _, r := range again {
			results[at[r.ID]] = r
		}
	}
	return results, nil
}

// purgeResponse is the HTTP API's answer to DELETE /v1/dlq.
type purgeResponse struct {
	Purged int `json:"purged"`
}

func newDLQPurgeCmd() *cobra.Command {
	var (
		sf     selectionFlags
		yes    bool
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "purge (--all [--outcome O] [--instance I] | TASK_ID...) [--yes] [--json]",
		Short: "Delete dead letters for good",
		Long: `Delete dead letters for good: their tasks can no longer be requeued or read.

With --all, wahaq asks for confirmation on a terminal; give --yes to skip the
question (required when standard input is not a terminal). Purging named ids
asks nothing. An id that is not in the dead-letter queue rejects the whole
request and purges nothing.

Prints how many were purged; --json prints the HTTP API's answer
(DELETE /v1/dlq): {"purged": N}.

Exit codes: 0 purged (or declined at the prompt); 1 an id is unknown or Redis
does not answer; 2 bad usage, --all without --yes off a terminal, or an id
that is not a dead letter.`,
		Example: `  wahaq dlq purge 0b8e4f6a-5d0e-4a7c-9a57-2f1f0b2f7d11
  wahaq dlq purge --all --outcome rejected --yes`,
		RunE: func(cmd *cobra.Command, ids []string) error {
			sel, err := sf.selection("purge", ids)
			if err != nil {
				return err
			}
			stdin := cmd.InOrStdin()
			if sel.All && !yes && !isTTY(stdin) {
				return usagef("dlq purge --all deletes dead letters for good: add --yes to confirm (standard input is not a terminal, so wahaq cannot ask)")
			}
			a, insp, err := newInspectorApp(cmd)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if sel.All && !yes {
				ok, err := confirmPurge(ctx, cmd, insp, sel)
				if err != nil {
					return a.cliErr(ctx, err)
				}
				if !ok {
					fmt.Fprintln(cmd.ErrOrStderr(), "nothing purged")
					return nil
				}
			}
			n, err := insp.Purge(ctx, sel)
			entry := selectionEntry("dlq.purge", sel)
			entry.Result = map[string]int64{"purged": int64(n)}
			a.audit(ctx, entry, err)
			if err != nil {
				return a.cliErr(ctx, err)
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), purgeResponse{Purged: n})
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "purged %d dead letters\n", n)
			return err
		},
	}
	sf.add(cmd)
	cmd.Flags().BoolVar(&yes, "yes", false, "do not ask for confirmation")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print {\"purged\": N} (the HTTP API's shape)")
	return cmd
}

// confirmPurge asks on the terminal before purging --all.
func confirmPurge(ctx context.Context, cmd *cobra.Command, insp *tasks.Inspector, sel tasks.Selection) (bool, error) {
	page, err := insp.DeadLetters(ctx, sel.Instance, 0, 0)
	if err != nil {
		return false, err
	}
	scope := ""
	if sel.Instance != "" {
		scope = " of " + sel.Instance
	}
	what := fmt.Sprintf("all %d dead letters%s", page.Total, scope)
	if sel.Outcome != "" {
		what = fmt.Sprintf("every dead letter%s with outcome %s (%d dead letters in all)", scope, sel.Outcome, page.Total)
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "Purge %s for good? They cannot be requeued afterwards. [y/N] ", what)
	line, _ := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
	ans := strings.ToLower(strings.TrimSpace(line))
	return ans == "y" || ans == "yes", nil
}

// outcomeAndError are a task's outcome and last error as the CLI's tables
// show them: "-" when absent, the error on one line of at most 80 runes.
func outcomeAndError(t *tasks.Task) (outcome, lastErr string) {
	outcome, lastErr = "-", "-"
	if t.Outcome != nil {
		outcome = string(*t.Outcome)
	}
	if t.LastError != nil {
		lastErr = oneLine(*t.LastError, 80)
	}
	return outcome, lastErr
}
