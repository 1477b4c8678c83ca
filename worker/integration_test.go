package worker_test

// Integration tests: a real Redis (internal/redistest), real workers, and the
// fake WAHA (wahaclient/wahafake) over loopback, wired by package wahaqtest.
// Every result is read back by id through tasks.Inspector, the way users
// poll it, and every count of WAHA calls comes from the fake's own counters.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/wahaq/wahaq/internal/asynqcompat"
	"github.com/wahaq/wahaq/internal/store"
	"github.com/wahaq/wahaq/tasks"
	"github.com/wahaq/wahaq/wahaclient/wahafake"
	"github.com/wahaq/wahaq/wahaqtest"
	"github.com/wahaq/wahaq/worker"
)

func TestMain(m *testing.M) {
	// No IgnoreTopFunction is needed: workers, fakes, HTTP test servers and
	// Redis clients are all stopped in t.Cleanup, and the WAHA client's idle
	// keep-alive connections end when the fake closes its side.
	goleak.VerifyTestMain(m)
}

// wait is the timeout of one task or batch; generous because a noisy 2-core
// machine running -race may stall for seconds. Nothing asserts on it.
const wait = 30 * time.Second

func outcome(t *testing.T, task *tasks.Task) tasks.Outcome {
	t.Helper()
	require.NotNil(t, task.Outcome, "task %s has no outcome", task.ID)
	return *task.Outcome
}

// sessionAfter decodes result.session_after and checks "me" is present and
// null, as WAHA answers after a logout.
func sessionAfter(t *testing.T, r *tasks.Result) map[string]any {
	t.Helper()
	require.NotNil(t, r)
	var m map[string]any
	require.NoError(t, json.Unmarshal(r.SessionAfter, &m), "session_after %s", r.SessionAfter)
	me, ok := m["me"]
	require.True(t, ok, "session_after has no me: %s", r.SessionAfter)
	require.Nil(t, me)
	return m
}

