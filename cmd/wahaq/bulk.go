package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/wahaq/wahaq/internal/audit"
	"github.com/wahaq/wahaq/tasks"
)

func init() { register(newBulkCmd) }

func newBulkCmd() *cobra.Command {
	var (
		callbackURL, idemKey           string
		instance, sessionsFile, in, at string
		all, wait, asJSON, dryRun      bool
		statuses, sessions             []string
	)
	cmd := &cobra.Command{
		Use:   "bulk --instance I (--all [--status WORKING,...] | --sessions-file F | --session S...) [--in D | --at T] [--idempotency-key K] [--dry-run] [--wait] [--json]",
		Short: "Enqueue the logout of many sessions of one WAHA server as one batch",
		Long: `Enqueue a bulk teardown: the logout of many sessions of one WAHA server, as
one batch, and print the batch id. Follow it with wahaq batch BATCH_ID.

Name the sessions in exactly one way:
  --all                 every session the server lists when the batch runs,
                        optionally only those in --status (e.g. WORKING,FAILED)
  --sessions-file F     one session name per line; blank lines and # comments
                        are ignored; - reads standard input
  --session S           repeatable, or comma-separated: --session a,b,c

Every name is checked before anything is written: one bad name enqueues
nothing. Sessions that already have a logout task keep it and are counted as
deduplicated instead.

--wait then follows the batch like wahaq batch --wait (a progress bar on a
terminal, a line every 2 seconds otherwise). --json prints the batch answer
as the HTTP API returns it (POST /v1/batches), and with --wait also the
finished batch, as a second line.

The batch id is printed to stderr as soon as the batch exists, before its
first logout is written. If the enqueue fails part way (Redis fails or runs
out of memory, the command is interrupted), the batch is closed with the
logouts enqueued so far, marked interrupted, and the error names the batch
and that count: follow it with wahaq batch ID, cancel the rest with wahaq
batch cancel ID. A batch whose producer was killed is closed the same way by
the workers' reconciler within seconds.

--in/--at may be at most 366 days ahead.

--dry-run enqueues nothing: it lists the server's sessions now (with the
key the workers use), applies --status and the dedup against the logouts
already queued, and prints what the batch would take: the sessions by
status, how many logouts it would create, how many are already queued,
what it would skip and why, and the first 100 names. For named sessions it
also says which the server does not list. No logout is called, nothing is
written.

--idempotency-key K makes a rerun safe (a job run again after a timeout):
the same key with the same flags and sessions within 24 hours prints the first
run's batch again (and --wait follows it) instead of making another batch; a
rerun after a run that failed or was interrupted part way resumes that run's
batch: it enqueues the sessions the batch does not hold yet and prints the
batch with its whole total. No
key is made up when none is given: pass one that stays the same across the
reruns, such as the job's run id.

Exit codes: 0 enqueued (with --wait: done); 1 failure (Redis does not answer,
the session listing of --all failed, the enqueue was interrupted part way);
2 bad usage or bad input.`,
		Example: `  wahaq bulk --instance default --session bot-1 --session bot-2
  wahaq bulk --instance eu --sessions-file sessions.txt --at 2025-07-01T18:00:00Z
  grep -v keep all.txt | wahaq bulk --instance eu --sessions-file - --wait
  wahaq bulk --instance eu --all --status WORKING,FAILED --wait
  wahaq bulk --instance eu --all --status WORKING --dry-run`,
		Args: noArgs("bulk", "name sessions with --session, --sessions-file or --all"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if instance == "" {
				return usagef("--instance is required: name the WAHA server to tear down (default is the one of WAHA_BASE_URL)")
			}
			sources := 0
			for _, given := range []bool{all, sessionsFile != "", cmd.Flags().Changed("session")} {
				if given {
					sources++
				}
			}
			if sources != 1 {
				return usagef("name the sessions in exactly one way: --all, --sessions-file or --session (got %d)", sources)
			}
			if len(statuses) > 0 && !all {
				return usagef("--status filters --all; with named sessions, list only those you want")
			}
			when, err := parseWhen(in, at)
			if err != nil {
				return err
			}
			if sessionsFile != "" {
				if sessions, err = readSessionsFile(cmd.InOrStdin(), sessionsFile); err != nil {
					return err
				}
			} else if !all {
				if sessions, err = checkSessions(sessions, func(i int) string { return fmt.Sprintf("--session #%d", i+1) }); err != nil {
					return err
				}
			}
			if dryRun && (wait || idemKey != "") {
				return usagef("--dry-run enqueues nothing: there is nothing to --wait for or to make idempotent")
			}
			a, p, err := newProducerApp(cmd)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if dryRun {
				pr := tasks.PreviewRequest{Instance: instance, Statuses: statuses}
				if !all {
					pr.Sessions = sessions
				}
				pv, err := p.Preview(ctx, pr)
				if err != nil {
					return a.cliErr(ctx, err)
				}
				if asJSON {
					return printJSON(cmd.OutOrStdout(), pv)
				}
				return printPreview(cmd.OutOrStdout(), pv)
			}
			asGiven := map[string]any{"instance": instance, "all": all, "status": statuses, "sessions": sessions,
				"in": in, "at": at, "callback_url": callbackURL}
			info, _, err := idempotent(ctx, cmd, p, idemKey, asGiven, func(ctx context.Context) (*tasks.BatchInfo, error) {
				if all {
					return p.EnqueueDiscovery(ctx, tasks.DiscoveryRequest{Instance: instance, Statuses: statuses, When: when, CallbackURL: callbackURL})
				}
				return p.EnqueueBatch(ctx, tasks.BatchRequest{Instance: instance, Sessions: sessions, When: when, CallbackURL: callbackURL,
					OnCreated: func(id string) {
						// Before the first task is written: whatever happens next,
						// the operator can follow or cancel this batch.
						fmt.Fprintf(cmd.ErrOrStderr(), "batch %s: enqueueing %d logouts on %s\n", id, len(sessions), instance)
					}})
			})
			entry := audit.Entry{Action: "batch.create", Target: audit.Target{Instance: instance},
				Params: map[string]any{"all": all, "status": statuses, "sessions": len(sessions), "in": in, "at": at, "callback_url": audit.SafeURL(callbackURL)}}
			if err == nil {
				entry.Target.Batch = info.BatchID
				entry.Result = map[string]int64{"total": info.Total, "requested": int64(info.Requested), "deduplicated": int64(info.Deduplicated)}
			}
			var be *tasks.BatchError
			if errors.As(err, &be) {
				entry.Target.Batch = be.BatchID
			}
			a.audit(ctx, entry, err)
			if errors.As(err, &be) {
				return fmt.Errorf("%w\n  follow it: wahaq batch %s --wait\n  cancel what has not started: wahaq batch cancel %s",
					err, be.BatchID, be.BatchID)
			}
			if err != nil {
				return a.cliErr(ctx, err)
			}
			out := cmd.OutOrStdout()
			if asJSON {
				if err := printJSON(out, info); err != nil {
					return err
				}
			} else {
				if info.Deduplicated > 0 {
					fmt.Fprintf(cmd.ErrOrStderr(), "note: %d of %d named sessions already had a logout task (or were named twice); they are not part of this batch\n",
						info.Deduplicated, info.Requested)
				}
				if _, err := fmt.Fprintln(out, info.BatchID); err != nil {
					return err
				}
			}
			if !wait {
				return nil
			}
			insp, err := a.inspector()
			if err != nil {
				return err
			}
			return a.cliErr(ctx, followBatch(ctx, cmd, insp, info.BatchID, 0, asJSON))
		},
	}
	f := cmd.Flags()
	f.StringVar(&instance, "instance", "", "WAHA server name (required; \"default\" is the one of WAHA_BASE_URL)")
	f.BoolVar(&all, "all", false, "every session the server lists when the batch runs")
	f.StringSliceVar(&statuses, "status", nil, "with --all: only sessions in these statuses, e.g. WORKING,FAILED")
	f.StringVar(&callbackURL, "callback-url", "", "POST the batch here, signed, once it is done (a host of WAHAQ_CALLBACK_ALLOW)")
	f.StringVar(&sessionsFile, "sessions-file", "", "file of session names, one a line (# comments; - for stdin)")
	f.StringSliceVar(&sessions, "session", nil, "a session name; repeatable or comma-separated")
	addWhenFlags(cmd, &in, &at)
	addIdempotencyFlag(cmd, &idemKey)
	f.BoolVar(&dryRun, "dry-run", false, "print what the batch would take now; enqueue nothing")
	f.BoolVar(&wait, "wait", false, "follow the batch until every task is completed, dead or canceled")
	f.BoolVar(&asJSON, "json", false, "print JSON (the HTTP API's shape)")
	return cmd
}

