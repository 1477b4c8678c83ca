package tasks_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/redistest"
	"github.com/wahaq/wahaq/tasks"
)

func TestValidateNames(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		check func(string) error
		in    string
		ok    bool
	}{
		{"session simple", tasks.ValidateSessionName, "sales-bot", true},
		{"session default", tasks.ValidateSessionName, "default", true},
		{"session all classes", tasks.ValidateSessionName, "A_z-09", true},
		{"session max length", tasks.ValidateSessionName, strings.Repeat("a", tasks.MaxSessionNameLen), true},
		{"session too long", tasks.ValidateSessionName, strings.Repeat("a", tasks.MaxSessionNameLen+1), false},
		{"session empty", tasks.ValidateSessionName, "", false},
		{"session space", tasks.ValidateSessionName, "a b", false},
		{"session dot", tasks.ValidateSessionName, "a.b", false},
		{"session slash", tasks.ValidateSessionName, "a/logout", false},
		{"session quote", tasks.ValidateSessionName, `a"b`, false},
		{"session non-ASCII", tasks.ValidateSessionName, "bäcker", false},
		{"session newline", tasks.ValidateSessionName, "a\n", false},
		{"instance simple", tasks.ValidateInstanceName, "default", true},
		{"instance max length", tasks.ValidateInstanceName, strings.Repeat("i", tasks.MaxInstanceNameLen), true},
		{"instance too long", tasks.ValidateInstanceName, strings.Repeat("i", tasks.MaxInstanceNameLen+1), false},
		{"instance empty", tasks.ValidateInstanceName, "", false},
		{"instance colon", tasks.ValidateInstanceName, "a:b", false},
		{"instance brace", tasks.ValidateInstanceName, "{a}", false},
		{"task id uuid", tasks.ValidateTaskID, uuid.NewString(), true},
		{"task id path", tasks.ValidateTaskID, "../x", false},
		{"task id empty", tasks.ValidateTaskID, "", false},
		{"batch id uuid", tasks.ValidateBatchID, uuid.NewString(), true},
		{"batch id too long", tasks.ValidateBatchID, strings.Repeat("b", 65), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.check(c.in)
			if c.ok {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tasks.ErrInvalidInput)
			require.LessOrEqual(t, len(err.Error()), 300, "a long name is truncated in the message")
		})
	}
}

func TestNormalizeStatuses(t *testing.T) {
	t.Parallel()
	got, err := tasks.NormalizeStatuses([]string{" working", "WORKING", "", "scan_qr_code", "PASSKEY_REQUIRED", "SOMETHING_NEW"})
	require.NoError(t, err)
	require.Equal(t, []string{"WORKING", "SCAN_QR_CODE", "PASSKEY_REQUIRED", "SOMETHING_NEW"}, got)
	got, err = tasks.NormalizeStatuses(nil)
	require.NoError(t, err)
	require.Empty(t, got)
	for _, bad := range []string{"WORK1NG", "a-b", "WORKING,STOPPED", strings.Repeat("A", 41)} {
		_, err := tasks.NormalizeStatuses([]string{bad})
		require.ErrorIs(t, err, tasks.ErrInvalidInput, bad)
	}
}

