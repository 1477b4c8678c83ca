package store_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/store"
)

// TestConsoleSessions: a session is live from open to its end, sign-out
// ends it at once, ending all ends every one and counts the live ones,
// and the hash prunes ended sessions and stays bounded.
func TestConsoleSessions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		run  func(f *fixture)
	}{
		{"live until its end", func(f *fixture) {
			require.NoError(f.t, f.st.OpenConsoleSession(f.ctx, "a", f.now.Add(time.Hour)))
			requireLive(f, "a", true)
			requireLive(f, "unknown", false)
			f.now = f.now.Add(time.Hour)
			requireLive(f, "a", false)
		}},
		{"sign-out ends one", func(f *fixture) {
			require.NoError(f.t, f.st.OpenConsoleSession(f.ctx, "a", f.now.Add(time.Hour)))
			require.NoError(f.t, f.st.OpenConsoleSession(f.ctx, "b", f.now.Add(time.Hour)))
			require.NoError(f.t, f.st.EndConsoleSession(f.ctx, "a"))
			requireLive(f, "a", false)
			requireLive(f, "b", true)
		}},
		{"end all", func(f *fixture) {
			require.NoError(f.t, f.st.OpenConsoleSession(f.ctx, "old", f.now.Add(time.Minute)))
			f.now = f.now.Add(2 * time.Minute)
			for _, id := range []string{"a", "b", "c"} {
				require.NoError(f.t, f.st.OpenConsoleSession(f.ctx, id, f.now.Add(time.Hour)))
			}
			n, err := f.st.EndConsoleSessions(f.ctx)
			require.NoError(f.t, err)
			require.Equal(f.t, 3, n, "the ended one is not counted")
			for _, id := range []string{"a", "b", "c"} {
				requireLive(f, id, false)
			}
			require.Zero(f.t, f.rdb.Exists(f.ctx, "wahaq:"+f.ns+":console:sessions").Val())
		}},
		{"the hash expires with its last session", func(f *fixture) {
			require.NoError(f.t, f.st.OpenConsoleSession(f.ctx, "a", f.now.Add(time.Hour)))
			ttl := f.rdb.PTTL(f.ctx, "wahaq:"+f.ns+":console:sessions").Val()
			require.InDelta(f.t, float64(time.Hour), float64(ttl), float64(time.Minute))
		}},
		{"ended sessions are pruned", func(f *fixture) {
			for i := range 70 {
				require.NoError(f.t, f.st.OpenConsoleSession(f.ctx, "s"+strconv.Itoa(i), f.now.Add(time.Minute)))
			}
			f.now = f.now.Add(time.Hour)
			require.NoError(f.t, f.st.OpenConsoleSession(f.ctx, "new", f.now.Add(time.Hour)))
			require.Equal(f.t, map[string]string{"new": strconv.FormatInt(f.now.Add(time.Hour).UnixMilli(), 10)},
				f.hash("wahaq:"+f.ns+":console:sessions"))
		}},
		{"bounded", func(f *fixture) {
			k := "wahaq:" + f.ns + ":console:sessions"
			args := make([]any, 0, 2*store.MaxConsoleSessions)
			for i := range store.MaxConsoleSessions {
				args = append(args, "s"+strconv.Itoa(i), f.now.Add(time.Hour+time.Duration(i)*time.Millisecond).UnixMilli())
			}
			require.NoError(f.t, f.rdb.HSet(f.ctx, k, args...).Err())
			require.NoError(f.t, f.st.OpenConsoleSession(f.ctx, "new", f.now.Add(2*time.Hour)))
			require.EqualValues(f.t, store.MaxConsoleSessions, f.rdb.HLen(f.ctx, k).Val())
			requireLive(f, "s0", false) // the one closest to its end made room
			requireLive(f, "s1", true)
			requireLive(f, "new", true)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(newFixture(t))
		})
	}
}

func requireLive(f *fixture, id string, want bool) {
	f.t.Helper()
	live, err := f.st.ConsoleSessionLive(f.ctx, id)
	require.NoError(f.t, err)
	require.Equal(f.t, want, live, "session %q", id)
}
