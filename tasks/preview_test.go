package tasks_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/redistest"
	"github.com/wahaq/wahaq/tasks"
	"github.com/wahaq/wahaq/wahaclient"
	"github.com/wahaq/wahaq/wahaclient/wahafake"
)

// TestPreview: the preview lists the server's sessions, applies the status
// filter and the dedup against live tasks, and answers counts and names;
// it enqueues nothing, creates no batch and calls no logout.
func TestPreview(t *testing.T) {
	t.Parallel()
	i64 := func(n int64) *int64 { return &n }
	tests := []struct {
		name string
		req  tasks.PreviewRequest
		want tasks.Preview
	}{
		{name: "all", req: tasks.PreviewRequest{}, want: tasks.Preview{
			All: true, Listed: 4 + int64(len(wahafake.BadListEntries)), ByStatus: map[string]int64{"WORKING": 3, "STOPPED": 1},
			Matched: 4, WouldEnqueue: 3, AlreadyQueued: 1,
			Skipped: map[string]int64{wahaclient.SkipNotObject: 2, wahaclient.SkipNoName: 2, wahaclient.SkipBadName: 2, wahaclient.SkipBadStatus: 1},
			Names:   []string{"default", "session-0002", "session-0003"}}},
		{name: "all WORKING", req: tasks.PreviewRequest{Statuses: []string{"working"}}, want: tasks.Preview{
			All: true, Statuses: []string{"WORKING"}, Listed: 4 + int64(len(wahafake.BadListEntries)),
			ByStatus: map[string]int64{"WORKING": 3, "STOPPED": 1}, Matched: 3, WouldEnqueue: 2, AlreadyQueued: 1,
			Skipped: map[string]int64{wahaclient.SkipNotObject: 2, wahaclient.SkipNoName: 2, wahaclient.SkipBadName: 2, wahaclient.SkipBadStatus: 1,
				tasks.SkipStatusFilter: 1},
			Names: []string{"session-0002", "session-0003"}}},
		{name: "named", req: tasks.PreviewRequest{Sessions: []string{"session-0001", "nope", "session-0002", "nope", "gone"}}, want: tasks.Preview{
			Listed: 4 + int64(len(wahafake.BadListEntries)), ByStatus: map[string]int64{"WORKING": 3, "STOPPED": 1},
			Requested: 5, Matched: 4, WouldEnqueue: 3, AlreadyQueued: 1,
			Skipped: map[string]int64{wahaclient.SkipNotObject: 2, wahaclient.SkipNoName: 2, wahaclient.SkipBadName: 2, wahaclient.SkipBadStatus: 1,
				tasks.SkipDuplicate: 1},
			Names:    []string{"nope", "session-0002", "gone"},
			OnServer: i64(2), NotOnServer: i64(2), NotOnServerNames: []string{"nope", "gone"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			fake := wahafake.NewT(t, wahafake.Options{APIKey: "preview-key", Sessions: 3})
			fake.InjectListEntries(wahafake.BadListEntries...)
			c, err := wahaclient.New(wahaclient.Config{BaseURL: fake.URL(), APIKey: "preview-key"})
			require.NoError(t, err)
			cfg := tasks.Config{Redis: redistest.Client(t), Namespace: redistest.Namespace(t),
				WAHA: map[string]tasks.SessionLister{"default": c}}
			p, err := tasks.NewProducer(cfg)
			require.NoError(t, err)
			insp, err := tasks.NewInspector(cfg)
			require.NoError(t, err)
			_, err = p.Enqueue(ctx, tasks.LogoutRequest{Session: "session-0001"})
			require.NoError(t, err)

			got, err := p.Preview(ctx, tc.req)
			require.NoError(t, err)
			want := tc.want
			want.DryRun, want.Instance = true, "default"
			require.Equal(t, &want, got)
			require.Zero(t, fake.Stats().TotalLogoutCalls)
			bs, err := insp.RecentBatches(ctx, 0)
			require.NoError(t, err)
			require.Empty(t, bs, "no batch written")
		})
	}
}

// TestPreviewRefuses: bad input and a missing WAHA client are refused
// before the server is asked.
func TestPreviewRefuses(t *testing.T) {
	t.Parallel()
	cfg := tasks.Config{Redis: redistest.Client(t), Namespace: redistest.Namespace(t), Instances: []string{"default", "eu"},
		WAHA: map[string]tasks.SessionLister{"default": nil}}
	p, err := tasks.NewProducer(cfg)
	require.NoError(t, err)
	tests := []struct {
		name string
		req  tasks.PreviewRequest
		want error
	}{
		{name: "unknown instance", req: tasks.PreviewRequest{Instance: "nope"}, want: tasks.ErrInvalidInput},
		{name: "bad status", req: tasks.PreviewRequest{Statuses: []string{"WORK ING"}}, want: tasks.ErrInvalidInput},
		{name: "bad name", req: tasks.PreviewRequest{Sessions: []string{"../etc"}}, want: tasks.ErrInvalidInput},
		{name: "status with names", req: tasks.PreviewRequest{Sessions: []string{"a"}, Statuses: []string{"WORKING"}}, want: tasks.ErrInvalidInput},
		{name: "no WAHA client", req: tasks.PreviewRequest{Instance: "eu"}, want: tasks.ErrPreviewUnavailable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := p.Preview(context.Background(), tc.req)
			require.ErrorIs(t, err, tc.want)
		})
	}
}
