package api

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/tasks"
)

// TestProblemContentType: a problem is application/problem+json only for a
// client whose Accept names that type; every other client (n8n's HTTP
// Request node sends "application/json, text/plain, */*") gets the same
// body as application/json.
func TestProblemContentType(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, tc := range []struct {
		accept []string // nil: no Accept header
		want   string
	}{
		{nil, plainJSON},
		{[]string{"*/*"}, plainJSON},
		{[]string{"application/json, text/plain, */*"}, plainJSON},
		{[]string{"application/*"}, plainJSON},
		{[]string{"application/problem+json"}, problemJSON},
		{[]string{"application/json", "application/problem+json; q=0.5"}, problemJSON},
		{[]string{"text/html, application/problem+json;q=0.9"}, problemJSON},
		{[]string{"application/problem+json;q=0"}, plainJSON},
		{[]string{"application/problem+jsonx"}, plainJSON},
	} {
		for _, r := range []*http.Request{
			e.req("POST", "/v1/logouts", `{"session":"bad name!"}`), // 400
			e.req("GET", "/v1/nosuch", ""),                          // 404 from the mux
		} {
			r.Header.Del("Accept")
			for _, a := range tc.accept {
				r.Header.Add("Accept", a)
			}
			w := e.serve(r)
			require.Equal(t, tc.want, w.Header().Get("Content-Type"), "Accept %q on %s", tc.accept, r.URL.Path)
			p := requireProblem(t, w, w.Code)
			require.GreaterOrEqual(t, p.Status, 400)
		}
	}
	// 401 comes before any route logic.
	r := e.req("GET", "/v1/dlq", "")
	r.Header.Del("Authorization")
	r.Header.Del("Accept")
	w := e.serve(r)
	require.Equal(t, http.StatusUnauthorized, w.Code)
	require.Equal(t, plainJSON, w.Header().Get("Content-Type"))
	e.requireNothingEnqueued()
}

// TestInDurations: "in" takes Go durations, a day unit and ISO 8601, and
// schedules the logout that far ahead.
func TestInDurations(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"30m", 30 * time.Minute},
		{"PT30M", 30 * time.Minute},
		{"P7D", 7 * 24 * time.Hour},
		{"P1DT2H", 26 * time.Hour},
		{"7d", 7 * 24 * time.Hour},
		{"1d12h", 36 * time.Hour},
	} {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			before := time.Now()
			w := e.do("POST", "/v1/logouts", `{"session":"later","in":"`+tc.in+`"}`)
			require.Equal(t, http.StatusAccepted, w.Code, w.Body.String())
			task := decodeJSON[tasks.Task](t, w)
			require.Equal(t, tasks.StateScheduled, task.State)
			require.NotNil(t, task.ScheduledFor)
			require.False(t, task.ScheduledFor.Before(before.Add(tc.want).Truncate(time.Second)), "scheduled for %s", task.ScheduledFor)
			require.False(t, task.ScheduledFor.After(time.Now().Add(tc.want)), "scheduled for %s", task.ScheduledFor)

			w = e.do("POST", "/v1/batches", `{"sessions":["b-`+tc.in[:1]+`"],"in":"`+tc.in+`"}`)
			require.Equal(t, http.StatusAccepted, w.Code, w.Body.String())
		})
	}
}
