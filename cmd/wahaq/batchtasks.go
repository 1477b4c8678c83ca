package main

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/wahaq/wahaq/tasks"
)

func newBatchTasksCmd() *cobra.Command {
	var (
		state, outcome, cursor string
		limit                  int
		asJSON                 bool
	)
	cmd := &cobra.Command{
		Use:   "tasks BATCH_ID [--state S] [--outcome O] [--limit N] [--cursor C] [--json]",
		Short: "List a batch's tasks, by state and outcome",
		Long: `List the tasks of a batch in the order it created them, as a table: id,
session, state, outcome, attempts, finished at, last error. --state and
--outcome keep only the tasks in that state or with that outcome: --state dead
lists the sessions that failed and why. --json prints the page as the HTTP API
returns it (GET /v1/batches/{id}/tasks): {"tasks", "next_cursor"}.

A page holds at most --limit tasks; when there are more, the last line names
the --cursor of the next page. Sessions the batch request found with a live
task already (its "deduplicated" count) are not the batch's tasks.

Exit codes: 0 listed (even when empty); 1 unknown batch id, or Redis does not
answer; 2 bad usage, a malformed id, an unknown state or outcome.`,
		Example: `  wahaq batch tasks "$bid" --state dead
  wahaq batch tasks "$bid" --outcome not_found --limit 1000 --json | jq -r '.tasks[].session'`,
		Args: oneID("batch tasks", "BATCH_ID", "the id that wahaq bulk printed"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := args[0]
			if limit < 1 || limit > tasks.MaxPageLimit {
				return usagef("--limit must be from 1 to %d", tasks.MaxPageLimit)
			}
			f := tasks.TaskFilter{State: tasks.State(state), Outcome: tasks.Outcome(outcome)}
			if err := f.Validate(); err != nil {
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
			page, err := insp.BatchTasks(ctx, id, f, tasks.Page{Cursor: cursor, Limit: limit})
			if err != nil {
				return a.cliErr(ctx, batchErr(id, err))
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), page)
			}
			return printTaskPage(cmd.OutOrStdout(), page)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&state, "state", "", "only tasks in this state (scheduled, pending, active, retrying, completed, dead, canceled)")
	fl.StringVar(&outcome, "outcome", "", "only tasks with this outcome (logged_out, not_found, auth_failed, rejected, retries_exhausted, archived)")
	fl.IntVar(&limit, "limit", tasks.DefaultPageLimit, fmt.Sprintf("at most this many (1 to %d)", tasks.MaxPageLimit))
	fl.StringVar(&cursor, "cursor", "", "start at this page (the cursor the previous page named)")
	fl.BoolVar(&asJSON, "json", false, "print the page as JSON (the HTTP API's shape)")
	return cmd
}

func printTaskPage(w io.Writer, page *tasks.TaskPage) error {
	if len(page.Tasks) > 0 {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSESSION\tSTATE\tOUTCOME\tATTEMPTS\tFINISHED_AT\tLAST_ERROR")
		for _, t := range page.Tasks {
			outcome, lastErr := outcomeAndError(t)
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", oneLine(t.ID, 0), oneLine(t.Session, 0), t.State, outcome, t.Attempts, fmtTime(t.FinishedAt), lastErr)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	msg := fmt.Sprintf("%d tasks", len(page.Tasks))
	if len(page.Tasks) == 1 {
		msg = "1 task"
	}
	if len(page.Tasks) == 0 {
		msg = "no tasks match"
		if page.NextCursor != "" {
			msg = "no tasks match in this part of the batch"
		}
	}
	if page.NextCursor != "" {
		msg += fmt.Sprintf("; next page: --cursor %s", page.NextCursor)
	}
	_, err := fmt.Fprintln(w, msg)
	return err
}
