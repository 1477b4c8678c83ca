package tasks_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/base"
	"github.com/wahaq/wahaq/internal/redistest"
	"github.com/wahaq/wahaq/internal/store"
	"github.com/wahaq/wahaq/tasks"
)

// batchOfEveryKind enqueues a batch of nine sessions and moves them as a
// worker would: two logged out, one not found, two dead (auth_failed,
// rejected), one canceled, one active, two left pending. It returns the
// batch id and each session's task id.
func batchOfEveryKind(t *testing.T, ctx context.Context, p *tasks.Producer, insp *tasks.Inspector, st *store.Store, ns string) (string, map[string]string) {
	t.Helper()
	sessions := []string{"ok-1", "ok-2", "gone-1", "auth-1", "rej-1", "cancel-1", "busy-1", "wait-1", "wait-2"}
	b, err := p.EnqueueBatch(ctx, tasks.BatchRequest{Sessions: sessions})
	require.NoError(t, err)
	rdb := st.Redis()
	ids, err := rdb.LRange(ctx, store.KeysFor(ns, "default").BatchTasks(b.BatchID), 0, -1).Result()
	require.NoError(t, err)
	require.Len(t, ids, len(sessions))
	bySession := map[string]string{}
	for _, id := range ids {
		task, err := insp.Task(ctx, id)
		require.NoError(t, err)
		bySession[task.Session] = id
	}
	finish := func(session, state string, o tasks.Outcome) {
		pl := base.Payload{Instance: "default", Session: session, BatchID: b.BatchID, MaxRetries: 10}
		ok, err := st.Start(ctx, bySession[session], pl, 1, 0, time.Minute)
		require.NoError(t, err)
		require.True(t, ok)
		if state == "" {
			return // stays active
		}
		require.NoError(t, st.Finish(ctx, bySession[session], pl, store.Finish{State: state, Outcome: string(o), ResultTTL: time.Hour}))
	}
	finish("ok-1", store.StateCompleted, tasks.OutcomeLoggedOut)
	finish("ok-2", store.StateCompleted, tasks.OutcomeLoggedOut)
	finish("gone-1", store.StateCompleted, tasks.OutcomeNotFound)
	finish("auth-1", store.StateDead, tasks.OutcomeAuthFailed)
	// Dead letters are ordered by time of death in ms; two deaths within
	// one ms would be ordered by id (random), so the second dies later.
	time.Sleep(2 * time.Millisecond)
	finish("rej-1", store.StateDead, tasks.OutcomeRejected)
	finish("busy-1", "", "")
	_, err = p.Cancel(ctx, bySession["cancel-1"])
	require.NoError(t, err)
	return b.BatchID, bySession
}

func sessionsOf(page *tasks.TaskPage) []string {
	out := []string{}
	for _, t := range page.Tasks {
		out = append(out, t.Session)
	}
	return out
}

