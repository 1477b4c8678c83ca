package reconcile_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/asynqcompat"
	"github.com/wahaq/wahaq/internal/base"
	"github.com/wahaq/wahaq/internal/metrics"
	"github.com/wahaq/wahaq/internal/reconcile"
	"github.com/wahaq/wahaq/internal/redistest"
	"github.com/wahaq/wahaq/internal/store"
)

// fixture is one test's namespace on the shared test Redis, a store and a
// reconciler over it that share a clock the test moves, and asynq's own
// Inspector (what the asynq CLI and asynqmon call) for the operator's
// actions.
type fixture struct {
	t   *testing.T
	ctx context.Context
	rdb *redis.Client
	st  *store.Store
	k   store.Keys
	m   *metrics.Metrics
	rec *reconcile.Reconciler
	aq  *asynq.Inspector

	mu  sync.Mutex
	now time.Time
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{t: t, ctx: context.Background(), rdb: redistest.Client(t), m: metrics.New(nil), now: time.Now()}
	ns := redistest.Namespace(t)
	f.st = store.New(f.rdb, store.Options{Namespace: ns, Now: f.clock})
	f.k = f.st.Keys("default")
	var err error
	f.rec, err = reconcile.New(reconcile.Config{Redis: f.rdb, Namespace: ns, Instances: []string{"default"},
		ResultTTL: time.Hour, Metrics: f.m, Now: f.clock})
	require.NoError(t, err)
	f.aq = asynq.NewInspectorFromRedisClient(f.rdb)
	return f
}

func (f *fixture) clock() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fixture) advance(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
}

// enqueue creates one pending task of session in batch bid ("" none).
func (f *fixture) enqueue(session, bid string) string {
	f.t.Helper()
	res, err := f.st.Enqueue(f.ctx, []store.NewTask{{Instance: "default", Session: session, BatchID: bid, MaxRetries: 3}})
	require.NoError(f.t, err)
	require.False(f.t, res[0].Deduplicated)
	return res[0].ID
}

// openBatch creates an open batch, as a producer does before its first task.
func (f *fixture) openBatch() string {
	f.t.Helper()
	bid := base.NewID()
	require.NoError(f.t, f.st.CreateBatch(f.ctx, "default", bid, time.Time{}, false))
	return bid
}

func (f *fixture) closeBatch(bid string) {
	f.t.Helper()
	require.NoError(f.t, f.st.CloseBatch(f.ctx, "default", bid, 0, "", time.Hour))
}

func (f *fixture) batch(bid string) *store.Batch {
	f.t.Helper()
	b, err := f.st.GetBatch(f.ctx, []string{"default"}, bid)
	require.NoError(f.t, err)
	return b
}

func (f *fixture) record(id string) map[string]string {
	f.t.Helper()
	m, err := f.rdb.HGetAll(f.ctx, f.k.Record(id)).Result()
	require.NoError(f.t, err)
	return m
}

func (f *fixture) exists(key string) bool {
	f.t.Helper()
	n, err := f.rdb.Exists(f.ctx, key).Result()
	require.NoError(f.t, err)
	return n == 1
}

func (f *fixture) ttl(key string) time.Duration {
	f.t.Helper()
	d, err := f.rdb.TTL(f.ctx, key).Result()
	require.NoError(f.t, err)
	return d
}

func (f *fixture) count(kind string) float64 {
	f.t.Helper()
	var m dto.Metric
	require.NoError(f.t, f.m.Reconciled.WithLabelValues("default", kind).Write(&m))
	return m.GetCounter().GetValue()
}

