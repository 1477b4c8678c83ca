package store_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/store"
)

// TestAuditAppendScript: appending keeps the log within its age and count
// bounds in the same step, ids follow the store's clock and never go
// backwards, and AuditBefore pages newest first.
func TestAuditAppendScript(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// steps: each appends one entry after moving the clock by adv.
		adv    []time.Duration
		maxAge time.Duration
		maxLen int64
		// want are the entries kept (by their index in adv), newest first.
		want []int
	}{
		{name: "no bounds", adv: []time.Duration{0, time.Second, time.Second}, want: []int{2, 1, 0}},
		{name: "count", adv: []time.Duration{0, time.Second, time.Second, time.Second}, maxLen: 2, want: []int{3, 2}},
		{name: "age", adv: []time.Duration{0, time.Hour, 2 * time.Hour, time.Minute}, maxAge: 90 * time.Minute, want: []int{3, 2}},
		{name: "age and count", adv: []time.Duration{0, time.Minute, time.Minute, time.Minute, 10 * time.Hour, time.Minute}, maxAge: time.Hour, maxLen: 1, want: []int{5}},
		{name: "clock going back keeps order", adv: []time.Duration{0, -time.Hour, time.Second}, want: []int{2, 1, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			var ids []string
			for i, d := range tc.adv {
				f.now = f.now.Add(d)
				id, err := f.st.AuditAppend(f.ctx, []byte(`{"n":`+strconv.Itoa(i)+`}`), tc.maxAge, tc.maxLen)
				require.NoError(t, err)
				if len(ids) > 0 {
					require.Greater(t, store.AuditIDTime(id).UnixNano()+1, store.AuditIDTime(ids[len(ids)-1]).UnixNano(), "ids never go backwards")
				}
				ids = append(ids, id)
			}
			got, err := f.st.AuditBefore(f.ctx, "", "", 100)
			require.NoError(t, err)
			var kept []int
			for _, e := range got {
				for i, id := range ids {
					if id == e.ID {
						kept = append(kept, i)
						require.Equal(t, `{"n":`+strconv.Itoa(i)+`}`, string(e.JSON))
					}
				}
			}
			require.Equal(t, tc.want, kept)
			n, oldest, err := f.st.AuditSpan(f.ctx)
			require.NoError(t, err)
			require.EqualValues(t, len(tc.want), n)
			require.Equal(t, store.AuditIDTime(ids[tc.want[len(tc.want)-1]]), oldest)
		})
	}
}

// TestAuditBefore pages with an exclusive upper bound and an inclusive
// lower one.
func TestAuditBefore(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var ids []string
	for i := 0; i < 5; i++ {
		f.now = f.now.Add(time.Second)
		id, err := f.st.AuditAppend(f.ctx, []byte(`{}`), 0, 0)
		require.NoError(t, err)
		ids = append(ids, id)
	}
	page, err := f.st.AuditBefore(f.ctx, "", "", 2)
	require.NoError(t, err)
	require.Equal(t, []string{ids[4], ids[3]}, []string{page[0].ID, page[1].ID})
	page, err = f.st.AuditBefore(f.ctx, ids[3], ids[1], 10)
	require.NoError(t, err)
	require.Len(t, page, 2)
	require.Equal(t, []string{ids[2], ids[1]}, []string{page[0].ID, page[1].ID})
	n, oldest, err := f.newEmpty()
	require.NoError(t, err)
	require.Zero(t, n)
	require.True(t, oldest.IsZero())
}

// newEmpty reads the span of a log nothing was appended to.
func (f *fixture) newEmpty() (int64, time.Time, error) {
	return store.New(f.rdb, store.Options{Namespace: f.ns + "-empty"}).AuditSpan(f.ctx)
}
