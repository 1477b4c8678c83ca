package wahaclient_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/wahaclient"
	"github.com/wahaq/wahaq/wahaclient/wahafake"
)

// collect lists every entry of a listing.
func collect(t *testing.T, c *wahaclient.Client, all bool) ([]string, map[string]int, error) {
	t.Helper()
	var names []string
	skipped := map[string]int{}
	err := c.EachSession(context.Background(), all, func(e wahaclient.ListEntry) error {
		if e.Skip != "" {
			skipped[e.Skip]++
			return nil
		}
		names = append(names, e.Session.Name)
		return nil
	})
	return names, skipped, err
}

// Entries that are not sessions are skipped with a reason and never fail the
// rest of the listing (issue 11: one non-object entry used to fail it all).
func TestEachSessionSkipsBadEntries(t *testing.T) {
	t.Parallel()
	fake := wahafake.NewT(t, wahafake.Options{})
	working := fake.AddSessions("w", 3, wahafake.StatusWorking)
	fake.InjectListEntries(wahafake.BadListEntries...)
	c := newClient(t, fake.URL(), "")

	names, skipped, err := collect(t, c, true)
	require.NoError(t, err)
	require.Equal(t, append([]string{wahafake.DefaultSession}, working...), names)
	require.Equal(t, map[string]int{wahaclient.SkipNotObject: 2, wahaclient.SkipNoName: 2, wahaclient.SkipBadName: 2,
		wahaclient.SkipBadStatus: 1}, skipped)

	names, _, err = collect(t, c, false)
	require.NoError(t, err)
	require.Equal(t, working, names, "without all, STOPPED sessions are left out")
}

// A generated listing streams through entry by entry; touching a generated
// session stores it, and it is still listed once.
func TestEachSessionGeneratedListing(t *testing.T) {
	t.Parallel()
	fake := wahafake.NewT(t, wahafake.Options{})
	fake.GenerateSessions("gen", 20_000, "")
	c := newClient(t, fake.URL(), "")
	res, err := c.Logout(context.Background(), "gen-0000007")
	require.NoError(t, err)
	require.Equal(t, wahafake.StatusStopped, res.Session.Status)
	_, err = c.Logout(context.Background(), "gen-0020001")
	require.ErrorIs(t, err, wahaclient.ErrSessionNotFound, "only the generated range exists")

	names, skipped, err := collect(t, c, true)
	require.NoError(t, err)
	require.Empty(t, skipped)
	require.Len(t, names, 20_001)
	require.Equal(t, "gen-0000001", names[1])
	require.Equal(t, "gen-0020000", names[20_000])
	running, _, err := collect(t, c, false)
	require.NoError(t, err)
	require.Empty(t, running, "generated STOPPED sessions are left out without all")
}

func TestEachSessionErrors(t *testing.T) {
	t.Parallel()
	huge := `[{"name":"a","status":"WORKING","config":"` + strings.Repeat("x", 2*wahaclient.MaxListEntryBytes) + `"}]`
	cases := []struct {
		name string
		body string
		want error
		n    int // sessions passed before the error
	}{
		{"an object", `{"sessions":[]}`, wahaclient.ErrRejected, 0},
		{"a string", `"ok"`, wahaclient.ErrRejected, 0},
		{"empty", ``, wahaclient.ErrRejected, 0},
		{"syntax error mid-way", `[{"name":"a","status":"WORKING"} {"name":"b"}]`, wahaclient.ErrRejected, 1},
		{"cut off", `[{"name":"a","status":"WORKING"},{"name":"b","sta`, wahaclient.ErrTransient, 1},
		{"entry over the cap", huge, wahaclient.ErrRejected, 0},
		{"empty array", `[]`, nil, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write([]byte(tc.body))
			}))
			t.Cleanup(srv.Close)
			names, _, err := collect(t, newClient(t, srv.URL, testKey), true)
			require.Len(t, names, tc.n)
			if tc.want == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tc.want)
			requireNoKey(t, err)
		})
	}
}

func TestEachSessionAnswersAndCallerErrors(t *testing.T) {
	t.Parallel()
	fake := wahafake.NewT(t, wahafake.Options{APIKey: testKey})
	fake.AddSessions("s", 5, wahafake.StatusWorking)
	_, _, err := collect(t, newClient(t, fake.URL(), "wrong"), true)
	require.ErrorIs(t, err, wahaclient.ErrUnauthorized)

	stop := errors.New("stop here")
	seen := 0
	err = newClient(t, fake.URL(), testKey).EachSession(context.Background(), true, func(wahaclient.ListEntry) error {
		if seen++; seen == 3 {
			return stop
		}
		return nil
	})
	require.ErrorIs(t, err, stop, "the callback's error comes back as it is")
	require.Equal(t, 3, seen)
}

// The per-call timeout bounds each wait for the server, not the listing: a
// caller that takes its time between entries is fine, a server that stops
// sending is not.
func TestEachSessionTimeoutIsPerRead(t *testing.T) {
	t.Parallel()
	fake := wahafake.NewT(t, wahafake.Options{})
	fake.GenerateSessions("g", 6, "")
	slowCaller := newClient(t, fake.URL(), "", func(c *wahaclient.Config) { c.Timeout = 150 * time.Millisecond })
	n := 0
	err := slowCaller.EachSession(context.Background(), true, func(wahaclient.ListEntry) error {
		n++
		time.Sleep(60 * time.Millisecond) // 7 entries: 420 ms in all, longer than the timeout
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, 7, n)

	release := make(chan struct{})
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`[{"name":"a","status":"WORKING"},`))
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(func() { close(release); hung.Close() })
	names, _, err := collect(t, newClient(t, hung.URL, "", func(c *wahaclient.Config) { c.Timeout = 150 * time.Millisecond }), true)
	require.Equal(t, []string{"a"}, names)
	require.ErrorIs(t, err, wahaclient.ErrTransient)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Contains(t, err.Error(), "150ms")
}
