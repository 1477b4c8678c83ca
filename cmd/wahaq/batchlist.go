package main

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/wahaq/wahaq/tasks"
)

// batchListJSON is the shape of GET /v1/batches.
type batchListJSON struct {
	Batches []*tasks.Batch `json:"batches"`
}

func newBatchListCmd() *cobra.Command {
	var (
		limit  int
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "list [--limit N] [--json]",
		Short: "List the recent batches, newest first",
		Long: `List the recent batches of every WAHA server, newest first: every batch,
whoever made it (wahaq bulk, the HTTP API, n8n, a schedule, a discovery, the
console), until it expires WAHAQ_RESULT_TTL after it is done. As a table: id,
instance, created at, status, final/total. --json prints the answer of
GET /v1/batches: {"batches": [...]}.

Exit codes: 0 listed (even when empty); 1 Redis does not answer; 2 bad usage.`,
		Example: `  wahaq batch list
  wahaq batch list --limit 5 --json | jq -r '.batches[].batch_id'`,
		Args: noArgs("batch list", "give --limit"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if limit < 1 || limit > tasks.MaxRecentBatches {
				return usagef("--limit must be from 1 to %d", tasks.MaxRecentBatches)
			}
			a, insp, err := newInspectorApp(cmd)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			bs, err := insp.RecentBatches(ctx, limit)
			if err != nil {
				return a.cliErr(ctx, err)
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), batchListJSON{Batches: bs})
			}
			return printBatchList(cmd.OutOrStdout(), bs)
		},
	}
	f := cmd.Flags()
	f.IntVar(&limit, "limit", 20, fmt.Sprintf("at most this many (1 to %d)", tasks.MaxRecentBatches))
	f.BoolVar(&asJSON, "json", false, "print the list as JSON (the HTTP API's shape)")
	return cmd
}

func printBatchList(w io.Writer, bs []*tasks.Batch) error {
	if len(bs) == 0 {
		_, err := fmt.Fprintln(w, "no batches (finished ones expire WAHAQ_RESULT_TTL after they are done)")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tINSTANCE\tCREATED_AT\tSTATUS\tFINAL/TOTAL")
	for _, b := range bs {
		status := "in progress"
		switch {
		case b.Discovering:
			status = "listing sessions"
		case b.Done && b.Interrupted:
			status = "done (interrupted)"
		case b.Done:
			status = "done"
		case b.Paused:
			status = "paused"
		case b.ScheduledFor != nil && b.Counts[tasks.StateScheduled] > 0:
			status = "scheduled " + fmtTime(b.ScheduledFor)
		}
		created := b.CreatedAt
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d/%d\n", oneLine(b.BatchID, 0), oneLine(b.Instance, 0), fmtTime(&created), status, finalCount(b), b.Total)
	}
	return tw.Flush()
}
