package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/wahaq/wahaq/internal/audit"
	"github.com/wahaq/wahaq/tasks"
)

func init() { register(newCancelCmd) }

func newCancelCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "cancel TASK_ID [--json]",
		Short: "Cancel a logout that has not started yet",
		Long: `Cancel a scheduled or pending logout task. A task that has started (active,
retrying) or finished cannot be canceled. Canceling a task that is already
canceled succeeds and changes nothing.

--json prints the canceled task as the HTTP API returns it.

Exit codes: 0 canceled; 1 the task has already started or finished, the id is
unknown, or Redis does not answer; 2 bad usage or a malformed id.`,
		Example: `  wahaq cancel 0b8e4f6a-5d0e-4a7c-9a57-2f1f0b2f7d11`,
		Args:    oneID("cancel", "TASK_ID", "the id that wahaq enqueue printed"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := args[0]
			if err := tasks.ValidateTaskID(id); err != nil {
				return err
			}
			a, p, err := newProducerApp(cmd)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			t, err := p.Cancel(ctx, id)
			if errors.Is(err, tasks.ErrAlreadyStarted) {
				insp, ierr := a.inspector()
				if ierr != nil {
					return ierr
				}
				cur, gerr := insp.Task(ctx, id)
				switch {
				case gerr == nil && cur.State == tasks.StateCanceled:
					t, err = cur, nil // canceling twice is not a failure
				case gerr == nil && cur.State.Final():
					return fmt.Errorf("task %s has already finished (%s%s); there is nothing to cancel", id, cur.State, outcomeSuffix(cur))
				case gerr == nil:
					return fmt.Errorf("task %s is %s: it has already started and cannot be canceled", id, cur.State)
				}
			}
			entry := audit.Entry{Action: "task.cancel", Target: audit.Target{Task: id}}
			if err == nil {
				entry.Target.Instance, entry.Result = t.Instance, map[string]int64{"canceled": 1}
			}
			a.audit(ctx, entry, err)
			if err != nil {
				return a.cliErr(ctx, taskErr(id, err))
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), t)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "task %s canceled (session %s on %s)\n", t.ID, t.Session, t.Instance)
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the canceled task as JSON (the HTTP API's shape)")
	return cmd
}
