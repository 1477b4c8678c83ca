// Command fakewaha serves the fake WAHA server of package wahafake, for
// shell-driven tests, docker-compose set-ups and demos.
//
//	fakewaha --addr 127.0.0.1:3000 --api-key K --sessions 100 --latency 3s \
//	    --scoped-key ops=session-0001,session-0002 --fail session-0003=503x3 \
//	    --webhook-url http://127.0.0.1:8080/v1/waha/default/events
//
// --current-line plays WAHA's current line (2025.10.3+): a key is always
// required (with none set, or "123", "admin", "waha", only zeros, it
// generates one and prints it, as WAHA does), DELETE /api/sessions/{s} and
// GET /api/server/version exist; --no-api-key is WAHA_NO_API_KEY=True.
// --scoped-key ops=a,b:read,control binds a key to sessions and actions;
// --lock-timeout and --fail a=lock play WAHA's 500 "async-lock timed out".
//
// The key may also come from WAHA_API_KEY, as for the real server (the flag
// wins); prefer it, since command lines are visible to other users. The same
// holds for the webhook signing key, WHATSAPP_HOOK_HMAC_KEY as on WAHA. The
// control API under /_fake/ scripts faults at run time (GET /_fake/ lists it).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/wahaq/wahaq/wahaclient/wahafake"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stderr, nil))
}

// usageError is a bad flag value; it exits with code 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// multiFlag collects a repeatable flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, " ") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

type config struct {
	opts   wahafake.Options
	faults map[string][]wahafake.Fault
}

