package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/wahaq/wahaq/tasks"
)

// cliScope is the idempotency key space of the CLI: apart from that of every
// API token (the API scopes keys by a hash of the token), so a CLI key never
// answers an HTTP request or the other way round.
const cliScope = "cli"

// addIdempotencyFlag adds --idempotency-key.
//
// The CLI talks to Redis, not HTTP: nothing inside one invocation resends a
// request whose answer was lost (the producer's own retry of a timed-out
// enqueue finds what its first try wrote), so a key made up afresh for each
// invocation would never match anything and is not generated. What repeats
// is the invocation itself: a cron job, a CI step or an n8n Execute Command
// node run again after a timeout. Such a caller gives a key that stays the
// same across its reruns (its run id), and the rerun prints the first run's
// answer.
func addIdempotencyFlag(cmd *cobra.Command, key *string) {
	cmd.Flags().StringVar(key, "idempotency-key", "", fmt.Sprintf(
		"run at most once per key: the same key and the same request within %s print the first answer again (the same task or batch, even finished); another request with it exits 2. 1 to %d printable characters",
		tasks.IdempotencyTTL, tasks.MaxIdempotencyKeyLen))
}

// idempotent runs do once per key (none: always), keeping its result as
// JSON. request is what makes two invocations the same request: the flags
// as given, so that a rerun of `--in 30m` matches its first run. It reports
// whether the result is the first run's, given again (then it also says so
// on stderr).
//
// do runs with the command's context, not one detached from it as the API
// does for a client that may hang up: here the caller is the one doing the
// work, so an interrupt (Ctrl-C) stops it, and an interrupted or failed run
// keeps nothing, so its rerun runs again. A rerun of an interrupted `bulk`
// resumes the batch of the first run (same id, tasks.IdempotentBatchID)
// instead of starting another.
func idempotent[T any](ctx context.Context, cmd *cobra.Command, p *tasks.Producer, key string, request any, do func(context.Context) (T, error)) (T, bool, error) {
	var zero T
	if key == "" {
		v, err := do(ctx)
		return v, false, err
	}
	req, err := cliRequest(cmd.CommandPath(), request)
	if err != nil {
		return zero, false, err
	}
	var first T
	a, replayed, err := p.Idempotent(ctx, cliScope, key, req, func(ictx context.Context) (tasks.Answer, error) {
		// ictx carries what Idempotent gives the call (the batch id a
		// rerun resumes) but is detached from the command; stopping it
		// with the command keeps Ctrl-C working.
		dctx, cancel := context.WithCancel(ictx)
		defer cancel()
		defer context.AfterFunc(ctx, cancel)()
		v, err := do(dctx)
		if err != nil {
			return tasks.Answer{}, err
		}
		first = v
		body, err := json.Marshal(v)
		if err != nil {
			return tasks.Answer{}, err
		}
		return tasks.Answer{Status: 200, Body: body}, nil
	})
	switch {
	case errors.Is(err, tasks.ErrIdempotencyMismatch):
		return zero, false, usagef("--idempotency-key %q was already used with a different request within %s; use a new key for a new request", key, tasks.IdempotencyTTL)
	case errors.Is(err, tasks.ErrIdempotencyInProgress):
		return zero, false, fmt.Errorf("another wahaq with --idempotency-key %q is still running; run again in a moment: %w", key, err)
	case err != nil:
		return zero, false, err
	case !replayed:
		return first, false, nil
	}
	var v T
	if err := json.Unmarshal(a.Body, &v); err != nil {
		return zero, false, fmt.Errorf("the answer kept for --idempotency-key %q is unreadable: %w", key, err)
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "note: --idempotency-key %q was used before; printing the first answer\n", key)
	return v, true, nil
}

// cliRequest is the request of an invocation as Idempotent compares it:
// the command's path and its flags as given.
func cliRequest(command string, request any) ([]byte, error) {
	return json.Marshal(map[string]any{"command": command, "request": request})
}
