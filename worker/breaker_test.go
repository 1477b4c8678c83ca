package worker_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/tasks"
	"github.com/wahaq/wahaq/wahaclient/wahafake"
	"github.com/wahaq/wahaq/wahaqtest"
	"github.com/wahaq/wahaq/worker"
)

// TestCircuitBreaker: transient failures (5xx) open a server's breaker after
// worker.BreakerFailures calls; its other tasks are then handed back without
// calling the server and without spending a retry, and
// wahaq_circuit_state{instance} says 2. An answer that is the server
// speaking (401) never opens it.
func TestCircuitBreaker(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		status int
		open   bool
	}{
		{name: "503 opens it", status: http.StatusServiceUnavailable, open: true},
		{name: "401 does not", status: http.StatusUnauthorized},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			const n = 12
			reg := prometheus.NewRegistry()
			env := wahaqtest.Start(t, wahaqtest.Options{
				Tasks: func(c *tasks.Config) { c.MaxRetries = 1 },
				Worker: func(cfg *worker.Config) {
					cfg.Registerer = reg
					// One call at a time, so the breaker sees the failures in
					// order and opens after exactly BreakerFailures of them.
					cfg.InstanceConcurrency = 1
					cfg.RetryBase, cfg.RetryMax = 100*time.Millisecond, 200*time.Millisecond
				},
			})
			env.Fake.SetDefaultFault(&wahafake.Fault{Status: tc.status})
			names := env.Fake.AddSessions("cb", n, wahafake.StatusWorking)
			info, err := env.Producer.EnqueueBatch(context.Background(), tasks.BatchRequest{Sessions: names})
			require.NoError(t, err)
			state := func() float64 {
				mfs, err := reg.Gather()
				require.NoError(t, err)
				for _, mf := range mfs {
					if mf.GetName() == "wahaq_circuit_state" {
						for _, m := range mf.GetMetric() {
							if m.GetLabel()[0].GetValue() == env.Instance {
								return m.GetGauge().GetValue()
							}
						}
					}
				}
				return -1
			}
			if !tc.open {
				b := env.WaitBatch(t, info.BatchID, 30*time.Second)
				require.EqualValues(t, n, b.Outcomes[tasks.OutcomeAuthFailed])
				require.Zero(t, state(), "401s keep the breaker closed")
				return
			}
			require.Eventually(t, func() bool { return state() == 2 }, 20*time.Second, 10*time.Millisecond)
			// Calls that began before the breaker opened may still be
			// answering; count from when none is in flight.
			require.Eventually(t, func() bool { return env.Fake.InFlight() == 0 }, 10*time.Second, 5*time.Millisecond)
			calls := env.Fake.TotalLogoutCalls()
			// The failed tasks come back within RetryMax; the breaker
			// hands them back without calling the server.
			time.Sleep(time.Second)
			require.Equal(t, calls, env.Fake.TotalLogoutCalls(), "an open breaker calls nobody")
			b, err := env.Inspector.Batch(context.Background(), info.BatchID)
			require.NoError(t, err)
			// MaxRetries is 1: a hand-back that spent a retry would have
			// dead-lettered the tasks that failed once.
			require.Zero(t, b.Counts[tasks.StateDead], "handed-back tasks spend no retry")
			require.Zero(t, b.Counts[tasks.StateCompleted])
			require.LessOrEqual(t, calls, 2*worker.BreakerFailures, "about BreakerFailures calls (each may try both logout routes)")
		})
	}
}

// TestCircuitReported: a breaker's state changes reach Redis, so an
// Inspector in another process (the console's) reads the server's circuit
// open while WAHA answers 503 and closed once it recovers.
func TestCircuitReported(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env := wahaqtest.Start(t, wahaqtest.Options{
		Worker: func(cfg *worker.Config) {
			cfg.InstanceConcurrency = 1
			cfg.RetryBase, cfg.RetryMax = 100*time.Millisecond, 200*time.Millisecond
		},
	})
	circuit := func() tasks.Circuit {
		cs, err := env.Inspector.Circuits(ctx, "")
		require.NoError(t, err)
		return cs[env.Instance]
	}
	require.Equal(t, tasks.Circuit{State: tasks.CircuitClosed}, circuit(), "no worker reports before a failure")
	env.Fake.SetDefaultFault(&wahafake.Fault{Status: http.StatusServiceUnavailable})
	names := env.Fake.AddSessions("cr", 8, wahafake.StatusWorking)
	info, err := env.Producer.EnqueueBatch(ctx, tasks.BatchRequest{Sessions: names})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return circuit().State == tasks.CircuitOpen }, 20*time.Second, 10*time.Millisecond)
	require.Equal(t, tasks.Circuit{State: tasks.CircuitOpen, Open: 1}, circuit(), "one worker holds it open")

	env.Fake.SetDefaultFault(nil)
	// The handed-back tasks return after BreakerOpen; the trial call
	// succeeds and the breaker closes.
	b := env.WaitBatch(t, info.BatchID, 30*time.Second)
	require.EqualValues(t, len(names), b.Counts[tasks.StateCompleted])
	require.Eventually(t, func() bool { return circuit() == tasks.Circuit{State: tasks.CircuitClosed} }, 5*time.Second, 10*time.Millisecond)

	_, err = env.Inspector.Circuits(ctx, "nope")
	require.ErrorIs(t, err, tasks.ErrUnknownInstance)
}