// parseArgs turns the command line into options; every error is a sentence
// meant for the person who typed the flags.
func parseArgs(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("fakewaha", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfg        config
		scoped     multiFlag
		fails      multiFlag
		apiKeyFlag string
		hmacFlag   string
	)
	fs.StringVar(&cfg.opts.Addr, "addr", "127.0.0.1:3000", "listen address (port 0 picks a free port)")
	fs.StringVar(&apiKeyFlag, "api-key", "", "required X-Api-Key (default $WAHA_API_KEY; empty accepts any key, like WAHA Core)")
	fs.IntVar(&cfg.opts.Sessions, "sessions", 0, "create N WORKING sessions named session-0001... (plus the STOPPED \"default\")")
	fs.DurationVar(&cfg.opts.LogoutLatency, "latency", 0, "extra time a logout of a running session takes (a real server: about 3s)")
	fs.BoolVar(&cfg.opts.Core, "core", false, "behave like WAHA Core: only the session \"default\"; other names answer 422")
	fs.BoolVar(&cfg.opts.Legacy, "legacy", false, "an old server: no POST /api/sessions/{s}/logout, only the deprecated POST /api/sessions/logout")
	fs.BoolVar(&cfg.opts.NoDeprecatedRoute, "no-deprecated-route", false, "a newest server without the deprecated POST /api/sessions/logout")
	fs.Uint64Var(&cfg.opts.Seed, "seed", 1, "seed of the RNG behind flaky sessions")
	fs.Var(&scoped, "scoped-key", "KEY=s1,s2[:action,...]: a key limited to these sessions and actions (read, send, control, setting, app, delete; default all but delete), 403 elsewhere; repeatable")
	fs.Var(&fails, "fail", "SESSION=STATUS[xTIMES] (or SESSION=reset[xTIMES], SESSION=lock[xTIMES] for WAHA's lock timeout): script failures of that session's logouts, e.g. a=503x3 or a=501 (no xTIMES: forever); repeated for one session, the faults apply in order")
	fs.BoolVar(&cfg.opts.CurrentLine, "current-line", false, "play WAHA's current line (2025.10.3+): a key is always required (generated and printed when unset), DELETE /api/sessions/{s} and /api/server/version exist")
	fs.BoolVar(&cfg.opts.NoAPIKey, "no-api-key", false, "with --current-line: WAHA_NO_API_KEY=True, no key is checked")
	fs.DurationVar(&cfg.opts.LockTimeout, "lock-timeout", 0, "a logout waiting longer than this for its session's lock answers WAHA's 500 \"async-lock timed out in queue <session>\" (0: waits)")
	fs.StringVar(&cfg.opts.Webhook.URL, "webhook-url", "", "send signed session.status webhooks here when a session's status changes (like WAHA's WHATSAPP_HOOK_URL)")
	fs.StringVar(&hmacFlag, "webhook-hmac-key", "", "sign webhooks with this key, HMAC-SHA512 (default $WHATSAPP_HOOK_HMAC_KEY; empty: unsigned)")
	fs.BoolVar(&cfg.opts.Webhook.Core, "webhook-core", false, "send webhooks as WAHA Core 2024.10.8 did: no id or timestamp, unsigned, once")
	fs.IntVar(&cfg.opts.Webhook.Duplicates, "webhook-duplicates", 0, "deliver every webhook 1+N times (fault knob: WAHA delivers duplicates)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: fakewaha [flags]\n\nServes a fake WAHA server for tests. Control API under /_fake/ (GET /_fake/ lists it).\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, usageError{fmt.Sprintf("fakewaha takes no arguments, only flags; got %q", fs.Arg(0))}
	}
	cfg.opts.APIKey = getenv("WAHA_API_KEY")
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "api-key" {
			cfg.opts.APIKey = apiKeyFlag
		}
	})
	cfg.opts.Webhook.HMACKey = getenv("WHATSAPP_HOOK_HMAC_KEY")
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "webhook-hmac-key" {
			cfg.opts.Webhook.HMACKey = hmacFlag
		}
	})
	if cfg.opts.Webhook.Duplicates < 0 {
		return cfg, usageError{"--webhook-duplicates must be 0 or more"}
	}
	if u, err := url.Parse(cfg.opts.Webhook.URL); cfg.opts.Webhook.URL != "" && (err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "") {
		return cfg, usageError{"--webhook-url must be an http:// or https:// URL, e.g. http://127.0.0.1:8080/v1/waha/default/events"}
	}
	if cfg.opts.Webhook.URL == "" && (cfg.opts.Webhook.Core || cfg.opts.Webhook.Duplicates > 0) {
		return cfg, usageError{"--webhook-core and --webhook-duplicates need --webhook-url"}
	}
	if cfg.opts.Sessions < 0 {
		return cfg, usageError{"--sessions must be 0 or more"}
	}
	if cfg.opts.LogoutLatency < 0 {
		return cfg, usageError{"--latency must not be negative"}
	}
	if cfg.opts.LockTimeout < 0 {
		return cfg, usageError{"--lock-timeout must not be negative"}
	}
	if cfg.opts.NoAPIKey && !cfg.opts.CurrentLine {
		return cfg, usageError{"--no-api-key needs --current-line (without it, an empty --api-key already accepts any key)"}
	}
	if cfg.opts.Core && cfg.opts.Sessions > 0 {
		return cfg, usageError{"--core allows only the session \"default\", so --sessions must be 0"}
	}
	for _, v := range scoped {
		key, list, ok := strings.Cut(v, "=")
		if !ok || key == "" || list == "" {
			return cfg, usageError{"--scoped-key must look like KEY=session1,session2 or KEY=session1:read,control"}
		}
		list, actions, withActions := strings.Cut(list, ":")
		if !withActions {
			if cfg.opts.ScopedKeys == nil {
				cfg.opts.ScopedKeys = map[string][]string{}
			}
			cfg.opts.ScopedKeys[key] = append(cfg.opts.ScopedKeys[key], splitList(list)...)
			continue
		}
		k := wahafake.Key{Key: key, Sessions: splitList(list), Actions: splitList(actions)}
		if len(k.Sessions) == 0 || len(k.Actions) == 0 {
			return cfg, usageError{"--scoped-key must look like KEY=session1,session2 or KEY=session1:read,control"}
		}
		for _, a := range k.Actions {
			if !slices.Contains(wahafake.Actions, a) {
				return cfg, usageError{fmt.Sprintf("--scoped-key %s: unknown action %q; WAHA's actions are %s", key, a, strings.Join(wahafake.Actions, ", "))}
			}
		}
		cfg.opts.Keys = append(cfg.opts.Keys, k)
	}
	cfg.faults = map[string][]wahafake.Fault{}
	for _, v := range fails {
		session, f, err := parseFail(v)
		if err != nil {
			return cfg, err
		}
		cfg.faults[session] = append(cfg.faults[session], f)
	}
	return cfg, nil
}

