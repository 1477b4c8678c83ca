package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/wahaq/wahaq/internal/audit"
	"github.com/wahaq/wahaq/internal/config"
	"github.com/wahaq/wahaq/internal/duration"
	"github.com/wahaq/wahaq/tasks"
)

func init() { register(newEnqueueCmd) }

func newEnqueueCmd() *cobra.Command {
	var (
		callbackURL, idemKey      string
		session, instance, in, at string
		asJSON                    bool
	)
	cmd := &cobra.Command{
		Use:   "enqueue --session S [--instance I] [--in 30m | --at RFC3339] [--idempotency-key K] [--json]",
		Short: "Enqueue the logout of one session and print the task id",
		Long: `Enqueue the logout of one WAHA session and print the task id.

When the session already has a scheduled, pending, active or retrying logout,
nothing new is created: the existing task's id is printed (with a note on
stderr; --json prints the task with "deduplicated": true).

--in delays the logout (30s, 30m, 2h, 7d, 1d12h, or ISO 8601 PT30M,
P7D, P1DT2H); --at runs it at an RFC 3339 time.
--json prints the task as the HTTP API returns it, on one line.

--idempotency-key K makes a rerun safe (a job run again after a timeout):
the same key with the same flags within 24 hours prints the first run's task
again, even after it finished, instead of enqueueing another logout. No key is
made up when none is given: pass one that stays the same across the reruns,
such as the job's run id.

Exit codes: 0 enqueued (or deduplicated, or the first answer of the key),
1 failure (e.g. Redis does not answer), 2 bad input (missing or malformed
session name, unknown instance, --at in the past, both --in and --at, a key
used with other flags).`,
		Example: `  wahaq enqueue --session sales-bot
  wahaq enqueue --session sales-bot --instance eu --in 30m
  wahaq enqueue --session sales-bot --at 2025-07-01T18:00:00Z --json`,
		Args: noArgs("enqueue", "give the session with --session"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if session == "" {
				return usagef("--session is required: name the WAHA session to log out")
			}
			when, err := parseWhen(in, at)
			if err != nil {
				return err
			}
			a, p, err := newProducerApp(cmd)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			req := tasks.LogoutRequest{Instance: instance, Session: session, When: when, CallbackURL: callbackURL}
			asGiven := map[string]string{"instance": instance, "session": session, "in": in, "at": at, "callback_url": callbackURL}
			t, _, err := idempotent(ctx, cmd, p, idemKey, asGiven, func(ctx context.Context) (*tasks.Task, error) {
				return p.Enqueue(ctx, req)
			})
			entry := audit.Entry{Action: "logout.enqueue", Target: audit.Target{Instance: instance},
				Params: map[string]any{"session": session, "in": in, "at": at, "callback_url": audit.SafeURL(callbackURL)}}
			if err == nil {
				entry.Target.Task = t.ID
				entry.Result = map[string]int64{"enqueued": 1}
				if t.Deduplicated {
					entry.Result = map[string]int64{"enqueued": 0, "deduplicated": 1}
				}
			}
			a.audit(ctx, entry, err)
			if err != nil {
				return a.cliErr(ctx, err)
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), t)
			}
			if t.Deduplicated {
				fmt.Fprintf(cmd.ErrOrStderr(), "note: session %s on %s already has a logout task (%s); printing its id instead of creating a second one\n",
					t.Session, t.Instance, t.State)
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), t.ID)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&session, "session", "", "WAHA session name to log out (required)")
	f.StringVar(&callbackURL, "callback-url", "", "POST the task here, signed, once it is final (a host of WAHAQ_CALLBACK_ALLOW)")
	f.StringVar(&instance, "instance", "default", "WAHA server name (default: the one of WAHA_BASE_URL)")
	addWhenFlags(cmd, &in, &at)
	addIdempotencyFlag(cmd, &idemKey)
	f.BoolVar(&asJSON, "json", false, "print the task as JSON (the HTTP API's shape)")
	return cmd
}

// addWhenFlags adds --in and --at.
func addWhenFlags(cmd *cobra.Command, in, at *string) {
	cmd.Flags().StringVar(in, "in", "", "run the logout after this delay, e.g. 30m, 2h, 7d, 1d12h or ISO 8601 PT30M, P1DT2H")
	cmd.Flags().StringVar(at, "at", "", "run the logout at this RFC 3339 time, e.g. 2025-07-01T18:00:00Z")
}

