package main

import (
	"fmt"
	"net/http"
	"os"

	"github.com/spf13/cobra"

	"github.com/wahaq/wahaq/internal/access"
	"github.com/wahaq/wahaq/internal/api"
	"github.com/wahaq/wahaq/internal/audit"
	"github.com/wahaq/wahaq/internal/console"
	"github.com/wahaq/wahaq/tasks"
)

// consoleKeyEnv names the variable of the console's session signing key.
const consoleKeyEnv = "WAHAQ_CONSOLE_KEY"

// addConsoleFlags registers serve's console settings.
func addConsoleFlags(cmd *cobra.Command, key *string) {
	cmd.Flags().StringVar(key, "console-key", "", fmt.Sprintf(
		"the server key (at least %d bytes): signs operator-console session cookies and keys the names of Idempotency-Key scopes in Redis; default: random per process, so sessions and idempotency keys end on restart (env %s; prefer the environment variable)",
		console.MinKeyBytes, consoleKeyEnv))
	cmd.Flags().String("trace-url", "", "link template of a task's trace in the console, e.g. https://jaeger/trace/{trace_id}; default: no link (env "+traceURLEnv+")")
}

// traceURLEnv names the variable of the console's trace link template.
const traceURLEnv = "WAHAQ_TRACE_URL"

// traceURL is --trace-url, or WAHAQ_TRACE_URL when the flag is not given.
func traceURL(cmd *cobra.Command) string {
	if cmd.Flags().Changed("trace-url") {
		v, _ := cmd.Flags().GetString("trace-url")
		return v
	}
	return os.Getenv(traceURLEnv)
}

// withConsole serves the operator console at /ui/ next to the API handler.
func withConsole(cmd *cobra.Command, a *app, p *tasks.Producer, insp *tasks.Inspector, apiHandler http.Handler, insecure bool, key string,
	named []access.Token, auditLog *audit.Log, limiter *api.AttemptLimiter) (http.Handler, error) {
	if !cmd.Flags().Changed("console-key") {
		key = os.Getenv(consoleKeyEnv)
	}
	servers := make([]console.Server, len(a.instances))
	for i, in := range a.instances {
		capacity := in.Concurrency
		if capacity == 0 {
			capacity = a.settings.InstanceConcurrency
		}
		servers[i] = console.Server{Name: in.Name, Cap: capacity, Rate: in.Rate}
	}
	cfg := console.Config{Inspector: insp, Producer: p, Redis: a.rdb, Namespace: a.settings.Namespace, Servers: servers,
		Tokens: a.settings.APITokens, NamedTokens: named, Audit: auditLog, InsecureNoAuth: insecure, Logger: &a.log, TraceURL: traceURL(cmd),
		Limiter:   limiter,
		Preflight: a.preflight()}
	if key != "" {
		cfg.Key = []byte(key)
	}
	c, err := console.New(cfg)
	if err != nil {
		return nil, usagef("%v", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/ui/", c)
	mux.Handle("/ui", c)
	mux.Handle("/", apiHandler)
	return mux, nil
}