// TestReconcilerRepairs runs, for each divergence the reconciler repairs,
// the operator's action (through asynq's Inspector where asynq's tools
// cause it), one sweep, and checks every key the repair touches, the repair
// reported and wahaq_reconciled_total{instance,kind}; then a second sweep
// (another replica, the next interval) repairs nothing and counts nothing.
func TestReconcilerRepairs(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		kind string
		// setup breaks something and returns the repaired key's name (task
		// id, session, batch id or "") and a check of the state afterwards.
		setup func(f *fixture) (string, func(f *fixture))
	}{
		{"record live, asynq task deleted", store.RepairGone, func(f *fixture) (string, func(*fixture)) {
			bid := f.openBatch()
			id := f.enqueue("s-gone", bid)
			f.closeBatch(bid)
			require.NoError(f.t, f.aq.DeleteTask(f.k.Queue, id)) // asynq task delete
			return id, func(f *fixture) {
				rec := f.record(id)
				require.Equal(f.t, store.StateCanceled, rec[store.FieldState])
				require.Contains(f.t, rec[store.FieldError], "removed from the queue outside wahaq")
				require.NotEmpty(f.t, rec[store.FieldFinished])
				require.Positive(f.t, f.ttl(f.k.Record(id)), "a canceled record expires")
				require.False(f.t, f.exists(f.k.Dedup("s-gone")), "claim released")
				require.False(f.t, f.exists(f.k.AsynqTask(id)))
				b := f.batch(bid)
				require.Equal(f.t, int64(0), b.Counts[store.StatePending])
				require.Equal(f.t, int64(1), b.Counts[store.StateCanceled])
				require.True(f.t, b.Done)
				require.Positive(f.t, f.ttl(f.k.Batch(bid)), "a done batch expires")
			}
		}},
		{"record live, asynq task archived", store.RepairArchived, func(f *fixture) (string, func(*fixture)) {
			bid := f.openBatch()
			id := f.enqueue("s-arch", bid)
			f.closeBatch(bid)
			require.NoError(f.t, f.aq.ArchiveTask(f.k.Queue, id)) // asynq task archive
			return id, func(f *fixture) {
				rec := f.record(id)
				require.Equal(f.t, store.StateDead, rec[store.FieldState])
				require.Equal(f.t, store.OutcomeArchived, rec[store.FieldOutcome])
				require.Contains(f.t, rec[store.FieldError], "archived outside wahaq")
				require.Equal(f.t, time.Duration(-1), f.ttl(f.k.Record(id)), "a dead letter is kept")
				dlq, err := f.st.DeadLetterIDs(f.ctx, "default")
				require.NoError(f.t, err)
				require.Equal(f.t, []string{id}, dlq)
				require.False(f.t, f.exists(f.k.Dedup("s-arch")), "claim released")
				require.True(f.t, f.exists(f.k.AsynqTask(id)), "asynq keeps its archived copy (requeue needs it)")
				b := f.batch(bid)
				require.Equal(f.t, int64(1), b.Counts[store.StateDead])
				require.Equal(f.t, int64(1), b.Outcomes[store.OutcomeArchived])
				require.True(f.t, b.Done)
			}
		}},
		{"batch abandoned by its producer", store.RepairBatch, func(f *fixture) (string, func(*fixture)) {
			bid := f.openBatch()
			a, b2 := f.enqueue("s-b1", bid), f.enqueue("s-b2", bid)
			// the producer is killed here: nobody closes the batch or renews
			// its lease, which ends DefaultBatchLease after the last enqueue
			f.advance(store.DefaultBatchLease + time.Second)
			return bid, func(f *fixture) {
				b := f.batch(bid)
				require.False(f.t, b.Open)
				require.True(f.t, b.Interrupted)
				require.Contains(f.t, b.Error, "interrupted")
				require.Equal(f.t, int64(2), b.Total, "the tasks it really holds")
				require.False(f.t, b.Done, "its tasks are not final yet")
				open, err := f.rdb.ZRange(f.ctx, f.k.OpenBatches(), 0, -1).Result()
				require.NoError(f.t, err)
				require.NotContains(f.t, open, bid, "it left the open batches' lease set")
				for _, id := range []string{a, b2} {
					_, err := f.st.Cancel(f.ctx, []string{"default"}, id, time.Hour)
					require.NoError(f.t, err)
				}
				require.True(f.t, f.batch(bid).Done, "reads done once its tasks are final")
			}
		}},
		{"claim of a missing task", store.RepairClaim, func(f *fixture) (string, func(*fixture)) {
			require.NoError(f.t, f.rdb.Set(f.ctx, f.k.Dedup("s-claim"), base.NewID(), 0).Err())
			return "s-claim", func(f *fixture) {
				require.False(f.t, f.exists(f.k.Dedup("s-claim")))
				id := f.enqueue("s-claim", "") // the session takes logouts again
				require.Equal(f.t, id, f.rdb.Get(f.ctx, f.k.Dedup("s-claim")).Val())
			}
		}},
		{"claim of a completed task", store.RepairClaim, func(f *fixture) (string, func(*fixture)) {
			id := f.enqueue("s-done", "")
			require.NoError(f.t, f.rdb.HSet(f.ctx, f.k.Record(id), store.FieldState, store.StateCompleted).Err())
			require.NoError(f.t, f.rdb.Del(f.ctx, f.k.AsynqTask(id)).Err())
			require.NoError(f.t, f.rdb.LRem(f.ctx, f.k.Pending(), 0, id).Err())
			return "s-done", func(f *fixture) {
				require.False(f.t, f.exists(f.k.Dedup("s-done")))
				require.Equal(f.t, store.StateCompleted, f.record(id)[store.FieldState], "the record is left alone")
			}
		}},
		{"queue removed from asynq's queue set", store.RepairQueue, func(f *fixture) (string, func(*fixture)) {
			id := f.enqueue("s-queue", "")
			require.NoError(f.t, f.rdb.SRem(f.ctx, asynqcompat.AllQueues, f.k.Queue).Err()) // queue rm --force, minus the keys
			return "", func(f *fixture) {
				in, err := f.rdb.SIsMember(f.ctx, asynqcompat.AllQueues, f.k.Queue).Result()
				require.NoError(f.t, err)
				require.True(f.t, in)
				require.Equal(f.t, store.StatePending, f.record(id)[store.FieldState], "its task is untouched")
			}
		}},
	}
	kinds := []string{store.RepairGone, store.RepairArchived, store.RepairBatch, store.RepairClaim, store.RepairQueue,
		store.RepairRevived, store.RepairSuperseded, store.RepairStray}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			name, check := tc.setup(f)
			reps, err := f.rec.Sweep(f.ctx)
			require.NoError(t, err)
			require.Equal(t, []store.Repair{{Kind: tc.kind, Instance: "default", ID: name}}, reps)
			check(f)
			for _, k := range kinds {
				want := 0.0
				if k == tc.kind {
					want = 1
				}
				require.Equal(t, want, f.count(k), "wahaq_reconciled_total{instance=default,kind=%s}", k)
			}

			again, err := f.rec.Sweep(f.ctx)
			require.NoError(t, err)
			require.Empty(t, again, "a second pass repairs nothing")
			require.Equal(t, 1.0, f.count(tc.kind), "and counts nothing")
		})
	}
}