// TestOutcomes runs one task to each final outcome and checks the task
// model, the attempts and how many times WAHA was called.
func TestOutcomes(t *testing.T) {
	t.Parallel()
	type tc struct {
		name       string
		fake       wahafake.Options
		setup      func(f *wahafake.Server)
		workerKey  *string // nil: the fake's APIKey
		maxRetries int     // producer MaxRetries; 0 = default
		session    string
		state      tasks.State
		outcome    tasks.Outcome
		attempts   int
		calls      int
		check      func(t *testing.T, task *tasks.Task)
	}
	str := func(s string) *string { return &s }
	cases := []tc{{
		name:    "logged_out",
		fake:    wahafake.Options{APIKey: "k"},
		setup:   func(f *wahafake.Server) { f.AddSession("sales-bot", wahafake.StatusWorking) },
		session: "sales-bot", state: tasks.StateCompleted, outcome: tasks.OutcomeLoggedOut, attempts: 1, calls: 1,
		check: func(t *testing.T, task *tasks.Task) {
			require.Equal(t, "success", task.Result.Status)
			require.Equal(t, http.StatusCreated, task.Result.HTTPStatus)
			require.Equal(t, "Session logged out successfully", task.Result.Message)
			m := sessionAfter(t, task.Result)
			require.Equal(t, "sales-bot", m["name"])
			require.Contains(t, []any{wahafake.StatusStarting, wahafake.StatusScanQRCode}, m["status"])
			require.Nil(t, task.LastError)
			require.Nil(t, task.NextAttemptAt)
		},
	}, {
		name:    "not_found",
		fake:    wahafake.Options{APIKey: "k"},
		session: "nobody-here", state: tasks.StateCompleted, outcome: tasks.OutcomeNotFound, attempts: 1, calls: 1,
		check: func(t *testing.T, task *tasks.Task) {
			require.Equal(t, "success", task.Result.Status)
			require.Equal(t, http.StatusNotFound, task.Result.HTTPStatus)
			require.Contains(t, task.Result.Message, "not found")
		},
	}, {
		name:      "auth_failed_401_wrong_key",
		fake:      wahafake.Options{APIKey: "right-key"},
		setup:     func(f *wahafake.Server) { f.AddSession("s401", wahafake.StatusWorking) },
		workerKey: str("wrong-key"),
		session:   "s401", state: tasks.StateDead, outcome: tasks.OutcomeAuthFailed, attempts: 1, calls: 1,
		check: func(t *testing.T, task *tasks.Task) {
			require.Equal(t, "error", task.Result.Status)
			require.Equal(t, http.StatusUnauthorized, task.Result.HTTPStatus)
			require.NotNil(t, task.LastError)
			require.Contains(t, *task.LastError, "401")
			require.NotContains(t, *task.LastError, "wrong-key")
		},
	}, {
		name:      "auth_failed_403_scoped_key",
		fake:      wahafake.Options{APIKey: "admin-key", ScopedKeys: map[string][]string{"scoped-key": {"someone-else"}}},
		setup:     func(f *wahafake.Server) { f.AddSession("s403", wahafake.StatusWorking) },
		workerKey: str("scoped-key"),
		session:   "s403", state: tasks.StateDead, outcome: tasks.OutcomeAuthFailed, attempts: 1, calls: 1,
		check: func(t *testing.T, task *tasks.Task) {
			require.Equal(t, http.StatusForbidden, task.Result.HTTPStatus)
			require.Contains(t, *task.LastError, "403")
		},
	}, {
		name:    "rejected_core_422",
		fake:    wahafake.Options{Core: true},
		session: "not-default", state: tasks.StateDead, outcome: tasks.OutcomeRejected, attempts: 1, calls: 1,
		check: func(t *testing.T, task *tasks.Task) {
			require.Equal(t, "error", task.Result.Status)
			require.Equal(t, http.StatusUnprocessableEntity, task.Result.HTTPStatus)
			require.Contains(t, task.Result.Message, wahafake.CoreMessage)
			require.Contains(t, *task.LastError, wahafake.CoreMessage)
		},
	}, {
		name: "flaky_then_success",
		fake: wahafake.Options{},
		setup: func(f *wahafake.Server) {
			f.AddSession("flaky", wahafake.StatusWorking)
			f.Script("flaky", wahafake.Fault{Status: http.StatusServiceUnavailable, Times: 3})
		},
		session: "flaky", state: tasks.StateCompleted, outcome: tasks.OutcomeLoggedOut, attempts: 4, calls: 4,
		check: func(t *testing.T, task *tasks.Task) {
			require.Equal(t, "success", task.Result.Status)
			require.Nil(t, task.LastError, "a success clears the last error")
		},
	}, {
		name: "retries_exhausted",
		fake: wahafake.Options{},
		setup: func(f *wahafake.Server) {
			f.AddSession("down", wahafake.StatusWorking)
			f.Script("down", wahafake.Fault{Status: http.StatusServiceUnavailable}) // forever
		},
		maxRetries: 3,
		session:    "down", state: tasks.StateDead, outcome: tasks.OutcomeRetriesExhausted, attempts: 4, calls: 4,
		check: func(t *testing.T, task *tasks.Task) {
			require.Equal(t, 3, task.MaxRetries)
			require.Equal(t, "error", task.Result.Status)
			require.Equal(t, http.StatusServiceUnavailable, task.Result.HTTPStatus)
			require.Contains(t, *task.LastError, "503")
		},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			env := wahaqtest.Start(t, wahaqtest.Options{
				Fake:  c.fake,
				Tasks: func(cfg *tasks.Config) { cfg.MaxRetries = c.maxRetries },
				Worker: func(cfg *worker.Config) {
					if c.workerKey != nil {
						cfg.Instances[0].APIKey = *c.workerKey
					}
				},
			})
			if c.setup != nil {
				c.setup(env.Fake)
			}
			ctx := context.Background()
			enq, err := env.Producer.Enqueue(ctx, tasks.LogoutRequest{Session: c.session})
			require.NoError(t, err)
			require.False(t, enq.Deduplicated)

			task := env.WaitTask(t, enq.ID, wait)
			require.Equal(t, enq.ID, task.ID)
			require.Equal(t, "default", task.Instance)
			require.Equal(t, c.session, task.Session)
			require.Equal(t, c.state, task.State, "last_error: %v", task.LastError)
			require.Equal(t, c.outcome, outcome(t, task))
			require.Equal(t, c.attempts, task.Attempts)
			require.NotNil(t, task.FinishedAt)
			require.NotNil(t, task.Result)
			require.Equal(t, c.calls, env.Fake.LogoutCalls(c.session))
			require.Equal(t, c.calls, env.Fake.TotalLogoutCalls())
			c.check(t, task)

			// Dead tasks, and only they, are in the dead-letter queue.
			page, err := env.Inspector.DeadLetters(ctx, "", 0, 10)
			require.NoError(t, err)
			if c.state == tasks.StateDead {
				require.EqualValues(t, 1, page.Total)
				require.Equal(t, enq.ID, page.Tasks[0].ID)
			} else {
				require.Zero(t, page.Total)
			}
		})
	}
}

// recordingTransport notes when each request left (and for which path)
// and when each 429 answer came back.
type recordingTransport struct {
	base  *http.Transport
	mu    sync.Mutex
	sent  []time.Time
	paths []string
	got   []time.Time // times 429 answers arrived
}

func (r *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.sent = append(r.sent, time.Now())
	r.paths = append(r.paths, req.URL.Path)
	r.mu.Unlock()
	resp, err := r.base.RoundTrip(req)
	if err == nil && resp.StatusCode == http.StatusTooManyRequests {
		r.mu.Lock()
		r.got = append(r.got, time.Now())
		r.mu.Unlock()
	}
	return resp, err
}