// readSessionsFile reads session names, one a line; blank lines and
// everything after a # are ignored; "-" reads stdin. Every name is checked,
// and a bad one is reported with its line number.
func readSessionsFile(stdin io.Reader, path string) ([]string, error) {
	var r io.Reader = stdin
	name := "standard input"
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, usagef("--sessions-file %s does not exist", path)
			}
			return nil, usagef("cannot read --sessions-file %s: %v", path, errors.Unwrap(err))
		}
		defer f.Close()
		r, name = f, path
	}
	var names []string
	var lines []int
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		names = append(names, line)
		lines = append(lines, n)
	}
	if err := sc.Err(); err != nil {
		return nil, usagef("cannot read the sessions of %s: %v", name, err)
	}
	if len(names) == 0 {
		return nil, usagef("%s names no session (one name a line; blank lines and # comments are ignored)", name)
	}
	return checkSessions(names, func(i int) string { return fmt.Sprintf("%s line %d", name, lines[i]) })
}

// checkSessions validates every name and says where a bad one came from.
func checkSessions(names []string, where func(int) string) ([]string, error) {
	for i, s := range names {
		if err := tasks.ValidateSessionName(s); err != nil {
			return nil, usageError{fmt.Errorf("%s: %w", where(i), err)}
		}
	}
	return names, nil
}