// splitList reads a comma-separated list, dropping empty items.
func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// parseFail reads SESSION=STATUS[xTIMES], SESSION=reset[xTIMES] or
// SESSION=lock[xTIMES].
func parseFail(v string) (string, wahafake.Fault, error) {
	bad := usageError{fmt.Sprintf("--fail %q must look like SESSION=STATUS[xTIMES], e.g. a=503x3 or a=reset", v)}
	session, spec, ok := strings.Cut(v, "=")
	if !ok || session == "" || spec == "" {
		return "", wahafake.Fault{}, bad
	}
	what, times, hasTimes := strings.Cut(strings.ToLower(spec), "x")
	var f wahafake.Fault
	switch what {
	case "reset":
		f.Reset = true
	case "lock":
		f.LockTimeout = true
	default:
		st, err := strconv.Atoi(what)
		if err != nil || st < 200 || st > 599 {
			return "", f, bad
		}
		f.Status = st
	}
	if hasTimes {
		n, err := strconv.Atoi(times)
		if err != nil || n < 1 {
			return "", f, bad
		}
		f.Times = n
	}
	return session, f, nil
}

// run serves until ctx ends and returns the exit code. ready, when not nil,
// receives the server once it listens (for tests).
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer, ready func(*wahafake.Server)) int {
	cfg, err := parseArgs(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(stderr, "fakewaha: %s\n", ue.msg)
		}
		// flag already printed its own error and the usage.
		return 2
	}
	srv, err := wahafake.New(cfg.opts)
	if err != nil {
		fmt.Fprintf(stderr, "fakewaha: cannot start: %v\n", err)
		return 1
	}
	defer srv.Close()
	sessions := make([]string, 0, len(cfg.faults))
	for s := range cfg.faults {
		sessions = append(sessions, s)
	}
	sort.Strings(sessions)
	for _, s := range sessions {
		srv.Script(s, cfg.faults[s]...)
	}

	mode := "plus"
	switch {
	case cfg.opts.Core:
		mode = "core"
	case cfg.opts.Legacy:
		mode = "legacy"
	}
	if cfg.opts.CurrentLine {
		mode += ", current line " + wahafake.CurrentVersion
	}
	key := "any key accepted"
	switch required := srv.APIKey(); {
	case required == "":
	case required != cfg.opts.APIKey:
		// WAHA prints the key it generated at start; so does the fake,
		// since nobody could call it otherwise.
		key = "API key required; generated: " + required
	default:
		key = "API key required"
	}
	fmt.Fprintf(stderr, "%s fakewaha listening on %s (%s, %d sessions + default, %s, logout latency %s, %d scripted sessions; control API at %s/_fake/)\n",
		time.Now().Format(time.RFC3339), srv.URL(), mode, cfg.opts.Sessions, key, cfg.opts.LogoutLatency, len(sessions), srv.URL())
	if ready != nil {
		ready(srv)
	}
	<-ctx.Done()
	fmt.Fprintf(stderr, "%s fakewaha stopping (%d logout calls served)\n", time.Now().Format(time.RFC3339), srv.TotalLogoutCalls())
	return 0
}