// callsTo returns when the requests to path left.
func (r *recordingTransport) callsTo(path string) []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []time.Time
	for i, p := range r.paths {
		if p == path {
			out = append(out, r.sent[i])
		}
	}
	return out
}

func (r *recordingTransport) times() (sent, got []time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.sent), slices.Clone(r.got)
}

// TestRetryAfterHonoured: a 429 with Retry-After: 1 makes the task wait at
// least that long, as its record says while it is retrying, and the next
// call really comes no earlier.
func TestRetryAfterHonoured(t *testing.T) {
	t.Parallel()
	rt := &recordingTransport{base: &http.Transport{}}
	t.Cleanup(rt.base.CloseIdleConnections)
	const retryAfter = time.Second
	env := wahaqtest.Start(t, wahaqtest.Options{Worker: func(cfg *worker.Config) {
		cfg.RetryMax = 10 * time.Second // above Retry-After, or it would be capped
		cfg.Instances[0].HTTPClient = &http.Client{Transport: rt}
	}})
	env.Fake.AddSession("busy", wahafake.StatusWorking)
	env.Fake.Script("busy", wahafake.Fault{Status: http.StatusTooManyRequests, Times: 1, RetryAfter: retryAfter})

	enq, err := env.Producer.Enqueue(context.Background(), tasks.LogoutRequest{Session: "busy"})
	require.NoError(t, err)

	retrying := env.WaitTaskFunc(t, enq.ID, wait, "retrying", func(task *tasks.Task) bool {
		return task.State == tasks.StateRetrying || task.State.Final()
	})
	require.Equal(t, tasks.StateRetrying, retrying.State, "the 429 must be retried")
	require.Equal(t, 1, retrying.Attempts)
	require.NotNil(t, retrying.LastError)
	require.Contains(t, *retrying.LastError, "429")
	require.NotNil(t, retrying.NextAttemptAt)
	_, got := rt.times()
	require.Len(t, got, 1)
	// The record keeps milliseconds: compare with the failure's millisecond.
	failedAt := time.UnixMilli(got[0].UnixMilli())
	require.False(t, retrying.NextAttemptAt.Before(failedAt.Add(retryAfter)),
		"next_attempt_at %s is less than Retry-After %s after the 429 at %s", retrying.NextAttemptAt, retryAfter, failedAt)

	done := env.WaitTask(t, enq.ID, wait)
	require.Equal(t, tasks.StateCompleted, done.State)
	require.Equal(t, tasks.OutcomeLoggedOut, outcome(t, done))
	require.Equal(t, 2, done.Attempts)
	require.Equal(t, 2, env.Fake.LogoutCalls("busy"))
	sent, _ := rt.times()
	require.Len(t, sent, 2)
	require.GreaterOrEqual(t, sent[1].Sub(got[0]), retryAfter,
		"the second call came %s after the 429; Retry-After asked for %s", sent[1].Sub(got[0]), retryAfter)
	require.False(t, sent[1].Before(*retrying.NextAttemptAt), "the task ran before its next_attempt_at")
}

// TestScheduledRunsOnTime: a logout scheduled for a time runs at that time,
// not before (asynq's whole-second schedule must not make it early).
func TestScheduledRunsOnTime(t *testing.T) {
	t.Parallel()
	rt := &recordingTransport{base: &http.Transport{}}
	t.Cleanup(rt.base.CloseIdleConnections)
	env := wahaqtest.Start(t, wahaqtest.Options{Worker: func(cfg *worker.Config) {
		cfg.Instances[0].HTTPClient = &http.Client{Transport: rt}
	}})
	ctx := context.Background()
	names := env.Fake.AddSessions("at", 3, wahafake.StatusWorking)
	ids := make([]string, len(names))
	for i, s := range names {
		// Staggered so the scheduled times fall at different points of a second.
		enq, err := env.Producer.Enqueue(ctx, tasks.LogoutRequest{Session: s,
			When: tasks.When{In: 300*time.Millisecond + time.Duration(i)*330*time.Millisecond}})
		require.NoError(t, err)
		require.Equal(t, tasks.StateScheduled, enq.State)
		ids[i] = enq.ID
	}
	for i, id := range ids {
		task := env.WaitTask(t, id, wait)
		require.Equal(t, tasks.OutcomeLoggedOut, outcome(t, task))
		require.NotNil(t, task.ScheduledFor)
		require.Equal(t, 1, env.Fake.LogoutCalls(names[i]))
		calls := rt.callsTo("/api/sessions/" + names[i] + "/logout")
		require.Len(t, calls, 1)
		require.False(t, calls[0].Before(*task.ScheduledFor),
			"%s was called at %s, before its scheduled_for %s", names[i], calls[0], task.ScheduledFor)
	}
}

