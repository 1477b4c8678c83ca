package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/wahaq/wahaq/internal/demo"
)

// The demo scenario lives in internal/demo; this file only parses its flags.

func init() { register(newDemoCmd) }

func newDemoCmd() *cobra.Command {
	o := demo.Options{}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "See wahaq work end to end in one process: in-memory Redis, fake WAHA servers, no set-up",
		Long: `demo runs everything in this one process: an embedded in-memory Redis, four
in-process fake WAHA servers, a worker, and a producer that enqueues batches,
single and scheduled logouts. Some sessions are scripted to fail so that every
outcome shows: logged_out, not_found, auth_failed, rejected, retries_exhausted.

It ignores REDIS_URL, WAHA_BASE_URL and every other setting: nothing is durable
and nothing real is logged out. The results are printed as a table (or, with
--json, as a JSON array of tasks in the shape of GET /v1/tasks/{id}).`,
		Example: "  wahaq demo\n  wahaq demo --sessions 200 --latency 500ms\n  wahaq demo --json | jq '.[] | {session, outcome, attempts}'",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Sessions < demo.MinSessions || o.Sessions > demo.MaxSessions {
				return usagef("--sessions must be between %d and %d, not %d", demo.MinSessions, demo.MaxSessions, o.Sessions)
			}
			if o.Latency < 0 || o.Latency > 10*time.Second {
				return usagef("--latency must be between 0 and 10s, not %s", o.Latency)
			}
			return demo.Run(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.Sessions, "sessions", demo.DefaultSessions, fmt.Sprintf("WORKING sessions on the fake WAHA server named default (%d..%d)", demo.MinSessions, demo.MaxSessions))
	f.DurationVar(&o.Latency, "latency", demo.DefaultLatency, "how long the fake WAHA takes to log out a running session (a real one: about 3s)")
	f.BoolVar(&o.JSON, "json", false, "print the final tasks as a JSON array (the task model of the HTTP API) instead of a table")
	f.BoolVarP(&o.Verbose, "verbose", "v", false, "show the worker's logs on stderr")
	return cmd
}
