package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/wahaq/wahaq/internal/config"
	"github.com/wahaq/wahaq/internal/httpserver"
	"github.com/wahaq/wahaq/internal/metrics"
	"github.com/wahaq/wahaq/internal/schedule"
	"github.com/wahaq/wahaq/tasks"
	"github.com/wahaq/wahaq/worker"
)

func init() { register(newWorkerCmd) }

// workerReadyTimeout bounds one /readyz Redis PING.
const workerReadyTimeout = 2 * time.Second

func newWorkerCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "worker [--metrics-addr :9090]",
		Short: "Run a worker: perform logouts from the queue until SIGINT/SIGTERM",
		Long: `Run a worker: take logout tasks from Redis and perform them against the WAHA
servers, with retries and backoff, until SIGINT or SIGTERM. It also runs the
recurring teardowns of the instances file (each tick is enqueued once, however
many workers run).

On SIGINT/SIGTERM the worker stops taking tasks, lets in-flight logouts finish
within WAHAQ_SHUTDOWN_GRACE (30s), hands the others back to the queue, and
exits 0.

--metrics-addr serves, without authentication:
  /metrics  Prometheus metrics (wahaq_tasks_total, wahaq_queue_tasks, ...)
  /healthz  200 while the process runs
  /readyz   200 when Redis answers a PING, else 503
An empty --metrics-addr serves nothing. WAHAQ_METRICS_ADDR sets it too (the
flag wins). A second worker on one host needs its own address, or none: it
cannot listen on the first one's port, and exits 1 saying so.

Each instance of WAHAQ_INSTANCES needs its key: the worker refuses to start
(exit 2) when an api_key_env names a variable that is unset or empty, or an
instance has no api_key_env (write api_key_env: "" for a server without a
key).

Exit codes: 0 stopped by a signal; 1 Redis does not answer at start, or the
address cannot be listened on; 2 bad settings (a missing key among them).`,
		Example: `  REDIS_URL=redis://redis:6379/0 WAHA_BASE_URL=http://waha:3000 WAHA_API_KEY=... wahaq worker
  wahaq worker --metrics-addr 127.0.0.1:9090 --concurrency 50`,
		Args: noArgs("worker", "configure it with flags or environment variables"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			a, err := newApp(cmd)
			if err != nil {
				return err
			}
			if err := config.RequireKeys(a.instances); err != nil {
				return err
			}
			metricsAddr := config.MetricsAddr(cmd.Flags())
			routeRedisLogs(a.log, zerolog.WarnLevel)
			reg := prometheus.NewRegistry()
			reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
			cfg := a.workerConfig()
			cfg.Registerer = reg
			w, err := worker.New(cfg)
			if err != nil {
				// Every error of worker.New is a setting that cannot work.
				return fmt.Errorf("%w: %w", config.ErrBadConfig, err)
			}
			// The schedule runner's producer; what it enqueues counts in this
			// worker's wahaq_enqueued_total.
			pcfg := a.tasksConfig()
			pcfg.OnEnqueued = w.OnEnqueued
			producer, err := tasks.NewProducer(pcfg)
			if err != nil {
				return fmt.Errorf("%w: %w", config.ErrBadConfig, err)
			}
			ctx := cmd.Context()
			if err := a.ping(ctx); err != nil {
				return fmt.Errorf("the worker cannot start: %w", err)
			}
			st := a.store()
			queues := make(map[string]string, len(a.instances))
			for _, in := range a.instances {
				queues[in.Name] = st.Queue(in.Name)
			}
			reg.MustRegister(metrics.NewQueueCollector(asynq.NewInspectorFromRedisClient(a.rdb), st, queues, a.log))

			var srv *http.Server
			serveErr := make(chan error, 1)
			if metricsAddr != "" {
				ln, err := net.Listen("tcp", metricsAddr)
				if err != nil {
					return fmt.Errorf("the worker cannot listen on --metrics-addr %s: %w (another worker on this host? give each its own WAHAQ_METRICS_ADDR, or an empty one for none)", metricsAddr, errors.Unwrap(err))
				}
				srv = httpserver.New(workerMux(a, reg), a.settings.HTTP)
				go func() { serveErr <- srv.Serve(ln) }()
				a.log.Info().Str("addr", ln.Addr().String()).Msg("serving /metrics, /healthz and /readyz")
			}
			if err := w.Start(); err != nil {
				if srv != nil {
					_ = srv.Close()
				}
				return err
			}
			var wg sync.WaitGroup
			schedCtx, stopSched := context.WithCancel(ctx)
			wg.Add(1)
			go func() {
				defer wg.Done()
				schedule.New(producer, st, a.schedules, a.log, nil).Run(schedCtx)
			}()

			var runErr error
			select {
			case <-ctx.Done():
				a.log.Info().Dur("grace", a.settings.ShutdownGrace).Msg("signal received: finishing in-flight logouts")
			case err := <-serveErr:
				runErr = fmt.Errorf("the metrics server on %s stopped: %w", metricsAddr, err)
				a.log.Error().Err(err).Msg("metrics server stopped; shutting down")
			}
			stopSched()
			w.Shutdown()
			wg.Wait()
			if srv != nil {
				sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
				_ = srv.Shutdown(sctx)
				cancel()
			}
			return runErr
		},
	}
	cmd.Flags().String("metrics-addr", config.DefaultMetricsAddr, "address of /metrics, /healthz and /readyz (empty: none) (env WAHAQ_METRICS_ADDR)")
	return cmd
}

// workerMux serves /metrics, /healthz and /readyz.
func workerMux(a *app, reg *prometheus.Registry) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), workerReadyTimeout)
		defer cancel()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := a.rdb.Ping(ctx).Err(); err != nil {
			a.log.Warn().Err(err).Msg("readiness: redis does not answer")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = fmt.Fprintln(w, "not ready: redis does not answer")
			return
		}
		_, _ = fmt.Fprintln(w, "ok")
	})
	return mux
}