func TestDedup(t *testing.T) {
	t.Parallel()
	env := wahaqtest.Start(t, wahaqtest.Options{})
	ctx := context.Background()
	env.Fake.AddSession("later", wahafake.StatusWorking)
	env.Fake.AddSession("now", wahafake.StatusWorking)

	// Twice while scheduled, the second for a later time: one task, at the
	// earlier time. (A request for an earlier time pulls it forward: see
	// reschedule_test.go.)
	first, err := env.Producer.Enqueue(ctx, tasks.LogoutRequest{Session: "later", When: tasks.When{In: time.Hour}})
	require.NoError(t, err)
	require.Equal(t, tasks.StateScheduled, first.State)
	require.False(t, first.Deduplicated)
	second, err := env.Producer.Enqueue(ctx, tasks.LogoutRequest{Session: "later", When: tasks.When{In: 2 * time.Hour}})
	require.NoError(t, err)
	require.Equal(t, first.ID, second.ID)
	require.True(t, second.Deduplicated)
	require.Equal(t, tasks.StateScheduled, second.State)
	require.NotNil(t, second.ScheduledFor)
	require.Equal(t, *first.ScheduledFor, *second.ScheduledFor)
	require.False(t, second.Rescheduled)

	// After completion a new enqueue is a new task.
	a, err := env.Producer.Enqueue(ctx, tasks.LogoutRequest{Session: "now"})
	require.NoError(t, err)
	require.Equal(t, tasks.StateCompleted, env.WaitTask(t, a.ID, wait).State)
	b, err := env.Producer.Enqueue(ctx, tasks.LogoutRequest{Session: "now"})
	require.NoError(t, err)
	require.False(t, b.Deduplicated)
	require.NotEqual(t, a.ID, b.ID)
	require.Equal(t, tasks.OutcomeLoggedOut, outcome(t, env.WaitTask(t, b.ID, wait)))
	require.Equal(t, 2, env.Fake.LogoutCalls("now"))
	require.Zero(t, env.Fake.LogoutCalls("later"))
}

func TestCancel(t *testing.T) {
	t.Parallel()
	env := wahaqtest.Start(t, wahaqtest.Options{})
	ctx := context.Background()
	env.Fake.AddSession("sched", wahafake.StatusWorking)
	env.Fake.AddSession("done", wahafake.StatusWorking)

	const in = 2 * time.Second
	enq, err := env.Producer.Enqueue(ctx, tasks.LogoutRequest{Session: "sched", When: tasks.When{In: in}})
	require.NoError(t, err)
	canceled, err := env.Producer.Cancel(ctx, enq.ID)
	require.NoError(t, err)
	require.Equal(t, tasks.StateCanceled, canceled.State)

	// Let the scheduled time pass with the worker running: it never runs.
	time.Sleep(in + 1500*time.Millisecond)
	task, err := env.Inspector.Task(ctx, enq.ID)
	require.NoError(t, err)
	require.Equal(t, tasks.StateCanceled, task.State)
	require.Zero(t, task.Attempts)
	require.Zero(t, env.Fake.LogoutCalls("sched"))
	_, err = env.Producer.Cancel(ctx, enq.ID)
	require.ErrorIs(t, err, tasks.ErrAlreadyStarted, "a canceled task cannot be canceled again")

	// The session is free again.
	again, err := env.Producer.Enqueue(ctx, tasks.LogoutRequest{Session: "sched", When: tasks.When{In: time.Hour}})
	require.NoError(t, err)
	require.False(t, again.Deduplicated)
	require.NotEqual(t, enq.ID, again.ID)

	// Too late once it has run.
	d, err := env.Producer.Enqueue(ctx, tasks.LogoutRequest{Session: "done"})
	require.NoError(t, err)
	require.Equal(t, tasks.StateCompleted, env.WaitTask(t, d.ID, wait).State)
	_, err = env.Producer.Cancel(ctx, d.ID)
	require.ErrorIs(t, err, tasks.ErrAlreadyStarted)
	task, err = env.Inspector.Task(ctx, d.ID)
	require.NoError(t, err)
	require.Equal(t, tasks.StateCompleted, task.State)

	_, err = env.Producer.Cancel(ctx, uuid.NewString())
	require.ErrorIs(t, err, tasks.ErrNotFound)
}

