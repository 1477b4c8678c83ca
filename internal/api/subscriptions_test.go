package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/tasks"
)

// TestSubscriptionsAPI: create, list, read and delete; bad input is 400
// with a detail and stores nothing.
func TestSubscriptionsAPI(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, c := range []struct{ body, detail string }{
		{`{}`, `"url"`},
		{`{"url":"http://evil.example/hook"}`, "callback"},
		{`{"url":"http://127.0.0.1:9/h","events":["task.done"]}`, `"task.done"`},
		{`{"url":"http://127.0.0.1:9/h","instances":["nope"]}`, "nope"},
		{`{"url":"http://127.0.0.1:9/h","secret":"x"}`, "secret"},
	} {
		p := requireProblem(t, e.do("POST", "/v1/subscriptions", c.body), http.StatusBadRequest)
		require.Contains(t, p.Detail, c.detail, c.body)
	}
	w := e.do("GET", "/v1/subscriptions", "")
	require.Equal(t, http.StatusOK, w.Code)
	require.JSONEq(t, `{"subscriptions":[]}`, w.Body.String())

	w = e.do("POST", "/v1/subscriptions", `{"url":"http://127.0.0.1:9/h","events":["batch.done"],"instances":["eu"]}`)
	require.Equal(t, http.StatusCreated, w.Code, w.Body.String())
	var sub tasks.Subscription
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &sub))
	require.Equal(t, "/v1/subscriptions/"+sub.ID, w.Header().Get("Location"))
	require.Equal(t, []string{"batch.done"}, sub.Events)
	require.Equal(t, []string{"eu"}, sub.Instances)
	w = e.do("POST", "/v1/subscriptions", `{"url":"http://127.0.0.1:9/all"}`)
	require.Equal(t, http.StatusCreated, w.Code)
	var all tasks.Subscription
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &all))
	require.Equal(t, []string{"task.final", "batch.done"}, all.Events)
	require.Equal(t, []string{"default", "eu"}, all.Instances, "every configured instance")

	w = e.do("GET", "/v1/subscriptions", "")
	var list subscriptionList
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &list))
	require.Len(t, list.Subscriptions, 2)
	w = e.do("GET", "/v1/subscriptions/"+sub.ID, "")
	require.Equal(t, http.StatusOK, w.Code)
	w = e.do("DELETE", "/v1/subscriptions/"+sub.ID, "")
	require.Equal(t, http.StatusOK, w.Code)
	requireProblem(t, e.do("GET", "/v1/subscriptions/"+sub.ID, ""), http.StatusNotFound)
	requireProblem(t, e.do("DELETE", "/v1/subscriptions/"+sub.ID, ""), http.StatusNotFound)
}

// TestTooManyCallbacksIs409: the request that would give a live task one
// callback URL too many is refused with a detail naming the task.
func TestTooManyCallbacksIs409(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var id string
	for i := range tasks.MaxCallbacks {
		w := e.do("POST", "/v1/logouts", fmt.Sprintf(`{"session":"full","in":"1h","callback_url":"http://127.0.0.1:9/%d"}`, i))
		require.Less(t, w.Code, 300)
		var tk tasks.Task
		require.NoError(t, json.Unmarshal(w.Body.Bytes(), &tk))
		id = tk.ID
	}
	p := requireProblem(t, e.do("POST", "/v1/logouts", `{"session":"full","callback_url":"http://127.0.0.1:9/over"}`), http.StatusConflict)
	require.True(t, strings.Contains(p.Detail, id) && strings.Contains(p.Detail, "16"), p.Detail)
}
