package store_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/base"
	"github.com/wahaq/wahaq/internal/store"
)

// TestRecentBatches: CreateBatch lists every new batch in its queue's recent
// set; RecentBatches merges the queues newest first, honours the limit, and
// drops (and forgets) batches whose hash expired.
func TestRecentBatches(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	create := func(inst string) string {
		id := base.NewID()
		require.NoError(t, f.st.CreateBatch(f.ctx, inst, id, time.Time{}, false))
		f.now = f.now.Add(time.Second)
		return id
	}
	a := create("default")
	b := create("other")
	c := create("default")
	disc := base.NewID()
	require.NoError(t, f.st.CreateBatch(f.ctx, "other", disc, time.Time{}, true))
	insts := []string{"default", "other"}

	got, err := f.st.RecentBatches(f.ctx, insts, 10)
	require.NoError(t, err)
	ids := func(bs []*store.Batch) []string {
		out := make([]string, len(bs))
		for i, x := range bs {
			out[i] = x.ID
		}
		return out
	}
	require.Equal(t, []string{disc, c, b, a}, ids(got), "newest first across queues")
	require.Equal(t, "other", got[0].Instance)
	require.True(t, got[0].Discovering)

	got, err = f.st.RecentBatches(f.ctx, insts, 2)
	require.NoError(t, err)
	require.Equal(t, []string{disc, c}, ids(got))

	got, err = f.st.RecentBatches(f.ctx, []string{"default"}, 10)
	require.NoError(t, err)
	require.Equal(t, []string{c, a}, ids(got), "only the instances asked for")

	// an expired batch leaves the list, and its id leaves the set
	require.NoError(t, f.rdb.Del(f.ctx, f.k.Batch(c)).Err())
	got, err = f.st.RecentBatches(f.ctx, insts, 2)
	require.NoError(t, err)
	require.Equal(t, []string{disc, b}, ids(got), "the next one fills the limit")
	require.Equal(t, []string{a}, f.zmembers(f.k.RecentBatches()))

	got, err = f.st.RecentBatches(f.ctx, insts, 0)
	require.NoError(t, err)
	require.Empty(t, got)
}

// TestRecentBatchesCapped: the set keeps the newest RecentKeep ids.
func TestRecentBatchesCapped(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var first, last string
	for i := range store.RecentKeep + 5 {
		id := base.NewID()
		require.NoError(t, f.st.CreateBatch(f.ctx, "default", id, time.Time{}, false))
		f.now = f.now.Add(time.Millisecond)
		if i == 5 {
			first = id
		}
		last = id
	}
	n, err := f.rdb.ZCard(f.ctx, f.k.RecentBatches()).Result()
	require.NoError(t, err)
	require.EqualValues(t, store.RecentKeep, n)
	oldest, err := f.rdb.ZRange(f.ctx, f.k.RecentBatches(), 0, 0).Result()
	require.NoError(t, err)
	require.Equal(t, []string{first}, oldest)
	got, err := f.st.RecentBatches(f.ctx, []string{"default"}, 1)
	require.NoError(t, err)
	require.Equal(t, last, got[0].ID)
}
