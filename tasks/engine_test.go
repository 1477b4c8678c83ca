package tasks

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/base"
	"github.com/wahaq/wahaq/internal/store"
)

// TestPublicNamesMatchEngine pins the public constants, written out so that
// go doc shows their values, to the engine's, which Redis and asynq see.
func TestPublicNamesMatchEngine(t *testing.T) {
	t.Parallel()
	require.Equal(t, base.TypeLogout, TypeLogout)
	require.Equal(t, base.TypeDiscover, TypeDiscover)
	require.Equal(t, store.DefaultNamespace, DefaultNamespace)
	require.Equal(t, store.MaxCallbacks, MaxCallbacks)
	require.Equal(t, store.MaxSubscriptions, MaxSubscriptions)
	require.Equal(t, base.EventTaskFinal, EventTaskFinal)
	require.Equal(t, base.EventBatchDone, EventBatchDone)
	require.Equal(t, base.MaxInstanceNameLen, MaxInstanceNameLen)
	require.Equal(t, base.MaxSessionNameLen, MaxSessionNameLen)
	require.Equal(t, store.RecentKeep, MaxRecentBatches)
	require.Len(t, AllStates, len(store.States))
	for i, st := range AllStates {
		require.Equal(t, store.States[i], string(st))
	}
}
