package api

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/base"
	"github.com/wahaq/wahaq/internal/store"
	"github.com/wahaq/wahaq/tasks"
)

// batchWithDead posts a batch of four sessions and kills two of them
// (auth_failed, rejected) and logs one out, as a worker would. It returns
// the batch id.
func (e *env) batchWithDead() string {
	e.t.Helper()
	ctx := context.Background()
	w := e.do("POST", "/v1/batches", `{"sessions":["bt-ok","bt-auth","bt-rej","bt-wait"]}`)
	require.Equal(e.t, http.StatusAccepted, w.Code, w.Body.String())
	id := decodeJSON[batchAccepted](e.t, w).BatchID
	ids, err := e.rdb.LRange(ctx, store.KeysFor(e.ns, "default").BatchTasks(id), 0, -1).Result()
	require.NoError(e.t, err)
	require.Len(e.t, ids, 4)
	end := func(tid, session, state string, o tasks.Outcome) {
		p := base.Payload{Instance: "default", Session: session, BatchID: id, MaxRetries: 10}
		ok, err := e.store().Start(ctx, tid, p, 1, 0, time.Minute)
		require.NoError(e.t, err)
		require.True(e.t, ok)
		require.NoError(e.t, e.store().Finish(ctx, tid, p, store.Finish{State: state, Outcome: string(o),
			LastError: "WAHA answered " + string(o), ResultTTL: time.Hour}))
	}
	end(ids[0], "bt-ok", store.StateCompleted, tasks.OutcomeLoggedOut)
	end(ids[1], "bt-auth", store.StateDead, tasks.OutcomeAuthFailed)
	end(ids[2], "bt-rej", store.StateDead, tasks.OutcomeRejected)
	return id
}

func TestGetBatchTasks(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.batchWithDead()
	// A dead letter of no batch: never listed with the batch.
	w := e.do("POST", "/v1/logouts", `{"session":"bt-lone"}`)
	require.Equal(t, http.StatusAccepted, w.Code)
	e.kill(decodeJSON[tasks.Task](t, w).ID, "default", "bt-lone", tasks.OutcomeAuthFailed)

	base := "/v1/batches/" + id + "/tasks"
	for _, tc := range []struct {
		name, query string
		want        []string
		cursor      bool
	}{
		{"all", "", []string{"bt-ok", "bt-auth", "bt-rej", "bt-wait"}, false},
		{"dead: the failed sessions", "?state=dead", []string{"bt-auth", "bt-rej"}, false},
		{"by outcome", "?outcome=rejected", []string{"bt-rej"}, false},
		{"pending", "?state=pending", []string{"bt-wait"}, false},
		{"empty values mean no filter", "?state=&outcome=", []string{"bt-ok", "bt-auth", "bt-rej", "bt-wait"}, false},
		{"first page", "?limit=3", []string{"bt-ok", "bt-auth", "bt-rej"}, true},
		{"last page", "?limit=3&cursor=3", []string{"bt-wait"}, false},
		{"none match", "?state=retrying", []string{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := e.do("GET", base+tc.query, "")
			require.Equal(t, http.StatusOK, w.Code, w.Body.String())
			page := decodeJSON[tasks.TaskPage](t, w)
			got := []string{}
			for _, task := range page.Tasks {
				got = append(got, task.Session)
			}
			require.Equal(t, tc.want, got)
			require.Equal(t, tc.cursor, page.NextCursor != "", "next_cursor %q", page.NextCursor)
			// n8n reads the raw JSON: "tasks" is an array even when empty,
			// "next_cursor" is always present.
			raw := decodeJSON[map[string]any](t, w)
			require.IsType(t, []any{}, raw["tasks"])
			require.Contains(t, raw, "next_cursor")
		})
	}

	// The dead tasks carry what a report needs.
	page := decodeJSON[tasks.TaskPage](t, e.do("GET", base+"?state=dead", ""))
	require.NotNil(t, page.Tasks[0].Outcome)
	require.Equal(t, tasks.OutcomeAuthFailed, *page.Tasks[0].Outcome)
	require.NotNil(t, page.Tasks[0].LastError)

	for _, tc := range []struct{ name, target, detail string }{
		{"unknown state", base + "?state=failed", `state "failed" is not one of`},
		{"unknown outcome", base + "?outcome=ok", `outcome "ok" is not one of`},
		{"limit zero", base + "?limit=0", `limit "0" is not an integer from 1 to 1000`},
		{"limit too big", base + "?limit=1001", `limit "1001" is not an integer from 1 to 1000`},
		{"limit not a number", base + "?limit=ten", `limit "ten"`},
		{"bad cursor", base + "?cursor=" + url.QueryEscape("x y"), `cursor "x y" is not one this listing returned`},
		{"unknown parameter", base + "?status=dead", `unknown query parameter "status"; known: state, outcome, cursor, limit`},
		{"bad batch id", "/v1/batches/bad.id/tasks", "batch id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := requireProblem(t, e.do("GET", tc.target, ""), http.StatusBadRequest)
			require.Contains(t, p.Detail, tc.detail)
		})
	}
	p := requireProblem(t, e.do("GET", "/v1/batches/"+unknownID+"/tasks", ""), http.StatusNotFound)
	require.Contains(t, p.Detail, "no batch with id")
	// Without a token: 401, like every /v1 route.
	r := e.req("GET", base, "")
	r.Header.Del("Authorization")
	requireProblem(t, e.serve(r), http.StatusUnauthorized)
}

func TestGetDLQByBatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.batchWithDead()
	w := e.do("POST", "/v1/logouts", `{"session":"dlq-lone"}`)
	require.Equal(t, http.StatusAccepted, w.Code)
	e.kill(decodeJSON[tasks.Task](t, w).ID, "default", "dlq-lone", tasks.OutcomeAuthFailed)

	page := decodeJSON[tasks.DeadLetterPage](t, e.do("GET", "/v1/dlq", ""))
	require.EqualValues(t, 3, page.Total)

	w = e.do("GET", "/v1/dlq?batch_id="+id, "")
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	page = decodeJSON[tasks.DeadLetterPage](t, w)
	require.EqualValues(t, 2, page.Total)
	require.Len(t, page.Tasks, 2)
	for _, task := range page.Tasks {
		require.Equal(t, id, *task.BatchID)
	}
	require.EqualValues(t, -1, page.NextOffset)

	page = decodeJSON[tasks.DeadLetterPage](t, e.do("GET", "/v1/dlq?batch_id="+id+"&instance=default&limit=1", ""))
	require.EqualValues(t, 2, page.Total)
	require.Len(t, page.Tasks, 1)
	require.EqualValues(t, 1, page.NextOffset)
	page = decodeJSON[tasks.DeadLetterPage](t, e.do("GET", "/v1/dlq?batch_id="+id+"&instance=eu", ""))
	require.Zero(t, page.Total)
	page = decodeJSON[tasks.DeadLetterPage](t, e.do("GET", "/v1/dlq?batch_id="+unknownID, ""))
	require.Zero(t, page.Total)

	p := requireProblem(t, e.do("GET", "/v1/dlq?batch_id=bad.id", ""), http.StatusBadRequest)
	require.Contains(t, p.Detail, "batch id")
	p = requireProblem(t, e.do("GET", "/v1/dlq?batch=x", ""), http.StatusBadRequest)
	require.Contains(t, p.Detail, "known: instance, batch_id, offset, limit")
}
