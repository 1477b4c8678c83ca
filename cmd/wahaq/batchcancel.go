package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/wahaq/wahaq/internal/audit"
	"github.com/wahaq/wahaq/tasks"
)

func newBatchCancelCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "cancel BATCH_ID [--json]",
		Short: "Cancel every task of a batch that has not started",
		Long: `Cancel every task of a batch that is still scheduled or pending. Tasks that
have started (active, or retrying after a failed attempt) run to their end;
tasks already final stay as they are. The batch then reads done once its
started tasks finish. --json prints the answer of DELETE /v1/batches/{id}:
{"batch_id": …, "canceled": n, "already_started": m, "already_final": k}.

Use it on the batch id that wahaq bulk printed, also after a bulk that was
interrupted (killed, or Redis failed part way).

Exit codes: 0 done (whatever the counts); 1 unknown batch id, or Redis does
not answer; 2 bad usage or a malformed id.`,
		Example: `  wahaq batch cancel 7d6a3c1e-6b55-4d0b-8f55-3c2e8e1b9a40`,
		Args:    oneID("batch cancel", "BATCH_ID", "the id that wahaq bulk printed"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := args[0]
			if err := tasks.ValidateBatchID(id); err != nil {
				return err
			}
			a, p, err := newProducerApp(cmd)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			c, err := p.CancelBatch(ctx, id)
			entry := audit.Entry{Action: "batch.cancel", Target: audit.Target{Batch: id}}
			if err == nil {
				entry.Result = map[string]int64{"canceled": c.Canceled, "already_started": c.AlreadyStarted, "already_final": c.AlreadyFinal}
			}
			a.audit(ctx, entry, err)
			if err != nil {
				return a.cliErr(ctx, batchErr(id, err))
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), c)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "batch %s: canceled %d tasks; %d had already started (they run to their end); %d were already final\n",
				id, c.Canceled, c.AlreadyStarted, c.AlreadyFinal)
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the answer as JSON (the HTTP API's shape)")
	return cmd
}