// parseWhen reads --in and --at. The tasks package checks what is left (a
// time in the past, a negative delay).
func parseWhen(in, at string) (tasks.When, error) {
	var w tasks.When
	if in != "" && at != "" {
		return w, usagef("give either --in or --at, not both")
	}
	if in != "" {
		d, err := duration.Parse(in)
		if err != nil {
			return w, usagef("--in %q is not a duration such as 30s, 30m, 2h, 7d or ISO 8601 PT30M", in)
		}
		if d < 0 {
			return w, usagef("--in %s is negative: give a delay from now", in)
		}
		w.In = d
	}
	if at != "" {
		t, err := time.Parse(time.RFC3339, at)
		if err != nil {
			return w, usagef("--at %q is not an RFC 3339 time such as 2025-07-01T18:00:00Z", at)
		}
		w.At = t
	}
	return w, nil
}

// noArgs refuses positional arguments with a sentence.
func noArgs(name, hint string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) > 0 {
			return usagef("%s takes no arguments (got %q); %s", name, args[0], hint)
		}
		return nil
	}
}

// printJSON writes v as one line of JSON, the same bytes the HTTP API sends.
func printJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// newCLIApp is newApp for the short-lived commands, called once the command
// line has been checked: it makes sure Redis answers, so that a Redis that
// is down costs one PING (about 2 s of go-redis's own retries) and reads as
// one sentence. go-redis's log lines go to the zerolog logger at debug
// level.
func newCLIApp(cmd *cobra.Command) (*app, error) {
	a, err := newApp(cmd)
	if err != nil {
		return nil, err
	}
	routeRedisLogs(a.log, zerolog.DebugLevel)
	if err := a.ping(cmd.Context()); err != nil {
		if cmd.Context().Err() != nil {
			return nil, errInterrupted
		}
		return nil, err
	}
	return a, nil
}

// newProducerApp is newCLIApp plus a Producer, for the commands that
// enqueue or cancel.
func newProducerApp(cmd *cobra.Command) (*app, *tasks.Producer, error) {
	a, err := newCLIApp(cmd)
	if err != nil {
		return nil, nil, err
	}
	p, err := a.producer()
	if err != nil {
		return nil, nil, err
	}
	return a, p, nil
}

// checkWaitFlags checks --wait and --timeout of status and batch.
func checkWaitFlags(wait bool, timeout time.Duration) error {
	if timeout < 0 {
		return usagef("--timeout must not be negative")
	}
	if timeout > 0 && !wait {
		return usagef("--timeout only makes sense with --wait")
	}
	return nil
}

// newInspectorApp is newCLIApp plus an Inspector, for the commands that read
// tasks, batches and dead letters.
func newInspectorApp(cmd *cobra.Command) (*app, *tasks.Inspector, error) {
	a, err := newCLIApp(cmd)
	if err != nil {
		return nil, nil, err
	}
	insp, err := a.inspector()
	if err != nil {
		return nil, nil, err
	}
	return a, insp, nil
}

// routeRedisLogs sends go-redis's internal log lines to log at level lvl
// instead of its default logger (plain text on stderr).
func routeRedisLogs(log zerolog.Logger, lvl zerolog.Level) {
	redis.SetLogger(redisLog{log: log, lvl: lvl})
}

type redisLog struct {
	log zerolog.Logger
	lvl zerolog.Level
}

func (l redisLog) Printf(_ context.Context, format string, v ...any) {
	l.log.WithLevel(l.lvl).Str("component", "go-redis").Msg(strings.TrimSpace(fmt.Sprintf(format, v...)))
}

// errInterrupted is returned when SIGINT or SIGTERM ends a command early.
var errInterrupted = errors.New("interrupted")

// cliErr turns an error of a Redis operation into what the person should
// read: input and lookup errors as they are, and anything else, when Redis
// does not answer, as the sentence of app.ping (exit 1, no stack, no
// password).
func (a *app) cliErr(ctx context.Context, err error) error {
	var (
		ue usageError
		be *tasks.BatchError
	)
	switch {
	case err == nil:
		return nil
	case errors.As(err, &be):
		// It names the batch and its count: keep them, whatever the cause.
		return err
	case errors.As(err, &ue), errors.Is(err, tasks.ErrInvalidInput), errors.Is(err, tasks.ErrNotFound),
		errors.Is(err, tasks.ErrAlreadyStarted), errors.Is(err, tasks.ErrTooManyCallbacks), errors.Is(err, config.ErrBadConfig),
		errors.Is(err, errInterrupted), errors.Is(err, errWaitTimeout):
		return err
	case ctx.Err() != nil:
		return errInterrupted
	}
	if perr := a.ping(context.WithoutCancel(ctx)); perr != nil {
		return perr
	}
	return err
}
