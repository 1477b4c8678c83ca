package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/base"
	"github.com/wahaq/wahaq/tasks"
	"github.com/wahaq/wahaq/wahaclient"
)

func apiErr(status int, kind error) *wahaclient.APIError {
	return &wahaclient.APIError{Op: "logout", StatusCode: status, Message: http.StatusText(status), Kind: kind}
}

func TestClassify(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		err     error
		class   class
		outcome tasks.Outcome
	}{
		{"success", nil, classDone, tasks.OutcomeLoggedOut},
		{"404 session not found", apiErr(404, wahaclient.ErrSessionNotFound), classDone, tasks.OutcomeNotFound},
		{"401", apiErr(401, wahaclient.ErrUnauthorized), classAuth, tasks.OutcomeAuthFailed},
		{"403 scoped key", apiErr(403, wahaclient.ErrForbidden), classAuth, tasks.OutcomeAuthFailed},
		{"validation 401", &wahaclient.APIError{Op: "validate", StatusCode: 401, Kind: wahaclient.ErrUnauthorized}, classAuth, tasks.OutcomeAuthFailed},
		{"wrapped 401", fmt.Errorf("attempt: %w", apiErr(401, wahaclient.ErrUnauthorized)), classAuth, tasks.OutcomeAuthFailed},
		{"422 core", apiErr(422, wahaclient.ErrRejected), classRejected, tasks.OutcomeRejected},
		{"501 engine", apiErr(501, wahaclient.ErrRejected), classRejected, tasks.OutcomeRejected},
		{"500 lock timeout", apiErr(500, wahaclient.ErrSessionBusy), classTransient, tasks.OutcomeRetriesExhausted},
		{"invalid session name", fmt.Errorf("%w: bad", wahaclient.ErrInvalidSessionName), classRejected, tasks.OutcomeRejected},
		{"invalid input", fmt.Errorf("%w: instance not configured", tasks.ErrInvalidInput), classRejected, tasks.OutcomeRejected},
		{"503", apiErr(503, wahaclient.ErrTransient), classTransient, tasks.OutcomeRetriesExhausted},
		{"429 retry-after", &wahaclient.APIError{Op: "logout", StatusCode: 429, RetryAfter: time.Second, Kind: wahaclient.ErrTransient}, classTransient, tasks.OutcomeRetriesExhausted},
		{"connection refused", &wahaclient.APIError{Op: "logout", Kind: wahaclient.ErrTransient, Err: errors.New("connection refused")}, classTransient, tasks.OutcomeRetriesExhausted},
		{"route missing on both routes", apiErr(404, wahaclient.ErrRouteMissing), classTransient, tasks.OutcomeRetriesExhausted},
		{"deadline", context.DeadlineExceeded, classTransient, tasks.OutcomeRetriesExhausted},
		{"canceled", context.Canceled, classTransient, tasks.OutcomeRetriesExhausted},
		{"unknown", errors.New("boom"), classTransient, tasks.OutcomeRetriesExhausted},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cls, o := classify(c.err)
			require.Equal(t, c.class, cls)
			require.Equal(t, c.outcome, o)
			if cls == classDone {
				require.Equal(t, tasks.StateCompleted, o.State())
			} else {
				require.Equal(t, tasks.StateDead, o.State())
			}
		})
	}
}

func testWorker(now time.Time) *Worker {
	return &Worker{cfg: Config{RetryBase: 100 * time.Millisecond, RetryMax: 10 * time.Second, ResultTTL: time.Hour,
		Now: func() time.Time { return now }}}
}

