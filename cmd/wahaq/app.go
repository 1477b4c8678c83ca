package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/wahaq/wahaq/internal/audit"
	"github.com/wahaq/wahaq/internal/config"
	"github.com/wahaq/wahaq/internal/store"
	"github.com/wahaq/wahaq/internal/tracing"
	"github.com/wahaq/wahaq/tasks"
	"github.com/wahaq/wahaq/wahaclient"
	"github.com/wahaq/wahaq/worker"
)

// app is what every command builds from the settings. Wiring lives here and
// in the command files only.
type app struct {
	settings  config.Settings
	instances []config.Instance
	schedules []config.Schedule
	log       zerolog.Logger
	rdb       redis.UniversalClient
	// tracing is on when the OTEL_* variables configure an exporter.
	tracing bool
}

// newApp loads the settings and connects to Redis (lazily: go-redis dials on
// first use).
func newApp(cmd *cobra.Command) (*app, error) {
	s, err := config.Load(cmd.Root().PersistentFlags())
	if err != nil {
		return nil, err
	}
	insts, scheds, err := s.Topology()
	if err != nil {
		return nil, err
	}
	rdb, err := s.Redis()
	if err != nil {
		return nil, err
	}
	a := &app{settings: s, instances: insts, schedules: scheds, log: s.Logger(cmd.ErrOrStderr()), rdb: rdb}
	onExit(cmd.Context(), func() { _ = rdb.Close() })
	on, shutdown, err := tracing.Setup(cmd.Context(), "wahaq", os.Getenv)
	if err != nil {
		return nil, usagef("%v", err)
	}
	a.tracing = on
	onExit(cmd.Context(), func() {
		// Flush the spans still buffered, briefly: an unreachable collector
		// must not hold up the exit.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = shutdown(ctx)
	})
	return a, nil
}

// ping checks that Redis answers, with a sentence a person can act on.
func (a *app) ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := a.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis at %s does not answer: %w", redactURL(a.settings.RedisURL), err)
	}
	return nil
}

func (a *app) tasksConfig() tasks.Config {
	return tasks.Config{
		Redis: a.rdb, Namespace: a.settings.Namespace, Instances: config.Names(a.instances),
		MaxRetries: maxRetries(a.settings.MaxRetries), ResultTTL: a.settings.ResultTTL,
		CallbackAllow: a.settings.CallbackAllow, WAHA: a.listers(),
	}
}

// listers are WAHA clients of the configured instances for the preview of
// a batch (`bulk --dry-run`, "dry_run" over HTTP), with the same keys the
// workers use. Building one makes no call; an instance whose URL does not
// parse gets none, and its preview says so.
func (a *app) listers() map[string]tasks.SessionLister {
	var secrets []string
	for _, in := range a.instances {
		if in.APIKey != "" {
			secrets = append(secrets, in.APIKey)
		}
	}
	out := make(map[string]tasks.SessionLister, len(a.instances))
	for _, in := range a.instances {
		c, err := wahaclient.New(wahaclient.Config{BaseURL: in.BaseURL, APIKey: in.APIKey, Timeout: in.Timeout,
			Redact: secrets, Trace: a.tracing})
		if err == nil {
			out[in.Name] = c
		}
	}
	return out
}

// maxRetries maps WAHAQ_MAX_RETRIES, where 0 means none, onto
// tasks.Config.MaxRetries, where 0 means the default and NoRetries none.
func maxRetries(n int) int {
	if n == 0 {
		return tasks.NoRetries
	}
	return n
}

func (a *app) producer() (*tasks.Producer, error)   { return tasks.NewProducer(a.tasksConfig()) }
func (a *app) inspector() (*tasks.Inspector, error) { return tasks.NewInspector(a.tasksConfig()) }

// store is the engine on the same Redis and namespace, for the wiring that
// needs it directly (schedule claims, the queue metrics).
func (a *app) store() *store.Store {
	return store.New(a.rdb, store.Options{Namespace: a.settings.Namespace})
}

// auditLog is the audit log on the same Redis and namespace, bounded by
// WAHAQ_AUDIT_MAX_AGE and WAHAQ_AUDIT_MAX_ENTRIES.
func (a *app) auditLog() *audit.Log {
	return audit.New(a.store(), audit.Options{MaxAge: a.settings.AuditMaxAge, MaxEntries: int64(a.settings.AuditMaxEntries)})
}

// audit appends the entry of a state-changing CLI command, as "cli:<OS
// user>". The command has done its work (or failed) already: an entry that
// cannot be written is a warning, not a failure of the command. Bad input
// (exit 2) is not recorded: it changed nothing, the person who typed it sees
// the sentence at once, and a bad command line writes nothing to Redis.
func (a *app) audit(ctx context.Context, e audit.Entry, err error) {
	if exitCode(err) == exitUsage {
		return
	}
	e.Actor, e.Via = audit.CLIActor(), audit.ViaCLI
	if err != nil {
		e.Outcome, e.Detail = audit.OutcomeFailed, err.Error()
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if _, aerr := a.auditLog().Append(actx, e); aerr != nil {
		a.log.Warn().Err(aerr).Str("action", e.Action).Msg("cannot append to the audit log")
	}
}

// workerConfig maps the settings onto worker.Config.
func (a *app) workerConfig() worker.Config {
	s := a.settings
	insts := make([]worker.Instance, len(a.instances))
	for i, in := range a.instances {
		insts[i] = worker.Instance{Name: in.Name, BaseURL: in.BaseURL, APIKey: in.APIKey, Concurrency: in.Concurrency, Rate: in.Rate, Timeout: in.Timeout,
			AwaitEvents: in.WebhookHMACKeyEnv != ""}
	}
	log := a.log
	return worker.Config{
		Redis: a.rdb, Namespace: s.Namespace, Instances: insts, Trace: a.tracing,
		Concurrency: s.Concurrency, InstanceConcurrency: s.InstanceConcurrency, TakeBlock: s.TakeBlock, FastPath: s.FastPath, PollInterval: s.PollInterval,
		RetryBase: s.RetryBase, RetryMax: s.RetryMax, ResultTTL: s.ResultTTL, ShutdownGrace: s.ShutdownGrace,
		ReconcileInterval: s.ReconcileInterval,
		// The worker redacts every configured secret (each WAHA key, the
		// validation key, the callback secret) from what WAHA and the
		// validation service answer.
		Validation:     wahaclient.ValidatorConfig{URL: s.ValidationURL, APIKey: s.ValidationAPIKey},
		CallbackSecret: s.CallbackSecret, CallbackAllow: s.CallbackAllow, CallbackConcurrency: s.CallbackConcurrency,
		Logger: &log,
	}
}

// redactURL hides a password in a Redis URL.
func redactURL(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
		if q := u.Query(); len(q) > 0 {
			for k := range q {
				if strings.Contains(strings.ToLower(k), "password") {
					q.Set(k, "xxxxx")
				}
			}
			u.RawQuery = q.Encode()
		}
		return u.String()
	}
	for i := 0; i < len(raw); i++ {
		if raw[i] == '@' {
			for j := i; j >= 0; j-- {
				if raw[j] == ':' && j > 0 && raw[j-1] != '/' {
					return raw[:j+1] + "xxxxx" + raw[i:]
				}
				if raw[j] == '/' {
					break
				}
			}
		}
	}
	return raw
}
