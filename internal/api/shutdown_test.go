package api

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/httpserver"
	"github.com/wahaq/wahaq/tasks"
)

// TestShutdownWakesLongPolls is issue 23's M9: on SIGTERM serve held 50
// long-polls until its shutdown grace cut them off with no answer. Here a
// real server, built as serve builds it (Config.Stopping closed by
// RegisterOnShutdown), holds 20 real clients waiting 60 s on tasks and a
// batch that will not finish; the shutdown begins, and every client gets
// 200 with the current state, and Shutdown returns with all connections
// closed well inside a bound shorter than the waits.
func TestShutdownWakesLongPolls(t *testing.T) {
	t.Parallel()
	stopping := make(chan struct{})
	e := newEnv(t, func(c *Config) { c.Stopping = stopping })
	t.Cleanup(func() { _ = e.insp.Close() }) // its subscription for waiters
	ctx := context.Background()
	task, err := e.prod.Enqueue(ctx, tasks.LogoutRequest{Session: "held", When: tasks.When{In: time.Hour}})
	require.NoError(t, err)
	batch, err := e.prod.EnqueueBatch(ctx, tasks.BatchRequest{Sessions: []string{"held-a", "held-b"}})
	require.NoError(t, err)

	var inside atomic.Int32
	srv := httpserver.New(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inside.Add(1)
		e.h.ServeHTTP(w, r)
	}), httpserver.Limits{})
	srv.RegisterOnShutdown(func() { close(stopping) })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	const clients = 20
	type answer struct {
		code  int
		state string
		done  *bool
		err   error
	}
	answers := make(chan answer, clients)
	var wg sync.WaitGroup
	for i := range clients {
		path := "/v1/tasks/" + task.ID + "?wait=60s"
		if i%2 == 1 {
			path = "/v1/batches/" + batch.BatchID + "?wait=60s"
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodGet, "http://"+ln.Addr().String()+path, nil)
			req.Header.Set("Authorization", "Bearer "+tokenA)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				answers <- answer{err: err}
				return
			}
			defer resp.Body.Close()
			var v struct {
				State string `json:"state"`
				Done  *bool  `json:"done"`
			}
			err = json.NewDecoder(resp.Body).Decode(&v)
			answers <- answer{code: resp.StatusCode, state: v.State, done: v.Done, err: err}
		}()
	}
	// Every client is in the handler (a bound, not a timing assertion).
	require.Eventually(t, func() bool { return inside.Load() == clients }, 20*time.Second, 5*time.Millisecond)

	sctx, cancel := context.WithTimeout(ctx, 30*time.Second) // half the waits
	defer cancel()
	require.NoError(t, srv.Shutdown(sctx), "the long-polls held the shutdown")
	require.True(t, errors.Is(<-served, http.ErrServerClosed))
	wg.Wait()
	close(answers)
	n := 0
	for a := range answers {
		require.NoError(t, a.err)
		require.Equal(t, http.StatusOK, a.code)
		if a.done != nil {
			require.False(t, *a.done, "the batch's current state")
		} else {
			require.Equal(t, "scheduled", a.state, "the task's current state")
		}
		n++
	}
	require.Equal(t, clients, n)
}
