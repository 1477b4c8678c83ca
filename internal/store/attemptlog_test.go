package store_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/asynqcompat"
	"github.com/wahaq/wahaq/internal/base"
	"github.com/wahaq/wahaq/internal/store"
)

// TestAttemptLog runs the finish script's attempt-history block against real
// Redis: what one attempt writes, retries, the 20-entry cap, a Finish sent
// twice, and a history kept across a requeue.
func TestAttemptLog(t *testing.T) {
	t.Parallel()
	// attempt starts the task 3 ms after now and finishes it 41 ms later.
	attempt := func(f *fixture, id string, p base.Payload, n int, fin store.Finish) time.Time {
		f.now = f.now.Add(3 * time.Millisecond)
		start := f.now
		ok, err := f.st.Start(f.ctx, id, p, n, 0, time.Minute)
		require.NoError(t, err)
		require.True(t, ok)
		f.now = f.now.Add(41 * time.Millisecond)
		fin.Attempt, fin.StartedAt, fin.ResultTTL = n, start, time.Hour
		require.NoError(t, f.st.Finish(f.ctx, id, p, fin))
		return start
	}
	long := strings.Repeat("é", 100) // 200 bytes, cut on a character boundary
	for _, c := range []struct {
		name string
		run  func(f *fixture, id string, p base.Payload) time.Time
		log  string
	}{
		{"one attempt, logged out", func(f *fixture, id string, p base.Payload) time.Time {
			return attempt(f, id, p, 1, store.Finish{State: store.StateCompleted, Outcome: "logged_out", HTTPStatus: 200})
		}, "1,3,41,200,logged_out,"},
		{"a retry, then dead", func(f *fixture, id string, p base.Payload) time.Time {
			attempt(f, id, p, 1, store.Finish{State: store.StateRetrying, HTTPStatus: 503, LastError: "WAHA answered 503,\nbusy"})
			return attempt(f, id, p, 2, store.Finish{State: store.StateDead, Outcome: "auth_failed", HTTPStatus: 401, LastError: long})
		}, "1,3,41,503,retrying,WAHA answered 503, busy\n2,47,41,401,auth_failed," + strings.Repeat("é", 58) + "…"},
		{"no attempt number, no entry", func(f *fixture, id string, p base.Payload) time.Time {
			f.start(id, p)
			require.NoError(t, f.st.Finish(f.ctx, id, p, store.Finish{State: store.StateCompleted, Outcome: "logged_out", ResultTTL: time.Hour}))
			return time.Time{}
		}, ""},
		{"the same Finish twice counts once", func(f *fixture, id string, p base.Payload) time.Time {
			start := attempt(f, id, p, 1, store.Finish{State: store.StateRetrying, HTTPStatus: 503})
			f.now = f.now.Add(time.Second) // sent again later, after a lost reply
			require.NoError(t, f.st.Finish(f.ctx, id, p, store.Finish{State: store.StateRetrying, HTTPStatus: 503,
				Attempt: 1, StartedAt: start, ResultTTL: time.Hour}))
			return start
		}, "1,3,41,503,retrying,"},
		{"the last 20 are kept", func(f *fixture, id string, p base.Payload) time.Time {
			var last time.Time
			for n := 1; n <= 25; n++ {
				last = attempt(f, id, p, n, store.Finish{State: store.StateRetrying})
			}
			return last
		}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			p, id := f.enqueue("s1", "")
			enq := f.now
			last := c.run(f, id, p)
			raw := f.hash(f.k.Record(id))[store.FieldLog]
			rec, err := f.st.Get(f.ctx, []string{"default"}, id)
			require.NoError(t, err)
			if c.name == "the last 20 are kept" {
				require.Len(t, rec.AttemptLog, store.MaxAttemptLog)
				require.Equal(t, 6, rec.AttemptLog[0].Number)
				require.Equal(t, 25, rec.AttemptLog[19].Number)
				require.Equal(t, last, rec.AttemptLog[19].StartedAt)
				return
			}
			require.Equal(t, c.log, raw)
			if c.log == "" {
				require.Empty(t, rec.AttemptLog)
				return
			}
			require.NotEmpty(t, rec.AttemptLog)
			first := rec.AttemptLog[0]
			require.Equal(t, enq.Add(3*time.Millisecond), first.StartedAt)
			require.Equal(t, first.StartedAt.Add(41*time.Millisecond), first.FinishedAt)
			end := rec.AttemptLog[len(rec.AttemptLog)-1]
			require.Equal(t, last, end.StartedAt)
			require.LessOrEqual(t, len(end.Error), store.MaxAttemptError)
		})
	}

	t.Run("kept across a requeue", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		p, id := f.enqueue("s1", "")
		attempt(f, id, p, 1, store.Finish{State: store.StateDead, Outcome: "auth_failed", HTTPStatus: 401, LastError: "401"})
		f.asynqState(id, asynqcompat.StateArchived)
		res, err := f.st.Requeue(f.ctx, "default", []string{id}, 0, time.Hour)
		require.NoError(t, err)
		require.Len(t, res, 1)
		attempt(f, id, p, 1, store.Finish{State: store.StateCompleted, Outcome: "logged_out", HTTPStatus: 200})
		rec, err := f.st.Get(f.ctx, []string{"default"}, id)
		require.NoError(t, err)
		require.Len(t, rec.AttemptLog, 2)
		require.Equal(t, "auth_failed", rec.AttemptLog[0].Outcome)
		require.Equal(t, 401, rec.AttemptLog[0].HTTPStatus)
		require.Equal(t, "logged_out", rec.AttemptLog[1].Outcome)
		// issue 22: the numbers count on (they were 1 and 1); the retry
		// budget starts again (the worker's attempt was 1)
		require.Equal(t, []int{1, 2}, []int{rec.AttemptLog[0].Number, rec.AttemptLog[1].Number})
		require.Equal(t, 2, rec.Attempts)
		require.Equal(t, "1", f.hash(f.k.Record(id))[store.FieldAttemptBase])

		// a second requeue counts on from the second
		require.NoError(t, f.rdb.HSet(f.ctx, f.k.Record(id), "state", "dead").Err())
		_, err = f.st.Requeue(f.ctx, "default", []string{id}, 0, time.Hour)
		require.NoError(t, err)
		rec, err = f.st.Get(f.ctx, []string{"default"}, id)
		require.NoError(t, err)
		require.Equal(t, 2, rec.Attempts, "a requeued task shows the attempts made so far")
		attempt(f, id, p, 1, store.Finish{State: store.StateRetrying, HTTPStatus: 503, LastError: "503"})
		attempt(f, id, p, 2, store.Finish{State: store.StateCompleted, Outcome: "logged_out", HTTPStatus: 201})
		rec, err = f.st.Get(f.ctx, []string{"default"}, id)
		require.NoError(t, err)
		var nums []int
		for _, a := range rec.AttemptLog {
			nums = append(nums, a.Number)
		}
		require.Equal(t, []int{1, 2, 3, 4}, nums)
		require.Equal(t, 4, rec.Attempts)
	})

	t.Run("a final record derives attempts and fin from its history", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		bid, ids := f.batch("s1")
		p := base.Payload{Instance: "default", Session: "s1", BatchID: bid, MaxRetries: 3}
		attempt(f, ids[0], p, 1, store.Finish{State: store.StateRetrying, HTTPStatus: 503, LastError: "503"})
		attempt(f, ids[0], p, 2, store.Finish{State: store.StateCompleted, Outcome: "logged_out", HTTPStatus: 200,
			Result: []byte(`{"status":"success"}`)})
		raw := f.hash(f.k.Record(ids[0]))
		require.NotContains(t, raw, store.FieldAttempts)
		require.NotContains(t, raw, store.FieldFinished)
		require.Len(t, raw, 8, "state, max, enq, batch, session, outcome, result, log: %v", raw)
		require.Equal(t, 2, store.RecordAttempts(raw))
		rec, err := f.st.Get(f.ctx, []string{"default"}, ids[0])
		require.NoError(t, err)
		require.Equal(t, 2, rec.Attempts)
		require.NotNil(t, rec.FinishedAt)
		require.Equal(t, f.now, *rec.FinishedAt, "the end of the last attempt is the finish time")

		// a field written later (here by a requeue: the attempts so far)
		// wins over the history
		f.asynqState(ids[0], asynqcompat.StateArchived)
		require.NoError(t, f.rdb.HSet(f.ctx, f.k.Record(ids[0]), "state", "dead").Err())
		require.NoError(t, f.rdb.HSet(f.ctx, f.k.Record(ids[0]), store.FieldAttempts, 7).Err())
		rec, err = f.st.Get(f.ctx, []string{"default"}, ids[0])
		require.NoError(t, err)
		require.Equal(t, 7, rec.Attempts)
		_, err = f.st.Requeue(f.ctx, "default", ids, 0, time.Hour)
		require.NoError(t, err)
		rec, err = f.st.Get(f.ctx, []string{"default"}, ids[0])
		require.NoError(t, err)
		require.Equal(t, 2, rec.Attempts, "the requeue writes the history's count")
		require.Nil(t, rec.FinishedAt)
		require.Len(t, rec.AttemptLog, 2)
	})

	t.Run("trace id kept from the enqueue", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
		res, err := f.st.Enqueue(f.ctx, []store.NewTask{{Instance: "default", Session: "s1", TraceParent: tp},
			{Instance: "default", Session: "s2"}})
		require.NoError(t, err)
		rec, err := f.st.Get(f.ctx, []string{"default"}, res[0].ID)
		require.NoError(t, err)
		require.Equal(t, "4bf92f3577b34da6a3ce929d0e0e4736", rec.TraceID)
		require.Contains(t, f.hash(f.k.AsynqTask(res[0].ID))[asynqcompat.FieldMsg], tp, "the payload carries the trace context")
		rec, err = f.st.Get(f.ctx, []string{"default"}, res[1].ID)
		require.NoError(t, err)
		require.Empty(t, rec.TraceID)
		require.NotContains(t, f.hash(f.k.Record(res[1].ID)), store.FieldTrace)
	})
}
