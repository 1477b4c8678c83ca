package main

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/wahaq/wahaq/internal/preflight"
)

func init() { register(newInstancesCmd) }

func newInstancesCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "instances",
		Short: "The configured WAHA servers",
	}
	cmd.AddCommand(newInstancesCheckCmd())
	return cmd
}

func newInstancesCheckCmd() *cobra.Command {
	var (
		instance string
		asJSON   bool
	)
	cmd := &cobra.Command{
		Use:   "check [--instance I] [--json]",
		Short: "Preflight: ask each WAHA server whether a batch can run against it",
		Long: `Ask each configured WAHA server (or only --instance) what a bulk teardown
needs to know, without logging anything out: whether it answers, its WAHA
version (GET /api/version or /api/server/version), whether it accepts the
configured key (listing its sessions), whether it refuses a wrong key at all
(a call with a random key: WAHA 2024.10 accepts any key, so a wrong key will
not be detected there), its sessions by status, and the round-trip time.

Run it before a big batch, with the worker's settings (its keys): serve and
the CLI do not otherwise need them.

--json prints what GET /v1/instances/{name}/check answers: one object with
--instance, an array of them without.

Exit codes: 0 every server passed; 1 a server failed (unreachable, key
refused, key not set here); 2 bad usage or an unknown instance.`,
		Example: `  wahaq instances check
  wahaq instances check --instance sales --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a, err := newApp(cmd)
			if err != nil {
				return err
			}
			ch := a.preflight()
			var results []preflight.Result
			if instance != "" {
				r, ok := ch.Check(cmd.Context(), instance)
				if !ok {
					return usagef("unknown instance %q; the configured ones are %s", instance, strings.Join(ch.Instances(), ", "))
				}
				results = []preflight.Result{r}
			} else {
				results = ch.All(cmd.Context())
			}
			out := cmd.OutOrStdout()
			switch {
			case asJSON && instance != "":
				err = printJSON(out, results[0])
			case asJSON:
				err = printJSON(out, results)
			default:
				err = printChecks(out, results)
			}
			if err != nil {
				return err
			}
			failed := 0
			for _, r := range results {
				if !r.OK {
					failed++
				}
			}
			if failed > 0 {
				return errors.New(countOf(failed, "server") + " of " + fmt.Sprint(len(results)) + " failed the check")
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&instance, "instance", "", "check only this instance (default: every configured one)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the HTTP API's JSON")
	return cmd
}

// preflight is the checker of the configured servers, with the keys this
// process has.
func (a *app) preflight() *preflight.Checker {
	ts := make([]preflight.Target, len(a.instances))
	for i, in := range a.instances {
		ts[i] = preflight.Target{Name: in.Name, BaseURL: in.BaseURL, APIKey: in.APIKey, APIKeyEnv: in.APIKeyEnv, NoKey: in.NoKey}
	}
	return preflight.New(ts, 0)
}

// countOf is "1 server", "2 servers".
func countOf(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// printChecks writes the results for people. What a server said is
// quoted through terminalSafe: a hostile server must not drive the
// terminal.
func printChecks(w io.Writer, results []preflight.Result) error {
	var b strings.Builder
	for i, r := range results {
		if i > 0 {
			b.WriteString("\n")
		}
		verdict := "OK"
		if !r.OK {
			verdict = "FAILED"
		}
		fmt.Fprintf(&b, "%s  %s  %s\n", r.Instance, r.BaseURL, verdict)
		reach := "no"
		if r.Reachable {
			reach = "yes"
			if r.RoundTripMS != nil {
				reach += fmt.Sprintf(" (round trip %.1f ms)", *r.RoundTripMS)
			}
		}
		fmt.Fprintf(&b, "  reachable  %s\n", reach)
		if r.Reachable {
			v := r.Version
			if v == "" {
				v = "unknown"
			}
			fmt.Fprintf(&b, "  version    %s\n", terminalSafe(v))
			key := "not checked"
			switch {
			case r.KeyAccepted == nil:
			case *r.KeyAccepted:
				key = "accepted"
			default:
				key = "REFUSED"
			}
			switch {
			case r.KeyEnforced == nil:
			case *r.KeyEnforced:
				key += "; the server refuses a wrong key"
			default:
				key += "; the server accepts ANY key: a wrong key will not be detected"
			}
			fmt.Fprintf(&b, "  key        %s\n", key)
			if r.Sessions != nil {
				statuses := make([]string, 0, len(r.Sessions))
				for st := range r.Sessions {
					statuses = append(statuses, st)
				}
				sort.Strings(statuses)
				parts := make([]string, len(statuses))
				for j, st := range statuses {
					parts[j] = fmt.Sprintf("%s %d", terminalSafe(st), r.Sessions[st])
				}
				if len(parts) == 0 {
					fmt.Fprintf(&b, "  sessions   0\n")
				} else {
					fmt.Fprintf(&b, "  sessions   %d (%s)\n", r.SessionsTotal, strings.Join(parts, ", "))
				}
			}
		}
		for _, p := range r.Problems {
			fmt.Fprintf(&b, "  problem: %s\n", terminalSafe(p))
		}
		for _, wn := range r.Warnings {
			fmt.Fprintf(&b, "  warning: %s\n", terminalSafe(wn))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
