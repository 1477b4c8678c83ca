package main

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/tasks"
)

// TestMaxRetriesSetting: WAHAQ_MAX_RETRIES=0 means no retry, which
// tasks.Config spells NoRetries (its zero means the default).
func TestMaxRetriesSetting(t *testing.T) {
	t.Parallel()
	require.Equal(t, tasks.NoRetries, maxRetries(0))
	require.Equal(t, 3, maxRetries(3))
	require.Equal(t, tasks.DefaultMaxRetries, maxRetries(tasks.DefaultMaxRetries))
}