// printPreview prints a preview for people.
func printPreview(w io.Writer, pv *tasks.Preview) error {
	kind := "named sessions"
	if pv.All {
		kind = "every session"
		if len(pv.Statuses) > 0 {
			kind += " in " + strings.Join(pv.Statuses, ", ")
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "preview on %s (%s): nothing was enqueued\n", pv.Instance, kind)
	fmt.Fprintf(&b, "  listed          %d entries on the server\n", pv.Listed)
	fmt.Fprintf(&b, "  by status       %s\n", counts(pv.ByStatus))
	if !pv.All {
		fmt.Fprintf(&b, "  named           %d\n", pv.Requested)
		fmt.Fprintf(&b, "  on the server   %d\n", *pv.OnServer)
		fmt.Fprintf(&b, "  not on it       %d (their logouts would end not_found)", *pv.NotOnServer)
		if len(pv.NotOnServerNames) > 0 {
			fmt.Fprintf(&b, ": %s", strings.Join(pv.NotOnServerNames, ", "))
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "  would enqueue   %d\n", pv.WouldEnqueue)
	fmt.Fprintf(&b, "  already queued  %d\n", pv.AlreadyQueued)
	fmt.Fprintf(&b, "  skipped         %s\n", counts(pv.Skipped))
	more := ""
	if int64(len(pv.Names)) < pv.WouldEnqueue {
		more = fmt.Sprintf(" (the first %d of %d)", len(pv.Names), pv.WouldEnqueue)
	}
	fmt.Fprintf(&b, "  sessions%s: %s\n", more, strings.Join(pv.Names, ", "))
	_, err := io.WriteString(w, b.String())
	return err
}

// counts prints a count per key, largest first, or "none".
func counts(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}