// TestRequeueAfterKeyFixed: an auth failure sits in the dead-letter queue;
// once the key matches, a requeue by id runs it again under the same id
// with fresh retries, its attempt numbers counting on (issue 22).
func TestRequeueAfterKeyFixed(t *testing.T) {
	t.Parallel()
	env := wahaqtest.Start(t, wahaqtest.Options{
		Fake:   wahafake.Options{APIKey: "old-key"},
		Worker: func(cfg *worker.Config) { cfg.Instances[0].APIKey = "new-key" },
	})
	ctx := context.Background()
	env.Fake.AddSession("ops-bot", wahafake.StatusWorking)

	enq, err := env.Producer.Enqueue(ctx, tasks.LogoutRequest{Session: "ops-bot"})
	require.NoError(t, err)
	dead := env.WaitTask(t, enq.ID, wait)
	require.Equal(t, tasks.StateDead, dead.State)
	require.Equal(t, tasks.OutcomeAuthFailed, outcome(t, dead))
	require.Equal(t, 1, dead.Attempts)
	require.Equal(t, 1, env.Fake.LogoutCalls("ops-bot"))

	env.Fake.SetAPIKey("new-key")
	waitArchived(t, env, 1)
	res, err := env.Inspector.Requeue(ctx, tasks.Selection{IDs: []string{enq.ID}})
	require.NoError(t, err)
	require.Equal(t, []tasks.RequeueResult{{ID: enq.ID, Status: tasks.Requeued}}, res)

	done := env.WaitTask(t, enq.ID, wait)
	require.Equal(t, enq.ID, done.ID)
	require.Equal(t, tasks.StateCompleted, done.State)
	require.Equal(t, tasks.OutcomeLoggedOut, outcome(t, done))
	require.Equal(t, 2, done.Attempts, "attempt numbers count on across a requeue")
	require.Len(t, done.AttemptsLog, 2)
	require.Equal(t, tasks.Attempt{Attempt: 1, StartedAt: done.AttemptsLog[0].StartedAt, FinishedAt: done.AttemptsLog[0].FinishedAt,
		Outcome: string(tasks.OutcomeAuthFailed), HTTPStatus: 401, Error: done.AttemptsLog[0].Error}, done.AttemptsLog[0])
	require.Equal(t, 2, done.AttemptsLog[1].Attempt, "it was 1 twice")
	require.True(t, done.AttemptsLog[1].Requeued, "it says where the requeue began")
	require.False(t, done.AttemptsLog[0].Requeued)
	require.Nil(t, done.LastError)
	require.Equal(t, "success", done.Result.Status)
	require.Equal(t, 2, env.Fake.LogoutCalls("ops-bot"))
	page, err := env.Inspector.DeadLetters(ctx, "", 0, 10)
	require.NoError(t, err)
	require.Zero(t, page.Total)
}

// waitArchived waits until asynq has handed back every dead task (none is
// active or pending any more) and archived count of them; a requeue of a
// task asynq is still archiving answers "busy".
func waitArchived(t *testing.T, env *wahaqtest.Env, atLeast int) *asynq.QueueInfo {
	t.Helper()
	insp := asynq.NewInspectorFromRedisClient(env.Redis)
	q := env.Producer.Queue(env.Instance)
	var info *asynq.QueueInfo
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		got, err := insp.GetQueueInfo(q)
		require.NoError(c, err)
		info = got
		assert.True(c, got.Active == 0 && got.Pending == 0 && got.Archived >= atLeast, "asynq queue %s did not settle: %+v", q, got)
	}, wait, 20*time.Millisecond)
	return info
}

func TestBatch(t *testing.T) {
	t.Parallel()
	env := wahaqtest.Start(t, wahaqtest.Options{})
	ctx := context.Background()
	names := env.Fake.AddSessions("team", 17, wahafake.StatusWorking)
	env.Fake.Script(names[0], wahafake.Fault{Status: http.StatusUnauthorized, Times: 1})
	sessions := append(slices.Clone(names), "gone-1", "gone-2", "team-0003") // two unknown, one named twice
	sessions = append(sessions, "extra")
	env.Fake.AddSession("extra", wahafake.StatusStopped)

	info, err := env.Producer.EnqueueBatch(ctx, tasks.BatchRequest{Sessions: sessions})
	require.NoError(t, err)
	require.EqualValues(t, 20, info.Total)
	require.Equal(t, 21, info.Requested)
	require.Equal(t, 1, info.Deduplicated)

	b := env.WaitBatch(t, info.BatchID, wait)
	require.EqualValues(t, 20, b.Total)
	require.Equal(t, map[tasks.State]int64{
		tasks.StateScheduled: 0, tasks.StatePending: 0, tasks.StateActive: 0, tasks.StateRetrying: 0,
		tasks.StateCompleted: 19, tasks.StateDead: 1, tasks.StateCanceled: 0,
	}, b.Counts)
	require.Equal(t, map[tasks.Outcome]int64{
		tasks.OutcomeLoggedOut: 17, tasks.OutcomeNotFound: 2, tasks.OutcomeAuthFailed: 1,
		tasks.OutcomeRejected: 0, tasks.OutcomeRetriesExhausted: 0, tasks.OutcomeArchived: 0,
	}, b.Outcomes)
	require.EqualValues(t, 1, b.Deduplicated)
	for _, s := range append(slices.Clone(names), "extra") {
		require.Equal(t, 1, env.Fake.LogoutCalls(s), s)
	}
	require.Equal(t, 20, env.Fake.TotalLogoutCalls())
	page, err := env.Inspector.DeadLetters(ctx, "", 0, 10)
	require.NoError(t, err)
	require.EqualValues(t, 1, page.Total)
	require.Equal(t, names[0], page.Tasks[0].Session)
	require.Equal(t, info.BatchID, *page.Tasks[0].BatchID)
}

