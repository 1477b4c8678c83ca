package store_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/store"
)

// TestReserveLimit: a scope holds at most limit live keys; a released key
// frees its place, a key past its keep time too, and a known key is
// answered whatever the count.
func TestReserveLimit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		run  func(f *fixture)
		want int
	}{
		{"under the limit", func(f *fixture) { reserve(f, "a", store.IdemReserved) }, store.IdemReserved},
		{"at the limit", func(f *fixture) { reserve(f, "a", store.IdemReserved); reserve(f, "b", store.IdemReserved) }, store.IdemFull},
		{"released frees", func(f *fixture) {
			reserve(f, "a", store.IdemReserved)
			reserve(f, "b", store.IdemReserved)
			require.NoError(f.t, f.st.ReleaseKey(f.ctx, "s", "b"))
		}, store.IdemReserved},
		{"ended frees", func(f *fixture) {
			reserve(f, "a", store.IdemReserved)
			reserve(f, "b", store.IdemReserved)
			f.now = f.now.Add(25 * time.Hour)
		}, store.IdemReserved},
		{"another scope is apart", func(f *fixture) {
			reserve(f, "a", store.IdemReserved)
			reserve(f, "b", store.IdemReserved)
			code, _, err := f.st.Reserve(f.ctx, "other", "c", "fp", time.Minute, 24*time.Hour, 2)
			require.NoError(f.t, err)
			require.Equal(f.t, store.IdemReserved, code)
		}, store.IdemFull},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			tc.run(f)
			code, _, err := f.st.Reserve(f.ctx, "s", "c", "fp", time.Minute, 24*time.Hour, 2)
			require.NoError(t, err)
			require.Equal(t, tc.want, code)
			// A key the scope holds answers whatever the count.
			code, _, err = f.st.Reserve(f.ctx, "s", "c", "other-fp", time.Minute, 24*time.Hour, 2)
			require.NoError(t, err)
			if tc.want == store.IdemReserved {
				require.Equal(t, store.IdemMismatch, code)
			}
		})
	}
}

func reserve(f *fixture, key string, want int) {
	f.t.Helper()
	code, _, err := f.st.Reserve(f.ctx, "s", key, "fp", time.Minute, 24*time.Hour, 2)
	require.NoError(f.t, err)
	require.Equal(f.t, want, code)
}