// TestInspectorBatchTasks lists a batch's tasks by state and outcome, in
// the order the batch created them, against a real Redis.
func TestInspectorBatchTasks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := redistest.Client(t)
	ns := redistest.Namespace(t)
	p, insp := loopPair(t, rdb, ns)
	st := store.New(rdb, store.Options{Namespace: ns})
	batchID, _ := batchOfEveryKind(t, ctx, p, insp, st, ns)

	for _, tc := range []struct {
		name string
		f    tasks.TaskFilter
		want []string
	}{
		{"all", tasks.TaskFilter{}, []string{"ok-1", "ok-2", "gone-1", "auth-1", "rej-1", "cancel-1", "busy-1", "wait-1", "wait-2"}},
		{"dead", tasks.TaskFilter{State: tasks.StateDead}, []string{"auth-1", "rej-1"}},
		{"completed", tasks.TaskFilter{State: tasks.StateCompleted}, []string{"ok-1", "ok-2", "gone-1"}},
		{"canceled", tasks.TaskFilter{State: tasks.StateCanceled}, []string{"cancel-1"}},
		{"active", tasks.TaskFilter{State: tasks.StateActive}, []string{"busy-1"}},
		{"pending", tasks.TaskFilter{State: tasks.StatePending}, []string{"wait-1", "wait-2"}},
		{"retrying: none", tasks.TaskFilter{State: tasks.StateRetrying}, []string{}},
		{"not found", tasks.TaskFilter{Outcome: tasks.OutcomeNotFound}, []string{"gone-1"}},
		{"logged out", tasks.TaskFilter{Outcome: tasks.OutcomeLoggedOut}, []string{"ok-1", "ok-2"}},
		{"dead auth_failed", tasks.TaskFilter{State: tasks.StateDead, Outcome: tasks.OutcomeAuthFailed}, []string{"auth-1"}},
		{"completed auth_failed: none", tasks.TaskFilter{State: tasks.StateCompleted, Outcome: tasks.OutcomeAuthFailed}, []string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			page, err := insp.BatchTasks(ctx, batchID, tc.f, tasks.Page{})
			require.NoError(t, err)
			require.Equal(t, tc.want, sessionsOf(page))
			require.Empty(t, page.NextCursor)
			for _, task := range page.Tasks {
				require.NotNil(t, task.BatchID)
				require.Equal(t, batchID, *task.BatchID)
			}
		})
	}

	// Paging by two, with and without a filter, visits every task once.
	for _, tc := range []struct {
		name  string
		f     tasks.TaskFilter
		want  []string
		pages int
	}{
		{"all by 2", tasks.TaskFilter{}, []string{"ok-1", "ok-2", "gone-1", "auth-1", "rej-1", "cancel-1", "busy-1", "wait-1", "wait-2"}, 5},
		{"completed by 2", tasks.TaskFilter{State: tasks.StateCompleted}, []string{"ok-1", "ok-2", "gone-1"}, 2},
		{"dead by 2 (exactly one page)", tasks.TaskFilter{State: tasks.StateDead}, []string{"auth-1", "rej-1"}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			cursor, pages := "", 0
			for range 20 {
				page, err := insp.BatchTasks(ctx, batchID, tc.f, tasks.Page{Cursor: cursor, Limit: 2})
				require.NoError(t, err)
				require.LessOrEqual(t, len(page.Tasks), 2)
				got = append(got, sessionsOf(page)...)
				pages++
				if cursor = page.NextCursor; cursor == "" {
					break
				}
			}
			require.Equal(t, tc.want, got)
			require.Equal(t, tc.pages, pages)
		})
	}

	// Bad input is refused before Redis is read; an unknown batch is not found.
	for _, tc := range []struct {
		name string
		id   string
		f    tasks.TaskFilter
		p    tasks.Page
		want string
	}{
		{"unknown state", batchID, tasks.TaskFilter{State: "failed"}, tasks.Page{}, `state "failed" is not one of`},
		{"unknown outcome", batchID, tasks.TaskFilter{Outcome: "oops"}, tasks.Page{}, `outcome "oops" is not one of`},
		{"limit too big", batchID, tasks.TaskFilter{}, tasks.Page{Limit: tasks.MaxPageLimit + 1}, "limit 1001 is not from 1 to 1000"},
		{"negative limit", batchID, tasks.TaskFilter{}, tasks.Page{Limit: -1}, "limit -1"},
		{"bad cursor", batchID, tasks.TaskFilter{}, tasks.Page{Cursor: "abc"}, `cursor "abc"`},
		{"negative cursor", batchID, tasks.TaskFilter{}, tasks.Page{Cursor: "-3"}, `cursor "-3"`},
		{"bad batch id", "no/such", tasks.TaskFilter{}, tasks.Page{}, "batch id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := insp.BatchTasks(ctx, tc.id, tc.f, tc.p)
			require.ErrorIs(t, err, tasks.ErrInvalidInput)
			require.Contains(t, err.Error(), tc.want)
		})
	}
	_, err := insp.BatchTasks(ctx, "0b6f3c1e5f0e4a449d550d8c3d1f8f20", tasks.TaskFilter{}, tasks.Page{})
	require.ErrorIs(t, err, tasks.ErrNotFound)
}

