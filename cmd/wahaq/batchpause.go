package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/wahaq/wahaq/internal/audit"

	"github.com/wahaq/wahaq/tasks"
)

// newBatchPauseCmd is `wahaq batch pause` (pause true) or `wahaq batch
// resume` (pause false).
func newBatchPauseCmd(pause bool) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "pause BATCH_ID [--json]",
		Short: "Pause a batch: none of its tasks starts until it is resumed",
		Long: `Pause a batch: none of its tasks starts until wahaq batch resume; tasks in
flight finish. Its tasks are neither canceled nor failed and spend no retry;
they stay paused across worker restarts. wahaq batch shows it paused, with
when and by whom (cli:<your user>), and the batch reads done only once every task really is
final. Tasks an "all" batch still being discovered adds are held too.
--json prints the answer of POST /v1/batches/{id}/pause.

Exit codes: 0 paused (or already paused); 1 unknown batch id, the batch is
done, or Redis does not answer; 2 bad usage or a malformed id.`,
		Example: `  wahaq batch pause 7d6a3c1e-6b55-4d0b-8f55-3c2e8e1b9a40`,
		Args:    oneID("batch pause", "BATCH_ID", "the id that wahaq bulk printed"),
	}
	if !pause {
		cmd.Use = "resume BATCH_ID [--json]"
		cmd.Short = "Resume a paused batch: its tasks go back into the queue in their order"
		cmd.Long = `Resume a paused batch: its held tasks go back into the queue in their order
(pending ones behind what is queued now, scheduled and retrying ones at their
time) and start again. --json prints the answer of
POST /v1/batches/{id}/resume.

Exit codes: 0 resumed (or it was not paused); 1 unknown batch id, or Redis
does not answer; 2 bad usage or a malformed id.`
		cmd.Example = `  wahaq batch resume 7d6a3c1e-6b55-4d0b-8f55-3c2e8e1b9a40`
		cmd.Args = oneID("batch resume", "BATCH_ID", "the id that wahaq bulk printed")
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		id := args[0]
		if err := tasks.ValidateBatchID(id); err != nil {
			return err
		}
		a, p, err := newProducerApp(cmd)
		if err != nil {
			return err
		}
		ctx := tasks.WithActor(cmd.Context(), audit.CLIActor())
		call, entry := p.ResumeBatch, audit.Entry{Action: "batch.resume", Target: audit.Target{Batch: id}}
		if pause {
			call, entry.Action = p.PauseBatch, "batch.pause"
		}
		r, err := call(ctx, id)
		if err == nil {
			changed := int64(0)
			if r.Changed {
				changed = 1
			}
			entry.Target.Instance, entry.Result = r.Batch.Instance, map[string]int64{"changed": changed, "moved": r.Moved}
		}
		a.audit(ctx, entry, err)
		if errors.Is(err, tasks.ErrBatchDone) {
			return fmt.Errorf("batch %s is done: every task is final, nothing is left to pause", id)
		}
		if err != nil {
			return a.cliErr(ctx, batchErr(id, err))
		}
		if asJSON {
			return printJSON(cmd.OutOrStdout(), r)
		}
		var msg string
		switch {
		case pause && r.Changed:
			msg = fmt.Sprintf("batch %s paused: none of its tasks starts until wahaq batch resume %s (tasks in flight finish)", id, id)
		case pause:
			msg = fmt.Sprintf("batch %s was already paused (by %s); nothing changed", id, r.Batch.PausedBy)
		case r.Changed:
			msg = fmt.Sprintf("batch %s resumed: %d held tasks went back into the queue", id, r.Moved)
		default:
			msg = fmt.Sprintf("batch %s was not paused; nothing changed", id)
		}
		_, err = fmt.Fprintln(cmd.OutOrStdout(), msg)
		return err
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the answer as JSON (the HTTP API's shape)")
	return cmd
}
