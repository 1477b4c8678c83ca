package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/base"
	"github.com/wahaq/wahaq/internal/store"
	"github.com/wahaq/wahaq/tasks"
)

// TestCLIBatchTasks: after a bulk whose sessions end differently (moved as
// a worker would), `batch tasks --state dead` names the failed ones and
// `dlq list --batch` shows only that batch's dead letters.
func TestCLIBatchTasks(t *testing.T) {
	c := newCLI(t)
	ctx := context.Background()
	bid := strings.TrimSpace(c.ok("bulk", "--instance", "default", "--session", "cb-ok,cb-dead,cb-wait").stdout)
	lone := strings.TrimSpace(c.ok("enqueue", "--session", "cb-lone").stdout)
	st := store.New(c.rdb, store.Options{Namespace: c.ns})
	ids, err := c.rdb.LRange(ctx, st.Keys("default").BatchTasks(bid), 0, -1).Result()
	require.NoError(t, err)
	require.Len(t, ids, 3)
	end := func(id, session, batch, state string, o tasks.Outcome) {
		p := base.Payload{Instance: "default", Session: session, BatchID: batch, MaxRetries: 10}
		ok, err := st.Start(ctx, id, p, 1, 0, time.Minute)
		require.NoError(t, err)
		require.True(t, ok)
		require.NoError(t, st.Finish(ctx, id, p, store.Finish{State: state, Outcome: string(o), LastError: "WAHA answered 401", ResultTTL: time.Hour}))
	}
	end(ids[0], "cb-ok", bid, store.StateCompleted, tasks.OutcomeLoggedOut)
	end(ids[1], "cb-dead", bid, store.StateDead, tasks.OutcomeAuthFailed)
	end(lone, "cb-lone", "", store.StateDead, tasks.OutcomeAuthFailed)

	r := c.ok("batch", "tasks", bid, "--state", "dead")
	assert.Regexp(t, `(?m)^ID\s+SESSION\s+STATE\s+OUTCOME`, r.stdout)
	assert.Regexp(t, `(?m)^`+ids[1]+`\s+cb-dead\s+dead\s+auth_failed\s+1\s+\S+\s+WAHA answered 401$`, r.stdout)
	assert.NotContains(t, r.stdout, "cb-ok")
	assert.True(t, strings.HasSuffix(r.stdout, "1 task\n"), r.stdout)

	r = c.ok("batch", "tasks", bid, "--limit", "2")
	assert.Contains(t, r.stdout, "cb-ok")
	assert.Contains(t, r.stdout, "cb-dead")
	assert.NotContains(t, r.stdout, "cb-wait")
	assert.Contains(t, r.stdout, "2 tasks; next page: --cursor 2\n")
	r = c.ok("batch", "tasks", bid, "--limit", "2", "--cursor", "2", "--json")
	var page tasks.TaskPage
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &page), r.stdout)
	require.Len(t, page.Tasks, 1)
	assert.Equal(t, "cb-wait", page.Tasks[0].Session)
	assert.Empty(t, page.NextCursor)

	r = c.ok("batch", "tasks", bid, "--state", "retrying")
	assert.Equal(t, "no tasks match\n", r.stdout)
	r = c.run("batch", "tasks", "0b6f3c1e-5f0e-4a44-9d55-0d8c3d1f8f20")
	assert.Equal(t, exitFailure, r.code)
	sentence(t, r.stderr, "batch 0b6f3c1e-5f0e-4a44-9d55-0d8c3d1f8f20 not found")

	// The batch summary points at the listing of its dead tasks.
	r = c.ok("batch", bid)
	assert.Contains(t, r.stdout, "wahaq batch tasks "+bid+" --state dead")

	r = c.ok("dlq", "list", "--batch", bid, "--json")
	var dl tasks.DeadLetterPage
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &dl), r.stdout)
	require.EqualValues(t, 1, dl.Total)
	assert.Equal(t, ids[1], dl.Tasks[0].ID)
	r = c.ok("dlq", "list")
	assert.Contains(t, r.stdout, "of 2 dead letters")
	r = c.ok("dlq", "list", "--batch", "0b6f3c1e-5f0e-4a44-9d55-0d8c3d1f8f20")
	assert.Equal(t, "batch 0b6f3c1e-5f0e-4a44-9d55-0d8c3d1f8f20 has no dead letters\n", r.stdout)
}