func TestDecide(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 6, 1, 12, 0, 0, 300_000_000, time.UTC)
	w := testWorker(now)
	att := func(n, maxRetries int) *attempt {
		return &attempt{ID: "id", Number: n, Payload: base.Payload{Instance: "default", Session: "sales-bot", MaxRetries: maxRetries}}
	}

	t.Run("logged out", func(t *testing.T) {
		res := &wahaclient.LogoutResult{HTTPStatus: 201, Session: &wahaclient.Session{Name: "sales-bot", Status: "STARTING"}}
		f, d := w.decide(att(1, 3), res, nil)
		require.Zero(t, d)
		require.Equal(t, tasks.StateCompleted, f.State)
		require.Equal(t, tasks.OutcomeLoggedOut, f.Outcome)
		require.Empty(t, f.LastError)
		require.Equal(t, time.Hour, f.ResultTTL)
		require.Equal(t, "success", f.Result.Status)
		require.Equal(t, 201, f.Result.HTTPStatus)
		require.JSONEq(t, `{"name":"sales-bot","status":"STARTING","me":null}`, string(f.Result.SessionAfter))
	})
	t.Run("not found is a success", func(t *testing.T) {
		f, _ := w.decide(att(1, 3), nil, apiErr(404, wahaclient.ErrSessionNotFound))
		require.Equal(t, tasks.StateCompleted, f.State)
		require.Equal(t, tasks.OutcomeNotFound, f.Outcome)
		require.Equal(t, "success", f.Result.Status)
		require.Equal(t, 404, f.Result.HTTPStatus)
		require.Contains(t, f.Result.Message, "sales-bot")
	})
	t.Run("auth failure is dead at once", func(t *testing.T) {
		f, _ := w.decide(att(1, 3), nil, apiErr(401, wahaclient.ErrUnauthorized))
		require.Equal(t, tasks.StateDead, f.State)
		require.Equal(t, tasks.OutcomeAuthFailed, f.Outcome)
		require.Equal(t, "error", f.Result.Status)
		require.Equal(t, 401, f.Result.HTTPStatus)
		require.Contains(t, f.LastError, "401")
		require.True(t, f.NextAttempt.IsZero())
	})
	t.Run("transient retries on a whole second", func(t *testing.T) {
		f, d := w.decide(att(1, 3), nil, apiErr(503, wahaclient.ErrTransient))
		require.Equal(t, tasks.StateRetrying, f.State)
		require.Nil(t, f.Result, "a retrying task has no result yet")
		require.Contains(t, f.LastError, "503")
		require.True(t, f.NextAttempt.Equal(now.Add(d)), "delay %s does not lead to next %s", d, f.NextAttempt)
		require.False(t, f.NextAttempt.Before(now.Add(w.cfg.RetryBase)))
		require.Equal(t, f.NextAttempt, f.NextAttempt.Truncate(time.Second), "asynq schedules in whole seconds")
	})
	t.Run("last allowed retry, then exhausted", func(t *testing.T) {
		f, _ := w.decide(att(3, 3), nil, apiErr(503, wahaclient.ErrTransient))
		require.Equal(t, tasks.StateRetrying, f.State)
		f, _ = w.decide(att(4, 3), nil, apiErr(503, wahaclient.ErrTransient))
		require.Equal(t, tasks.StateDead, f.State)
		require.Equal(t, tasks.OutcomeRetriesExhausted, f.Outcome)
		require.Equal(t, 503, f.Result.HTTPStatus)
	})
	t.Run("no retries", func(t *testing.T) {
		f, _ := w.decide(att(1, 0), nil, apiErr(503, wahaclient.ErrTransient))
		require.Equal(t, tasks.StateDead, f.State)
		require.Equal(t, tasks.OutcomeRetriesExhausted, f.Outcome)
	})
	t.Run("retry-after honoured", func(t *testing.T) {
		err := &wahaclient.APIError{Op: "logout", StatusCode: 429, RetryAfter: 3 * time.Second, Kind: wahaclient.ErrTransient}
		f, _ := w.decide(att(1, 3), nil, err)
		require.Equal(t, tasks.StateRetrying, f.State)
		require.False(t, f.NextAttempt.Before(now.Add(3*time.Second)), "next %s", f.NextAttempt)
	})
	t.Run("retry-after capped at RetryMax", func(t *testing.T) {
		err := &wahaclient.APIError{Op: "logout", StatusCode: 503, RetryAfter: time.Hour, Kind: wahaclient.ErrTransient}
		f, _ := w.decide(att(1, 3), nil, err)
		require.False(t, f.NextAttempt.After(dueTime(now.Add(w.cfg.RetryMax))), "next %s", f.NextAttempt)
	})
	t.Run("context errors are spelled for people", func(t *testing.T) {
		f, _ := w.decide(att(1, 3), nil, fmt.Errorf("logout: %w", context.DeadlineExceeded))
		require.Contains(t, f.LastError, "timed out")
		f, _ = w.decide(att(1, 3), nil, context.Canceled)
		require.Contains(t, f.LastError, "shutting down")
	})
}

func TestResultJSONShape(t *testing.T) {
	t.Parallel()
	w := testWorker(time.Now())
	f, _ := w.decide(&attempt{Payload: base.Payload{Session: "s"}}, nil, apiErr(422, wahaclient.ErrRejected))
	b, err := json.Marshal(f.Result)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	for _, k := range []string{"status", "message", "http_status", "session_after"} {
		require.Contains(t, m, k)
	}
	require.Equal(t, "error", m["status"])
}
