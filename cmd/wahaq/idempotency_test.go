package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/store"
	"github.com/wahaq/wahaq/tasks"
)

// TestCLIIdempotencyKey: a rerun with the same key and flags prints the
// first run's task (batch) even after it finished, where a rerun without a
// key enqueues another; the same key with other flags exits 2.
func TestCLIIdempotencyKey(t *testing.T) {
	c := newCLI(t)

	first := strings.TrimSpace(c.ok("enqueue", "--session", "idem-a", "--in", "30m", "--idempotency-key", "job-17").stdout)
	c.ok("cancel", first) // the task ends: deduplication alone would now make a new one
	r := c.ok("enqueue", "--session", "idem-a", "--in", "30m", "--idempotency-key", "job-17")
	assert.Equal(t, first+"\n", r.stdout, "the same key gives the same task")
	assert.Contains(t, r.stderr, `--idempotency-key "job-17" was used before`)
	p, s := c.queued()
	assert.Zero(t, p+s, "the rerun enqueued nothing")
	assert.Equal(t, "canceled", string(c.task(first).State))

	other := strings.TrimSpace(c.ok("enqueue", "--session", "idem-a", "--in", "30m").stdout)
	assert.NotEqual(t, first, other, "without a key a rerun is a new logout")
	c.ok("cancel", other)

	r = c.run("enqueue", "--session", "idem-b", "--idempotency-key", "job-17")
	assert.Equal(t, exitUsage, r.code, r.stderr)
	sentence(t, r.stderr, `--idempotency-key "job-17" was already used with a different request`)
	r = c.run("enqueue", "--session", "idem-b", "--idempotency-key", strings.Repeat("k", 256))
	assert.Equal(t, exitUsage, r.code, r.stderr)
	sentence(t, r.stderr, "an idempotency key is 1 to 255 characters")
	p, s = c.queued()
	assert.Zero(t, p+s, "a refused key enqueued nothing")

	// bulk: the same batch, also with --json.
	bid := strings.TrimSpace(c.ok("bulk", "--instance", "default", "--session", "idem-c,idem-d", "--idempotency-key", "bulk-1").stdout)
	c.ok("batch", "cancel", bid)
	r = c.ok("bulk", "--instance", "default", "--session", "idem-c,idem-d", "--idempotency-key", "bulk-1", "--json")
	assert.Contains(t, r.stdout, `"batch_id":"`+bid+`"`)
	p, s = c.queued()
	assert.Zero(t, p+s)
	// enqueue and bulk share the CLI's key space: a bulk key given to
	// enqueue is another request.
	r = c.run("enqueue", "--session", "idem-c", "--idempotency-key", "bulk-1")
	assert.Equal(t, exitUsage, r.code, r.stderr)
	require.NotContains(t, r.stdout, bid)
}

// TestCLIBulkResumesInterruptedBatch: a rerun of `bulk --idempotency-key`
// after a first run that was interrupted part way (it created the batch,
// enqueued one logout and failed; its key was released) prints the first
// run's batch, now holding every session once, none deduplicated.
func TestCLIBulkResumesInterruptedBatch(t *testing.T) {
	c := newCLI(t)
	ctx := context.Background()
	sessions := []string{"res-e", "res-f", "res-g"}
	// the flags as bulk gives them to idempotent (bulk.go asGiven)
	asGiven := map[string]any{"instance": "default", "all": false, "status": []string(nil), "sessions": sessions,
		"in": "", "at": "", "callback_url": ""}
	req, err := cliRequest("wahaq bulk", asGiven)
	require.NoError(t, err)
	bid := tasks.IdempotentBatchID(cliScope, "bulk-resume", req)

	// The first run, as it left Redis.
	st := store.New(c.rdb, store.Options{Namespace: c.ns})
	require.NoError(t, st.CreateBatch(ctx, "default", bid, time.Time{}, false))
	_, err = st.Enqueue(ctx, []store.NewTask{{Instance: "default", Session: "res-e", BatchID: bid, MaxRetries: 10}})
	require.NoError(t, err)
	require.NoError(t, st.CloseInterrupted(ctx, "default", bid, "interrupted: redis: OOM", time.Hour))

	r := c.ok("bulk", "--instance", "default", "--session", strings.Join(sessions, ","), "--idempotency-key", "bulk-resume", "--json")
	var info tasks.BatchInfo
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &info), r.stdout)
	require.Equal(t, tasks.BatchInfo{BatchID: bid, Total: 3, Requested: 3}, info, "the first run's batch, whole")
	assert.NotContains(t, r.stderr, "used before", "not a replay: the interrupted run kept no answer")

	var b tasks.Batch
	require.NoError(t, json.Unmarshal([]byte(c.ok("batch", bid, "--json").stdout), &b))
	assert.EqualValues(t, 3, b.Total)
	assert.False(t, b.Interrupted)
	assert.Empty(t, b.Error)
	p, s := c.queued()
	assert.Equal(t, 3, p+s, "one logout per session, the first run's included")
}
