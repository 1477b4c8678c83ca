package store_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/asynqcompat"
	"github.com/wahaq/wahaq/internal/base"
	"github.com/wahaq/wahaq/internal/store"
)

// A discovery fills its batch chunk by chunk: the batch stays open and
// discovering until CloseDiscovery, and a chunk run again (a discovery that
// starts over after a crash) creates nothing and counts nothing as
// deduplicated.
func TestFillChunkAndCloseDiscovery(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	bid := base.NewID()
	require.NoError(t, f.st.CreateBatch(f.ctx, "default", bid, time.Time{}, true))
	_, other := f.enqueue("elsewhere", "") // a live task of no batch

	first, err := f.st.FillChunk(f.ctx, "default", bid, []string{"a", "b", "elsewhere"}, time.Time{}, 3, time.Minute, "")
	require.NoError(t, err)
	require.Equal(t, store.Filled{Total: 2, Requested: 3, Deduplicated: 1}, first)
	b, err := f.st.GetBatch(f.ctx, []string{"default"}, bid)
	require.NoError(t, err)
	require.True(t, b.Open)
	require.True(t, b.Discovering)
	require.False(t, b.Done)
	require.EqualValues(t, 2, b.Total)
	require.Contains(t, f.zmembers(f.k.OpenBatches()), bid, "each chunk renews the lease")

	require.Equal(t, map[string]string{"a": f.get(f.k.Dedup("a")), "b": f.get(f.k.Dedup("b")), "elsewhere": "d:" + other},
		f.hash(f.k.BatchListed(bid)))
	// a's task ends meanwhile: its dedup claim goes, its listing stays.
	pa := base.Payload{Instance: "default", Session: "a", BatchID: bid, MaxRetries: 3}
	f.start(f.get(f.k.Dedup("a")), pa)
	require.NoError(t, f.st.Finish(f.ctx, f.hash(f.k.BatchListed(bid))["a"], pa, store.Finish{State: store.StateCompleted,
		Outcome: "logged_out", ResultTTL: time.Hour}))
	require.False(t, f.exists(f.k.Dedup("a")))

	// Run again from the start, as after a crash, then on to a new name.
	again, err := f.st.FillChunk(f.ctx, "default", bid, []string{"a", "b", "elsewhere", "c"}, time.Time{}, 3, time.Minute, "")
	require.NoError(t, err)
	require.Equal(t, store.Filled{Total: 1, Requested: 4, Deduplicated: 1, InBatch: 2}, again)

	require.NoError(t, f.st.CloseDiscovery(f.ctx, "default", bid, store.DiscoveryEnd{Deduplicated: 1,
		Skipped: map[string]int64{"bad_name": 2, "not_object": 1, "no_name": 0}}, time.Hour))
	h := f.hash(f.k.Batch(bid))
	require.Equal(t, "3", h["total"], "a, b and c: a's ended task was not made again")
	require.Equal(t, "1", h["dedup"])
	require.Equal(t, "2", h["s:bad_name"])
	require.Equal(t, "1", h["s:not_object"])
	require.NotContains(t, h, "s:no_name", "zero counts are not written")
	require.NotContains(t, h, "open")
	require.NotContains(t, h, "discovering")
	require.NotContains(t, f.zmembers(f.k.OpenBatches()), bid)
	b, err = f.st.GetBatch(f.ctx, []string{"default"}, bid)
	require.NoError(t, err)
	require.Equal(t, map[string]int64{"bad_name": 2, "not_object": 1}, b.Skipped)
	require.Len(t, f.list(f.k.BatchTasks(bid)), 3)
	require.False(t, f.exists(f.k.BatchListed(bid)), "the listed sessions go with the close")
	require.Equal(t, other, f.get(f.k.Dedup("elsewhere")), "the other live task is kept")

	// Closed: a late chunk is refused and writes nothing.
	_, err = f.st.FillChunk(f.ctx, "default", bid, []string{"d"}, time.Time{}, 3, time.Minute, "")
	require.ErrorIs(t, err, store.ErrBatchClosed)
}

// A discovering batch whose worker died mid-listing (its lease ran out) is
// not closed as abandoned while asynq still holds the discovery task, which
// runs again and finishes it; once that task is gone or archived, it is.
func TestCloseAbandonedDiscovery(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		asynqState string // "" = no asynq task
		closed     bool
	}{
		{"discovery task active", asynqcompat.StateActive, false},
		{"discovery task retrying", asynqcompat.StateRetry, false},
		{"discovery task pending again", asynqcompat.StatePending, false},
		{"discovery task archived", asynqcompat.StateArchived, true},
		{"discovery task gone", "", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			bid := base.NewID()
			require.NoError(t, f.st.CreateBatch(f.ctx, "default", bid, time.Time{}, true))
			if tc.asynqState != "" {
				f.asynqState(bid, tc.asynqState)
			}
			_, err := f.st.FillChunk(f.ctx, "default", bid, []string{"a"}, time.Time{}, 3, time.Minute, "")
			require.NoError(t, err)
			f.now = f.now.Add(time.Minute) // the lease has ended
			ids, err := f.st.ExpiredOpenBatches(f.ctx, "default", 10)
			require.NoError(t, err)
			require.Equal(t, []string{bid}, ids)
			closed, err := f.st.CloseAbandoned(f.ctx, "default", bid, time.Hour)
			require.NoError(t, err)
			require.Equal(t, tc.closed, closed)
			h := f.hash(f.k.Batch(bid))
			if tc.closed {
				require.Equal(t, "1", h["interrupted"])
				require.NotContains(t, h, "discovering")
			} else {
				require.Equal(t, "1", h["open"])
				require.Equal(t, "1", h["discovering"])
				require.Contains(t, f.zmembers(f.k.OpenBatches()), bid, "looked at again on the next pass")
			}
		})
	}
}