// TestReconcilerLeavesHealthyState: live tasks whose asynq task is where it
// should be, a batch its producer is still filling and a claim of a live
// task are not repairs.
func TestReconcilerLeavesHealthyState(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	bid := f.openBatch()
	id := f.enqueue("s-live", bid)
	res, err := f.st.Enqueue(f.ctx, []store.NewTask{{Instance: "default", Session: "s-later", MaxRetries: 3,
		ProcessAt: f.clock().Add(time.Hour)}})
	require.NoError(t, err)
	reps, err := f.rec.Sweep(f.ctx)
	require.NoError(t, err)
	require.Empty(t, reps)
	require.True(t, f.batch(bid).Open, "its producer's lease has not ended")
	require.Equal(t, id, f.rdb.Get(f.ctx, f.k.Dedup("s-live")).Val())
	require.Equal(t, res[0].ID, f.rdb.Get(f.ctx, f.k.Dedup("s-later")).Val())
	require.Equal(t, store.StateScheduled, f.record(res[0].ID)[store.FieldState])
}

// TestPassCountsUnconfirmedLogouts: a pass counts, once, the logouts of an
// instance with events whose wait for a confirmation is over.
func TestPassCountsUnconfirmedLogouts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := redistest.Client(t)
	ns := redistest.Namespace(t)
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	st := store.New(rdb, store.Options{Namespace: ns})
	k := st.Keys("default")
	require.NoError(t, rdb.ZAdd(ctx, k.Awaiting(), redis.Z{Score: float64(now.Add(-time.Second).UnixMilli()), Member: "over"},
		redis.Z{Score: float64(now.Add(time.Minute).UnixMilli()), Member: "waiting"}).Err())
	rec, err := reconcile.New(reconcile.Config{Redis: rdb, Namespace: ns, Instances: []string{"default"}, AwaitEvents: []string{"default"},
		Now: func() time.Time { return now }})
	require.NoError(t, err)
	for range 2 {
		_, _, err = rec.Pass(ctx)
		require.NoError(t, err)
	}
	counts, err := st.Confirmations(ctx, []string{"default"})
	require.NoError(t, err)
	require.Equal(t, store.ConfirmCounts{Unconfirmed: 1}, counts["default"])
	require.Equal(t, []string{"waiting"}, rdb.ZRange(ctx, k.Awaiting(), 0, -1).Val())
}