func TestDiscoveryBatch(t *testing.T) {
	t.Parallel()
	env := wahaqtest.Start(t, wahaqtest.Options{})
	ctx := context.Background()
	working := env.Fake.AddSessions("w", 5, wahafake.StatusWorking)
	stopped := env.Fake.AddSessions("off", 3, wahafake.StatusStopped)
	stopped = append(stopped, wahafake.DefaultSession)

	info, err := env.Producer.EnqueueDiscovery(ctx, tasks.DiscoveryRequest{Statuses: []string{"working"}})
	require.NoError(t, err)
	require.True(t, info.Discovering)

	b := env.WaitBatch(t, info.BatchID, wait)
	require.False(t, b.Discovering)
	require.Empty(t, b.Error)
	require.EqualValues(t, len(working), b.Total)
	require.EqualValues(t, len(working), b.Counts[tasks.StateCompleted])
	require.EqualValues(t, len(working), b.Outcomes[tasks.OutcomeLoggedOut])
	for _, s := range working {
		require.Equal(t, 1, env.Fake.LogoutCalls(s), s)
		after, ok := env.Fake.Session(s)
		require.True(t, ok)
		require.Nil(t, after.Me)
	}
	for _, s := range stopped {
		require.Zero(t, env.Fake.LogoutCalls(s), s)
	}
	require.Equal(t, len(working), env.Fake.TotalLogoutCalls())
}

// TestConcurrencyCapAcrossWorkers: two worker processes of one fleet never
// have more than InstanceConcurrency logouts in flight against one server,
// and waiting for a slot spends no retry.
func TestConcurrencyCapAcrossWorkers(t *testing.T) {
	t.Parallel()
	const limit = 3
	env := wahaqtest.Start(t, wahaqtest.Options{
		Fake: wahafake.Options{LogoutLatency: 100 * time.Millisecond},
		Worker: func(cfg *worker.Config) {
			cfg.Concurrency = 8
			cfg.InstanceConcurrency = limit
		},
	})
	env.StartWorker(t, nil)
	ctx := context.Background()
	names := env.Fake.AddSessions("c", 40, wahafake.StatusWorking)
	ids := make([]string, len(names))
	for i, s := range names {
		enq, err := env.Producer.Enqueue(ctx, tasks.LogoutRequest{Session: s})
		require.NoError(t, err)
		ids[i] = enq.ID
	}
	for i, id := range ids {
		task := env.WaitTask(t, id, wait)
		require.Equal(t, tasks.StateCompleted, task.State, names[i])
		require.Equal(t, tasks.OutcomeLoggedOut, outcome(t, task))
		require.Equal(t, 1, task.Attempts, "%s: waiting for a slot must not spend a retry", names[i])
		require.Equal(t, 1, env.Fake.LogoutCalls(names[i]))
	}
	require.LessOrEqual(t, env.Fake.MaxInFlight(), limit)
	require.GreaterOrEqual(t, env.Fake.MaxInFlight(), 1)
	require.Equal(t, len(names), env.Fake.TotalLogoutCalls())
}