// TestInspectorBatchTasksSparseFilter: a filter that matches one task at
// the end of a batch bigger than one scan budget answers a short page with
// a cursor, and following the cursors finds that task.
func TestInspectorBatchTasksSparseFilter(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := redistest.Client(t)
	ns := redistest.Namespace(t)
	p, insp := loopPair(t, rdb, ns)
	const n = 10_500 // more than one call reads (10,000 entries)
	sessions := make([]string, n)
	for j := range sessions {
		sessions[j] = fmt.Sprintf("s-%05d", j)
	}
	b, err := p.EnqueueBatch(ctx, tasks.BatchRequest{Sessions: sessions})
	require.NoError(t, err)
	require.EqualValues(t, n, b.Total)
	last, err := rdb.LIndex(ctx, store.KeysFor(ns, "default").BatchTasks(b.BatchID), -1).Result()
	require.NoError(t, err)
	_, err = p.Cancel(ctx, last)
	require.NoError(t, err)

	f := tasks.TaskFilter{State: tasks.StateCanceled}
	page, err := insp.BatchTasks(ctx, b.BatchID, f, tasks.Page{})
	require.NoError(t, err)
	require.Empty(t, page.Tasks, "the first call stops at its scan budget")
	require.NotEmpty(t, page.NextCursor)
	page, err = insp.BatchTasks(ctx, b.BatchID, f, tasks.Page{Cursor: page.NextCursor})
	require.NoError(t, err)
	require.Equal(t, []string{sessions[n-1]}, sessionsOf(page))
	require.Empty(t, page.NextCursor)
}

// TestDeadLettersOfBatch lists only the dead letters of one batch, even
// after the batch itself expired.
func TestDeadLettersOfBatch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := redistest.Client(t)
	ns := redistest.Namespace(t)
	p, insp := loopPair(t, rdb, ns)
	st := store.New(rdb, store.Options{Namespace: ns})
	batchID, ids := batchOfEveryKind(t, ctx, p, insp, st, ns)
	// A dead letter outside the batch.
	lone, err := p.Enqueue(ctx, tasks.LogoutRequest{Session: "lone"})
	require.NoError(t, err)
	pl := base.Payload{Instance: "default", Session: "lone", MaxRetries: 10}
	ok, err := st.Start(ctx, lone.ID, pl, 1, 0, time.Minute)
	require.NoError(t, err)
	require.True(t, ok)
	require.NoError(t, st.Finish(ctx, lone.ID, pl, store.Finish{State: store.StateDead, Outcome: string(tasks.OutcomeRejected), ResultTTL: time.Hour}))

	all, err := insp.DeadLetters(ctx, "", 0, 100)
	require.NoError(t, err)
	require.EqualValues(t, 3, all.Total)

	page, err := insp.DeadLettersOfBatch(ctx, "", batchID, 0, 100)
	require.NoError(t, err)
	require.EqualValues(t, 2, page.Total)
	require.Equal(t, []string{ids["auth-1"], ids["rej-1"]}, []string{page.Tasks[0].ID, page.Tasks[1].ID})
	require.EqualValues(t, -1, page.NextOffset)

	page, err = insp.DeadLettersOfBatch(ctx, "default", batchID, 1, 1)
	require.NoError(t, err)
	require.EqualValues(t, 2, page.Total)
	require.Len(t, page.Tasks, 1)
	require.Equal(t, ids["rej-1"], page.Tasks[0].ID)

	// The batch expires; its dead letters stay, and so does the filter.
	k := store.KeysFor(ns, "default")
	require.NoError(t, rdb.Del(ctx, k.Batch(batchID), k.BatchTasks(batchID)).Err())
	page, err = insp.DeadLettersOfBatch(ctx, "", batchID, 0, 100)
	require.NoError(t, err)
	require.EqualValues(t, 2, page.Total)

	page, err = insp.DeadLettersOfBatch(ctx, "", "0b6f3c1e5f0e4a449d550d8c3d1f8f20", 0, 100)
	require.NoError(t, err)
	require.Zero(t, page.Total)
	require.NotNil(t, page.Tasks)

	_, err = insp.DeadLettersOfBatch(ctx, "", "bad/id", 0, 100)
	require.ErrorIs(t, err, tasks.ErrInvalidInput)
	_, err = insp.DeadLettersOfBatch(ctx, "nowhere", batchID, 0, 100)
	require.ErrorIs(t, err, tasks.ErrUnknownInstance)
}
