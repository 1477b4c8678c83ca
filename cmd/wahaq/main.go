// Command wahaq takes WhatsApp sessions on WAHA servers out of service
// reliably: producers enqueue logouts in Redis, workers perform them with
// retries and backoff, auth failures land in a dead-letter queue, and every
// result is kept for polling. Run `wahaq --help`.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/wahaq/wahaq/internal/config"
	"github.com/wahaq/wahaq/tasks"
)

// Exit codes, as the README states them: 0 success, 1 failure, 2 bad usage or bad input.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// usageError marks bad usage or bad input: exit code 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// usagef returns a usage error (exit code 2) with a sentence.
func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// closersKey holds, in the command's context, what run closes when the
// command ends (per run, so in-process runs in tests do not share it).
type closersKey struct{}

// onExit registers f to run when the command line has finished.
func onExit(ctx context.Context, f func()) {
	if c, ok := ctx.Value(closersKey{}).(*[]func()); ok {
		*c = append(*c, f)
	}
}

// commands are added by each command's file.
var commands []func() *cobra.Command

func register(f func() *cobra.Command) { commands = append(commands, f) }

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "wahaq",
		Short:         "Log out WhatsApp sessions on WAHA servers, reliably, through a Redis queue",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	config.BindFlags(root.PersistentFlags())
	// Bad usage is typed where cobra reports it, so exitCode never reads
	// cobra's wording: flag errors through FlagErrorFunc (inherited by every
	// subcommand), argument errors through each command's Args validator.
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	// An unknown command is caught by execute before cobra runs.
	for _, f := range commands {
		root.AddCommand(f())
	}
	// cobra adds these while executing; add them now so their Args are
	// typed too.
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	typeArgs(root)
	return root
}

// typeArgs wraps every command's Args validator so that what it refuses is
// a usageError (exit 2). cobra's own validators (NoArgs, ExactArgs, ...)
// return plain errors.
func typeArgs(c *cobra.Command) {
	if orig := c.Args; orig != nil {
		c.Args = func(cmd *cobra.Command, args []string) error {
			err := orig(cmd, args)
			var ue usageError
			if err == nil || errors.As(err, &ue) {
				return err
			}
			return usageError{err}
		}
	}
	for _, sub := range c.Commands() {
		typeArgs(sub)
	}
}

// execute runs the command line. cobra's Find fails only for a first word
// that names no command (its legacyArgs check of the root); that case is
// found here, before cobra reports it untyped, and becomes a usageError.
func execute(ctx context.Context, root *cobra.Command, args []string) error {
	if _, _, err := root.Find(args); err != nil {
		return usageError{err}
	}
	root.SetArgs(args)
	return root.ExecuteContext(ctx)
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes the command line and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		// The first signal starts a graceful shutdown; restoring the default
		// handling lets a second one end the process at once.
		<-ctx.Done()
		stop()
	}()
	var closers []func()
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	root := newRoot(stdout, stderr)
	err := execute(context.WithValue(ctx, closersKey{}, &closers), root, args)
	if err == nil {
		return exitOK
	}
	// An error can quote WAHA (a batch's error): no terminal controls.
	fmt.Fprintf(stderr, "wahaq: %s\n", terminalSafe(err.Error()))
	return exitCode(err)
}

// exitCode maps an error to the exit code by its type alone.
func exitCode(err error) int {
	var ue usageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue), errors.Is(err, config.ErrBadConfig), errors.Is(err, tasks.ErrInvalidInput):
		return exitUsage
	default:
		return exitFailure
	}
}
