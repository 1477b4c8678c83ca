package tasks

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/store"
)

func TestNewTaskAttemptsLog(t *testing.T) {
	t.Parallel()
	require.Equal(t, store.AttemptRetrying, AttemptRetrying)
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, c := range []struct {
		name string
		rec  store.Record
		want []Attempt
		tid  *string
	}{
		{"none: an empty list, no trace", store.Record{ID: "a"}, []Attempt{}, nil},
		{"two attempts and a trace", store.Record{ID: "b", TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", AttemptLog: []store.Attempt{
			{Number: 1, StartedAt: at, FinishedAt: at.Add(time.Second), HTTPStatus: 503, Outcome: "retrying", Error: "busy"},
			{Number: 2, StartedAt: at.Add(time.Minute), FinishedAt: at.Add(time.Minute), HTTPStatus: 200, Outcome: "logged_out"},
		}}, []Attempt{
			{Attempt: 1, StartedAt: at, FinishedAt: at.Add(time.Second), HTTPStatus: 503, Outcome: "retrying", Error: ptr("busy")},
			{Attempt: 2, StartedAt: at.Add(time.Minute), FinishedAt: at.Add(time.Minute), HTTPStatus: 200, Outcome: "logged_out"},
		}, ptr("4bf92f3577b34da6a3ce929d0e0e4736")},
		{"a requeue: the attempt after a final one is marked", store.Record{ID: "c", AttemptLog: []store.Attempt{
			{Number: 1, StartedAt: at, FinishedAt: at, HTTPStatus: 401, Outcome: "auth_failed"},
			{Number: 2, StartedAt: at, FinishedAt: at, HTTPStatus: 503, Outcome: "retrying"},
			{Number: 3, StartedAt: at, FinishedAt: at, HTTPStatus: 201, Outcome: "logged_out"},
		}}, []Attempt{
			{Attempt: 1, StartedAt: at, FinishedAt: at, HTTPStatus: 401, Outcome: "auth_failed"},
			{Attempt: 2, StartedAt: at, FinishedAt: at, HTTPStatus: 503, Outcome: "retrying", Requeued: true},
			{Attempt: 3, StartedAt: at, FinishedAt: at, HTTPStatus: 201, Outcome: "logged_out"},
		}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			got := newTask(&c.rec)
			require.Equal(t, c.want, got.AttemptsLog)
			require.Equal(t, c.tid, got.TraceID)
		})
	}
}

func ptr(s string) *string { return &s }
