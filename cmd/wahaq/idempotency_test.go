package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
