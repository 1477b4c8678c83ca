package main

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/wahaq/wahaq/internal/audit"
)

func init() { register(newAuditCmd) }

func newAuditCmd() *cobra.Command {
	var (
		q            audit.Query
		since, until string
		asJSON       bool
	)
	cmd := &cobra.Command{
		Use:   "audit [--actor NAME] [--action A] [--target ID] [--since T] [--until T] [--limit N] [--json]",
		Short: "Show the audit log: who did what, newest first",
		Long: `Show the audit log: every call that changed state (over the HTTP API, in
the console, from this CLI), refused and failed ones included: its time, actor
(a token's name, or cli:<OS user>), action, target, outcome and counts.

The log keeps WAHAQ_AUDIT_MAX_AGE (90d) and at most WAHAQ_AUDIT_MAX_ENTRIES
(1,000,000) entries; the first line says how far back it goes. --json prints
the answer of GET /v1/audit ({"entries", "next_cursor", "retention"}); pass its
next_cursor to --cursor for the next page.

Exit codes: 0 shown (even when empty); 1 Redis does not answer; 2 bad usage.`,
		Example: `  wahaq audit
  wahaq audit --action dlq.purge --since 2030-01-01T00:00:00Z
  wahaq audit --actor n8n-prod --json | jq '.entries[] | {time, action, outcome}'`,
		Args: noArgs("audit", "filter with --actor, --action, --target, --since, --until"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, p := range []struct {
				name, v string
				to      *time.Time
			}{{"--since", since, &q.Since}, {"--until", until, &q.Until}} {
				if p.v == "" {
					continue
				}
				t, err := time.Parse(time.RFC3339, p.v)
				if err != nil {
					return usagef("%s %q is not an RFC 3339 time such as 2030-01-02T15:04:05Z", p.name, p.v)
				}
				*p.to = t
			}
			if q.Limit < 1 || q.Limit > audit.MaxLimit {
				return usagef("--limit must be from 1 to %d", audit.MaxLimit)
			}
			a, err := newApp(cmd)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			page, err := a.auditLog().List(ctx, q)
			if errors.Is(err, audit.ErrBadQuery) {
				return usagef("%v", err)
			}
			if err != nil {
				return a.cliErr(ctx, err)
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), page)
			}
			return printAudit(cmd.OutOrStdout(), page)
		},
	}
	f := cmd.Flags()
	f.StringVar(&q.Actor, "actor", "", "only this actor: a token's name, cli:<user>, or cli for every CLI user")
	f.StringVar(&q.Action, "action", "", "only this action, e.g. dlq.purge, batch.cancel")
	f.StringVar(&q.Target, "target", "", "only calls on this task id, batch id or instance")
	f.StringVar(&since, "since", "", "only entries at or after this time (RFC 3339)")
	f.StringVar(&until, "until", "", "only entries at or before this time (RFC 3339)")
	f.StringVar(&q.Cursor, "cursor", "", "continue a listing: the next_cursor of --json")
	f.IntVar(&q.Limit, "limit", 50, fmt.Sprintf("at most this many entries (1 to %d)", audit.MaxLimit))
	f.BoolVar(&asJSON, "json", false, "print the page as JSON (the HTTP API's shape)")
	return cmd
}

// printAudit writes a page as a table under a line saying how far back the
// log goes.
func printAudit(w io.Writer, p *audit.Page) error {
	r := p.Retention
	oldest := "it is empty"
	if r.Oldest != nil {
		oldest = "the oldest entry is from " + fmtTime(r.Oldest)
	}
	fmt.Fprintf(w, "audit log: %d entries, kept %s and at most %d; %s\n", r.Entries, shortAge(r.MaxAge), r.MaxEntries, oldest)
	if len(p.Entries) == 0 {
		_, err := fmt.Fprintln(w, "no entries match")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tACTOR\tVIA\tACTION\tTARGET\tOUTCOME\tRESULT")
	for _, e := range p.Entries {
		var target []string
		for _, kv := range [][2]string{{"instance", e.Target.Instance}, {"batch", e.Target.Batch}, {"task", e.Target.Task}} {
			if kv[1] != "" {
				target = append(target, kv[0]+" "+kv[1])
			}
		}
		var result []string
		for k, v := range e.Result {
			result = append(result, fmt.Sprintf("%s=%d", k, v))
		}
		outcome := e.Outcome
		if e.Status >= 400 {
			outcome += fmt.Sprintf(" (%d)", e.Status)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Time.UTC().Format(time.DateTime), e.Actor, e.Via, e.Action,
			orDash(strings.Join(target, ", ")), outcome, orDash(strings.Join(slices.Sorted(slices.Values(result)), " ")))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if p.NextCursor != "" {
		_, err := fmt.Fprintf(w, "more: wahaq audit --cursor %s (with the same filters)\n", p.NextCursor)
		return err
	}
	return nil
}

// shortAge writes the age bound in days when it is whole days.
func shortAge(s string) string {
	d, err := time.ParseDuration(s)
	if err != nil {
		return s
	}
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
