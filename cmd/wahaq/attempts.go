package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/wahaq/wahaq/tasks"
)

// printAttempts writes a task's attempt history under `wahaq status`, one
// row per attempt: number, start, duration, HTTP status, outcome, error.
func printAttempts(w io.Writer, log []tasks.Attempt) error {
	if len(log) == 0 {
		return nil
	}
	if _, err := fmt.Fprintln(w, "history:"); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, a := range log {
		if a.Requeued {
			// where a dead-letter requeue (or a run from asynq's archive)
			// began: the retry budget started again there
			fmt.Fprintf(tw, "  -- run again --\n")
		}
		status := "-"
		if a.HTTPStatus != 0 {
			status = fmt.Sprintf("HTTP %d", a.HTTPStatus)
		}
		errText := ""
		if a.Error != nil {
			errText = oneLine(*a.Error, 0)
		}
		fmt.Fprintf(tw, "  #%d\t%s\t%s\t%s\t%s\t%s\n", a.Attempt, a.StartedAt.UTC().Format("2006-01-02T15:04:05.000Z"),
			a.FinishedAt.Sub(a.StartedAt).Round(time.Millisecond), status, oneLine(a.Outcome, 0), errText)
	}
	return tw.Flush()
}