// TestDeadLettersBeyondAsynqArchive puts 10,500 dead letters into one queue
// through the worker. asynq's archive keeps at most 10,000 per queue and
// drops the rest; wahaq's dead-letter queue must list every one, and a
// requeue of all of them must bring every one back.
func TestDeadLettersBeyondAsynqArchive(t *testing.T) {
	if testing.Short() {
		t.Skip("10,500 tasks through the worker, twice; runs in the default `go test` (and CI), skipped with -short")
	}
	t.Parallel()
	const n = 10_500
	env := wahaqtest.Start(t, wahaqtest.Options{Worker: func(cfg *worker.Config) {
		cfg.Concurrency = 50
		cfg.InstanceConcurrency = 50
	}})
	ctx := context.Background()
	names := env.Fake.AddSessions("dl", n, wahafake.StatusWorking)
	env.Fake.SetDefaultFault(&wahafake.Fault{Status: http.StatusUnauthorized})

	start := time.Now()
	info, err := env.Producer.EnqueueBatch(ctx, tasks.BatchRequest{Sessions: names})
	require.NoError(t, err)
	require.EqualValues(t, n, info.Total)
	b := env.WaitBatch(t, info.BatchID, 3*time.Minute)
	require.EqualValues(t, n, b.Counts[tasks.StateDead])
	require.EqualValues(t, n, b.Outcomes[tasks.OutcomeAuthFailed])
	t.Logf("%d tasks dead-lettered in %s", n, time.Since(start).Round(time.Millisecond))

	qinfo := waitArchived(t, env, 1)
	require.LessOrEqual(t, qinfo.Archived, 10_000, "asynq's archive should have trimmed")
	require.Less(t, qinfo.Archived, n)

	seen := make(map[string]bool, n)
	sessions := make(map[string]bool, n)
	var offset int64
	pages := 0
	for offset >= 0 {
		page, err := env.Inspector.DeadLetters(ctx, env.Instance, offset, 1000)
		require.NoError(t, err)
		require.EqualValues(t, n, page.Total)
		require.NotEmpty(t, page.Tasks)
		for _, task := range page.Tasks {
			require.False(t, seen[task.ID], "task %s listed twice", task.ID)
			seen[task.ID] = true
			sessions[task.Session] = true
			require.Equal(t, tasks.StateDead, task.State)
			require.Equal(t, tasks.OutcomeAuthFailed, outcome(t, task))
		}
		offset = page.NextOffset
		pages++
	}
	require.Len(t, seen, n)
	require.Len(t, sessions, n)
	require.Equal(t, 11, pages)

	// The key is fixed: every dead letter comes back and succeeds.
	env.Fake.SetDefaultFault(nil)
	start = time.Now()
	res, err := env.Inspector.Requeue(ctx, tasks.Selection{All: true})
	require.NoError(t, err)
	require.Len(t, res, n)
	for _, r := range res {
		require.Equal(t, tasks.Requeued, r.Status, r.ID)
		require.True(t, seen[r.ID])
	}
	b = env.WaitBatch(t, info.BatchID, 3*time.Minute)
	t.Logf("%d requeued tasks logged out in %s", n, time.Since(start).Round(time.Millisecond))
	require.EqualValues(t, n, b.Counts[tasks.StateCompleted])
	require.Zero(t, b.Counts[tasks.StateDead])
	require.EqualValues(t, n, b.Outcomes[tasks.OutcomeLoggedOut])
	require.Zero(t, b.Outcomes[tasks.OutcomeAuthFailed])
	page, err := env.Inspector.DeadLetters(ctx, "", 0, 10)
	require.NoError(t, err)
	require.Zero(t, page.Total)
	for _, s := range names {
		if c := env.Fake.LogoutCalls(s); c != 2 {
			require.Equal(t, 2, c, "%s: one 401, then one logout", s)
		}
	}
	require.Equal(t, 2*n, env.Fake.TotalLogoutCalls())
	// Every record, read by id: same id, logged out, its second attempt.
	for id := range seen {
		task, err := env.Inspector.Task(ctx, id)
		require.NoError(t, err)
		if task.State != tasks.StateCompleted || outcome(t, task) != tasks.OutcomeLoggedOut || task.Attempts != 2 {
			require.Failf(t, "requeued task did not log out once", "%+v", task)
		}
	}
}

