package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"

	"github.com/wahaq/wahaq/internal/api"
	"github.com/wahaq/wahaq/internal/config"
	"github.com/wahaq/wahaq/internal/httpserver"
	"github.com/wahaq/wahaq/internal/metrics"
	"github.com/wahaq/wahaq/internal/schedule"
	"github.com/wahaq/wahaq/tasks"
)

func init() { register(newServeCmd) }

func newServeCmd() *cobra.Command {
	var addr string
	var insecure bool
	var consoleKey string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the HTTP API (plus /healthz, /readyz, /metrics, /openapi.json) and the operator console at /ui/",
		Long: `Serve wahaq's HTTP API: enqueue logouts and bulk teardowns, follow
tasks and batches, cancel, and work the dead-letter queue (the routes are
described by GET /openapi.json). Every /v1 route needs
"Authorization: Bearer <token>" with a token from WAHAQ_API_TOKENS (each an
admin) or from the tokens file WAHAQ_API_TOKENS_FILE (named, each with a role:
read, enqueue, operate or admin, and optionally the instances it may touch);
without tokens the API refuses to start unless --insecure-no-auth is given.
A tokens file that does not parse, names an unknown role or instance, or
repeats a hash stops serve with exit code 2. Every state-changing call is
written to the audit log (GET /v1/audit, wahaq audit).
/healthz, /readyz, /metrics and /openapi.json need no token.

"all" batches are discovered by the workers. The preview of a batch
("dry_run": true, the console's New teardown form) lists the server's
sessions from this process, with the WAHA keys of its settings (the same
WAHA_API_KEY or instances file as the workers'); without them it answers 502.
It also runs the recurring teardowns of the instances file (each tick is
enqueued once, however many replicas run).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a, err := newApp(cmd)
			if err != nil {
				return err
			}
			named, err := a.settings.NamedTokens(config.Names(a.instances))
			if err != nil {
				return usagef("%v", err)
			}
			if len(a.settings.APITokens) == 0 && len(named) == 0 && !insecure {
				return usagef("WAHAQ_API_TOKENS and WAHAQ_API_TOKENS_FILE are empty: set at least one token, or pass --insecure-no-auth to serve without authentication")
			}
			if err := a.ping(cmd.Context()); err != nil {
				return err
			}
			reg := prometheus.NewRegistry()
			reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
			m := metrics.New(nil)
			enqueued, events := m.Enqueued, m.Events
			reg.MustRegister(enqueued, events, m.AuthRefused)
			// One limit on wrong tokens for the API and the console's
			// sign-in (issue 23, M3).
			limiter := api.NewAttemptLimiter(m.AuthRefused)
			pcfg := a.tasksConfig()
			pcfg.OnEnqueued = func(in string, n int) { enqueued.WithLabelValues(in).Add(float64(n)) }
			p, err := tasks.NewProducer(pcfg)
			if err != nil {
				return err
			}
			insp, err := a.inspector()
			if err != nil {
				return err
			}
			st := a.store()
			queues := map[string]string{}
			for _, in := range a.instances {
				queues[in.Name] = st.Queue(in.Name)
			}
			reg.MustRegister(metrics.NewQueueCollector(asynq.NewInspectorFromRedisClient(a.rdb), st, queues, a.log))
			auditLog := a.auditLog()
			// WAHA's webhooks (webhook_hmac_key_env): the receiver and the
			// confirmation counters
			secrets, awaiting := eventSecrets(a.instances)
			for _, in := range a.instances {
				if in.WebhookHMACKeyEnv != "" && in.WebhookHMACKey == "" {
					a.log.Warn().Str("instance", in.Name).Msgf("webhook_hmac_key_env names %s, which is unset or empty: WAHA's events for this instance are refused (401)", in.WebhookHMACKeyEnv)
				}
			}
			if len(awaiting) > 0 {
				reg.MustRegister(metrics.NewConfirmCollector(func(ctx context.Context) (map[string]metrics.ConfirmCount, error) {
					c, err := st.Confirmations(ctx, awaiting)
					out := make(map[string]metrics.ConfirmCount, len(c))
					for in, v := range c {
						out[in] = metrics.ConfirmCount{Confirmed: v.Confirmed, Unconfirmed: v.Unconfirmed}
					}
					return out, err
				}, a.log))
			}
			if !cmd.Flags().Changed("console-key") {
				consoleKey = os.Getenv(consoleKeyEnv)
			}
			// Closed when the shutdown begins: long-polls answer at once.
			stopping := make(chan struct{})
			if consoleKey == "" && !insecure {
				a.log.Warn().Msg(consoleKeyEnv + " is not set: console sessions and Idempotency-Key scopes hold within this process only (not across restarts or replicas)")
			}
			h, err := api.New(api.Config{
				// The server's secret: it also keys the names of the
				// idempotency scopes in Redis (issue 23, M6).
				ScopeKey: []byte(consoleKey),
				Stopping: stopping,
				Limiter:  limiter,
				Producer: p, Inspector: insp, Tokens: a.settings.APITokens, NamedTokens: named, InsecureNoAuth: insecure,
				Audit:          auditLog,
				Ready:          func(ctx context.Context) error { return a.rdb.Ping(ctx).Err() },
				Metrics:        promhttp.HandlerFor(reg, promhttp.HandlerOpts{}),
				Logger:         &a.log,
				RequestTimeout: a.settings.RequestTimeout,
				EventSecrets:   secrets,
				OnEvent:        func(in, res string) { events.WithLabelValues(in, res).Inc() },
				Preflight:      a.preflight(),
			})
			if err != nil {
				return err
			}
			// The operator console at /ui/ (issue 13).
			if h, err = withConsole(cmd, a, p, insp, h, insecure, consoleKey, named, auditLog, limiter); err != nil {
				return err
			}
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return err
			}
			if a.tracing {
				// One trace per request; the enqueue and the attempts join it.
				h = otelhttp.NewHandler(h, "wahaq.api")
			}
			srv := httpserver.New(h, a.settings.HTTP)
			srv.RegisterOnShutdown(func() { close(stopping) })
			ctx := cmd.Context()
			go schedule.New(p, st, a.schedules, a.log, nil).Run(ctx)
			errc := make(chan error, 1)
			go func() { errc <- srv.Serve(ln) }()
			a.log.Info().Str("addr", ln.Addr().String()).Msg("HTTP API listening")
			select {
			case err := <-errc:
				return err
			case <-ctx.Done():
			}
			sctx, cancel := context.WithTimeout(context.Background(), a.settings.ShutdownGrace)
			defer cancel()
			if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&addr, "addr", ":8080", "listen address")
	cmd.Flags().BoolVar(&insecure, "insecure-no-auth", false, "serve the API without bearer tokens (development only)")
	addConsoleFlags(cmd, &consoleKey)
	return cmd
}

// eventSecrets returns the webhook secrets of the instances that name one
// (webhook_hmac_key_env), and the names of all that name a variable. An
// instance whose variable is unset is logged at start and refuses events.
func eventSecrets(insts []config.Instance) (map[string]string, []string) {
	secrets := map[string]string{}
	var names []string
	for _, in := range insts {
		if in.WebhookHMACKeyEnv == "" {
			continue
		}
		names = append(names, in.Name)
		if in.WebhookHMACKey != "" {
			secrets[in.Name] = in.WebhookHMACKey
		}
	}
	return secrets, names
}
