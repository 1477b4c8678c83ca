package store_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/asynqcompat"
	"github.com/wahaq/wahaq/internal/base"
	"github.com/wahaq/wahaq/internal/redistest"
	"github.com/wahaq/wahaq/internal/store"
)

// fixture is one test's store on the shared Redis, in a namespace of its
// own, with a clock the test sets.
type fixture struct {
	t   *testing.T
	ctx context.Context
	rdb *redis.Client
	st  *store.Store
	k   store.Keys
	ns  string
	now time.Time
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{t: t, ctx: context.Background(), rdb: redistest.Client(t),
		now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	ns := redistest.Namespace(t)
	f.ns = ns
	f.st = store.New(f.rdb, store.Options{Namespace: ns, Now: func() time.Time { return f.now }})
	f.k = f.st.Keys("default")
	return f
}

// hash returns a whole hash ({} when it does not exist).
func (f *fixture) hash(key string) map[string]string {
	f.t.Helper()
	m, err := f.rdb.HGetAll(f.ctx, key).Result()
	require.NoError(f.t, err)
	return m
}

func (f *fixture) get(key string) string {
	f.t.Helper()
	v, err := f.rdb.Get(f.ctx, key).Result()
	if err == redis.Nil {
		return ""
	}
	require.NoError(f.t, err)
	return v
}

func (f *fixture) zmembers(key string) []string {
	f.t.Helper()
	v, err := f.rdb.ZRange(f.ctx, key, 0, -1).Result()
	require.NoError(f.t, err)
	return v
}

func (f *fixture) list(key string) []string {
	f.t.Helper()
	v, err := f.rdb.LRange(f.ctx, key, 0, -1).Result()
	require.NoError(f.t, err)
	return v
}

func (f *fixture) ttl(key string) time.Duration {
	f.t.Helper()
	d, err := f.rdb.TTL(f.ctx, key).Result()
	require.NoError(f.t, err)
	return d
}

func (f *fixture) exists(key string) bool {
	f.t.Helper()
	n, err := f.rdb.Exists(f.ctx, key).Result()
	require.NoError(f.t, err)
	return n == 1
}

// enqueue creates one task of session (in batch bid, if any) and returns its
// payload and id.
func (f *fixture) enqueue(session, bid string) (base.Payload, string) {
	f.t.Helper()
	res, err := f.st.Enqueue(f.ctx, []store.NewTask{{Instance: "default", Session: session, BatchID: bid, MaxRetries: 3}})
	require.NoError(f.t, err)
	require.False(f.t, res[0].Deduplicated)
	return base.Payload{Instance: "default", Session: session, BatchID: bid, MaxRetries: 3}, res[0].ID
}

// batch creates a closed batch with sessions and returns its id and the
// tasks' ids in order.
func (f *fixture) batch(sessions ...string) (string, []string) {
	f.t.Helper()
	bid := base.NewID()
	require.NoError(f.t, f.st.CreateBatch(f.ctx, "default", bid, time.Time{}, false))
	ts := make([]store.NewTask, len(sessions))
	for i, s := range sessions {
		ts[i] = store.NewTask{Instance: "default", Session: s, BatchID: bid, MaxRetries: 3}
	}
	res, err := f.st.Enqueue(f.ctx, ts)
	require.NoError(f.t, err)
	require.NoError(f.t, f.st.CloseBatch(f.ctx, "default", bid, 0, "", time.Hour))
	ids := make([]string, len(res))
	for i, r := range res {
		ids[i] = r.ID
	}
	return bid, ids
}

// start runs the start script without a cap.
func (f *fixture) start(id string, p base.Payload) {
	f.t.Helper()
	ok, err := f.st.Start(f.ctx, id, p, 1, 0, time.Minute)
	require.NoError(f.t, err)
	require.True(f.t, ok)
}

// kill starts and finishes a task as dead with outcome o, and has asynq
// archive it the way asynq does once the handler returns.
func (f *fixture) kill(id string, p base.Payload, o string) {
	f.t.Helper()
	f.start(id, p)
	require.NoError(f.t, f.st.Finish(f.ctx, id, p, store.Finish{State: store.StateDead, Outcome: o, LastError: "401", ResultTTL: time.Hour}))
	f.asynqState(id, asynqcompat.StateArchived)
	require.NoError(f.t, f.rdb.LRem(f.ctx, f.k.Pending(), 0, id).Err())
	require.NoError(f.t, f.rdb.ZAdd(f.ctx, f.k.Archived(), redis.Z{Score: 1, Member: id}).Err())
}

// asynqState sets the state asynq's task hash holds.
func (f *fixture) asynqState(id, state string) {
	f.t.Helper()
	require.NoError(f.t, f.rdb.HSet(f.ctx, f.k.AsynqTask(id), asynqcompat.FieldState, state).Err())
}

// ms is t as the records store it.
func ms(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }

func (f *fixture) pttl(key string) time.Duration {
	f.t.Helper()
	d, err := f.rdb.PTTL(f.ctx, key).Result()
	require.NoError(f.t, err)
	return d
}

// enqueueIn creates one task per session in the open batch bid.
func (f *fixture) enqueueIn(bid string, sessions ...string) {
	f.t.Helper()
	ts := make([]store.NewTask, len(sessions))
	for i, s := range sessions {
		ts[i] = store.NewTask{Instance: "default", Session: s, BatchID: bid, MaxRetries: 3}
	}
	_, err := f.st.Enqueue(f.ctx, ts)
	require.NoError(f.t, err)
}