// TestSecretsStayOut runs successes, a retry, a validation refusal and a
// WAHA 401 with debug logs on, then looks for the WAHA key and the
// validation key everywhere wahaq writes: logs, Redis key names and values
// (wahaq's and asynq's), task results and errors.
func TestSecretsStayOut(t *testing.T) {
	t.Parallel()
	const apiKey, valKey = "sekret-KEY-123", "val-KEY-456"
	secrets := []string{apiKey, valKey}

	var deny atomic.Bool
	var valCalls, valGoodAuth atomic.Int64
	val := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		valCalls.Add(1)
		if r.Header.Get("Authorization") == "Bearer "+valKey {
			valGoodAuth.Add(1)
		}
		if deny.Load() {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"message":"subscription expired"}`))
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(val.Close)

	logs := &wahaqtest.LogBuffer{}
	logger := zerolog.New(logs).Level(zerolog.DebugLevel).With().Timestamp().Logger()
	env := wahaqtest.Start(t, wahaqtest.Options{
		Fake: wahafake.Options{APIKey: apiKey},
		Worker: func(cfg *worker.Config) {
			cfg.Logger = &logger
			cfg.Validation.URL = val.URL
			cfg.Validation.APIKey = valKey
			cfg.Validation.CacheTTL = -1 // ask every time, so the refusal is seen
		},
	})
	ctx := context.Background()
	env.Fake.AddSession("ok", wahafake.StatusWorking)
	env.Fake.AddSession("retry", wahafake.StatusWorking)
	env.Fake.AddSession("refused", wahafake.StatusWorking)
	env.Fake.AddSession("rotated", wahafake.StatusWorking)
	env.Fake.Script("retry", wahafake.Fault{Status: http.StatusServiceUnavailable, Times: 1})

	var ids []string
	run := func(session string, want tasks.Outcome) *tasks.Task {
		t.Helper()
		enq, err := env.Producer.Enqueue(ctx, tasks.LogoutRequest{Session: session})
		require.NoError(t, err)
		ids = append(ids, enq.ID)
		task := env.WaitTask(t, enq.ID, wait)
		require.Equal(t, want, outcome(t, task), "%s: %v", session, task.LastError)
		return task
	}
	run("ok", tasks.OutcomeLoggedOut)
	require.Equal(t, 2, run("retry", tasks.OutcomeLoggedOut).Attempts)
	info, err := env.Producer.EnqueueBatch(ctx, tasks.BatchRequest{Sessions: []string{"ok", "retry"}})
	require.NoError(t, err)
	env.WaitBatch(t, info.BatchID, wait)
	require.Positive(t, valGoodAuth.Load(), "the validation key must reach the validation service")
	require.Equal(t, valCalls.Load(), valGoodAuth.Load())

	deny.Store(true)
	refused := run("refused", tasks.OutcomeAuthFailed)
	require.Contains(t, *refused.LastError, "401")
	require.Zero(t, env.Fake.LogoutCalls("refused"), "a validation refusal must not call WAHA")
	deny.Store(false)

	env.Fake.SetAPIKey("another-key") // the worker's key no longer matches: WAHA answers 401
	rotated := run("rotated", tasks.OutcomeAuthFailed)
	require.Contains(t, *rotated.LastError, "401")
	require.Equal(t, 1, env.Fake.LogoutCalls("rotated"))

	// Let the worker finish writing (asynq archives dead tasks after the
	// record is written) before Redis is read.
	waitArchived(t, env, 2)

	check := func(where, text string) {
		t.Helper()
		for _, s := range secrets {
			require.NotContains(t, text, s, "secret found in %s", where)
		}
	}
	for _, id := range ids {
		task, err := env.Inspector.Task(ctx, id)
		require.NoError(t, err)
		b, err := json.Marshal(task)
		require.NoError(t, err)
		check("task "+id, string(b))
	}
	page, err := env.Inspector.DeadLetters(ctx, "", 0, 100)
	require.NoError(t, err)
	require.EqualValues(t, 2, page.Total)
	b, err := json.Marshal(page)
	require.NoError(t, err)
	check("dead letters", string(b))

	keys := scanKeys(t, env.Redis, "*"+env.Namespace+":*", "asynq:servers*", "asynq:workers*")
	require.NotEmpty(t, keys)
	var sawWahaq, sawAsynq bool
	for _, k := range keys {
		check("key name "+k, k)
		check("value of "+k, readKey(t, env.Redis, k))
		sawWahaq = sawWahaq || strings.HasPrefix(k, store.NamespacePrefix(env.Namespace))
		sawAsynq = sawAsynq || strings.HasPrefix(k, asynqcompat.QueuesPrefix(env.Namespace+":")) // asynq's own keys of the namespace
	}
	require.True(t, sawWahaq, "no wahaq key was checked")
	require.True(t, sawAsynq, "no asynq key was checked")

	out := logs.String()
	require.Contains(t, out, "logout done", "the logs were not captured")
	require.Contains(t, out, "task dead-lettered")
	require.Contains(t, out, "will retry")
	check("logs", out)
}

func scanKeys(t *testing.T, rdb *redis.Client, patterns ...string) []string {
	t.Helper()
	ctx := context.Background()
	set := map[string]bool{}
	for _, p := range patterns {
		iter := rdb.Scan(ctx, 0, p, 1000).Iterator()
		for iter.Next(ctx) {
			set[iter.Val()] = true
		}
		require.NoError(t, iter.Err())
	}
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// readKey renders a key's value whatever its type; a key that expired
// meanwhile reads as empty.
func readKey(t *testing.T, rdb *redis.Client, key string) string {
	t.Helper()
	ctx := context.Background()
	typ, err := rdb.Type(ctx, key).Result()
	require.NoError(t, err)
	var v any
	switch typ {
	case "none":
		return ""
	case "string":
		v, err = rdb.Get(ctx, key).Result()
	case "hash":
		v, err = rdb.HGetAll(ctx, key).Result()
	case "list":
		v, err = rdb.LRange(ctx, key, 0, -1).Result()
	case "set":
		v, err = rdb.SMembers(ctx, key).Result()
	case "zset":
		v, err = rdb.ZRangeWithScores(ctx, key, 0, -1).Result()
	default:
		t.Fatalf("key %s has type %s, which this test cannot read", key, typ)
	}
	if err == redis.Nil {
		return ""
	}
	require.NoError(t, err, key)
	return fmt.Sprint(v)
}
