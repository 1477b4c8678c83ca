package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/tasks"
)

// The history says where a requeue began, and its numbers count on.
func TestPrintAttemptsMarksARequeue(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC)
	e := "waha logout: 401 Unauthorized"
	var b bytes.Buffer
	require.NoError(t, printAttempts(&b, []tasks.Attempt{
		{Attempt: 1, StartedAt: at, FinishedAt: at.Add(3 * time.Millisecond), Outcome: "auth_failed", HTTPStatus: 401, Error: &e},
		{Attempt: 2, StartedAt: at.Add(time.Minute), FinishedAt: at.Add(time.Minute + 5*time.Millisecond), Outcome: "logged_out", HTTPStatus: 201, Requeued: true},
	}))
	require.Equal(t, "history:\n"+
		"  #1  2026-12-07T08:00:00.000Z  3ms  HTTP 401  auth_failed  waha logout: 401 Unauthorized\n"+
		"  -- run again --\n"+
		"  #2  2026-12-07T08:01:00.000Z  5ms  HTTP 201  logged_out  \n", b.String())
}