// TestProducerRejectsBadInput: bad input is an ErrInvalidInput and writes
// nothing to Redis, not even part of a batch.
func TestProducerRejectsBadInput(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	ns := redistest.Namespace(t)
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	p, err := tasks.NewProducer(tasks.Config{Redis: rdb, Namespace: ns, Instances: []string{"default", "eu"}, MaxBatch: 5,
		Now: func() time.Time { return now }})
	require.NoError(t, err)
	ctx := context.Background()

	for _, c := range []struct {
		name string
		req  tasks.LogoutRequest
		want string
	}{
		{"bad session", tasks.LogoutRequest{Session: "a b"}, "session name"},
		{"empty session", tasks.LogoutRequest{}, "session name is empty"},
		{"unknown instance", tasks.LogoutRequest{Instance: "us", Session: "s"}, "unknown instance"},
		{"bad instance", tasks.LogoutRequest{Instance: "a:b", Session: "s"}, "instance name"},
		{"at in the past", tasks.LogoutRequest{Session: "s", When: tasks.When{At: now.Add(-time.Minute)}}, "in the past"},
		{"at and in", tasks.LogoutRequest{Session: "s", When: tasks.When{At: now.Add(time.Hour), In: time.Hour}}, "not both"},
		{"negative in", tasks.LogoutRequest{Session: "s", When: tasks.When{In: -time.Second}}, "negative"},
	} {
		t.Run(c.name, func(t *testing.T) {
			task, err := p.Enqueue(ctx, c.req)
			require.ErrorIs(t, err, tasks.ErrInvalidInput)
			require.ErrorContains(t, err, c.want)
			require.Nil(t, task)
		})
	}
	_, err = p.Enqueue(ctx, tasks.LogoutRequest{Instance: "us", Session: "s"})
	require.ErrorIs(t, err, tasks.ErrUnknownInstance)

	for _, c := range []struct {
		name string
		req  tasks.BatchRequest
		want string
	}{
		{"empty batch", tasks.BatchRequest{}, "no session"},
		{"one bad name", tasks.BatchRequest{Sessions: []string{"ok-1", "ok-2", "bad name"}}, "sessions[2]"},
		{"too many", tasks.BatchRequest{Sessions: []string{"a", "b", "c", "d", "e", "f"}}, "at most 5"},
		{"unknown instance", tasks.BatchRequest{Instance: "us", Sessions: []string{"a"}}, "unknown instance"},
		{"past", tasks.BatchRequest{Sessions: []string{"a"}, When: tasks.When{At: now.Add(-time.Hour)}}, "in the past"},
	} {
		t.Run("batch "+c.name, func(t *testing.T) {
			info, err := p.EnqueueBatch(ctx, c.req)
			require.ErrorIs(t, err, tasks.ErrInvalidInput)
			require.ErrorContains(t, err, c.want)
			require.Nil(t, info)
		})
	}
	_, err = p.EnqueueDiscovery(ctx, tasks.DiscoveryRequest{Statuses: []string{"W0RKING"}})
	require.ErrorIs(t, err, tasks.ErrInvalidInput)

	var keys []string
	for _, pattern := range []string{"*{" + ns + ":*", "*" + ns + ":*"} {
		k, err := rdb.Keys(ctx, pattern).Result()
		require.NoError(t, err)
		keys = append(keys, k...)
	}
	require.Empty(t, keys, "rejected input must write nothing")

	// The same producer accepts good input, so the refusals above were
	// about the input and not a broken setup.
	task, err := p.Enqueue(ctx, tasks.LogoutRequest{Instance: "eu", Session: "ok", When: tasks.When{At: now}})
	require.NoError(t, err)
	require.Equal(t, "eu", task.Instance)
	require.Equal(t, tasks.StatePending, task.State, "at = now runs now")
	require.Nil(t, task.ScheduledFor)
	insp, err := tasks.NewInspector(tasks.Config{Redis: rdb, Namespace: ns, Instances: []string{"default", "eu"},
		Now: func() time.Time { return now }})
	require.NoError(t, err)
	stored, err := insp.Task(ctx, task.ID)
	require.NoError(t, err)
	require.Equal(t, task.State, stored.State, "the enqueue answer must match the stored task")
	require.Equal(t, task.ScheduledFor, stored.ScheduledFor)
	task, err = p.Enqueue(ctx, tasks.LogoutRequest{Session: "later", When: tasks.When{In: time.Hour}})
	require.NoError(t, err)
	require.Equal(t, tasks.StateScheduled, task.State)
	require.Equal(t, now.Add(time.Hour), *task.ScheduledFor)
}
