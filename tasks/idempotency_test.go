package tasks_test

import (
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/tasks"
)

// TestIdempotentBatchID: the id of a keyed batch request is a valid batch
// id, a version-8 UUID, the same for the same scope, key and request and
// another when any of them differs.
func TestIdempotentBatchID(t *testing.T) {
	t.Parallel()
	req := []byte("POST /v1/batches\n{\"sessions\":[\"a\"]}")
	id := tasks.IdempotentBatchID("scope-1", "key-1", req)
	require.NoError(t, tasks.ValidateBatchID(id))
	u, err := uuid.Parse(id)
	require.NoError(t, err)
	require.Equal(t, uuid.Version(8), u.Version())
	require.Equal(t, uuid.RFC4122, u.Variant())
	require.Equal(t, id, tasks.IdempotentBatchID("scope-1", "key-1", req), "deterministic")
	seen := map[string]bool{id: true}
	for _, other := range []string{
		tasks.IdempotentBatchID("scope-2", "key-1", req),
		tasks.IdempotentBatchID("scope-1", "key-2", req),
		tasks.IdempotentBatchID("scope-1", "key-1", append(req, ' ')),
		// the separators keep the fields apart
		tasks.IdempotentBatchID("scope-1k", "ey-1", req),
	} {
		require.False(t, seen[other], "%s named twice", other)
		seen[other] = true
	}
}
