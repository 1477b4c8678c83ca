package asynqcompat_test

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/asynqcompat"
	"github.com/wahaq/wahaq/internal/base"
	"github.com/wahaq/wahaq/internal/redistest"
	"github.com/wahaq/wahaq/internal/store"
)

// The conformance suite, in the manner of River's driver tests: for each of
// asynq's operations that wahaq replaces with its own scripts, it runs
// asynq's operation (its real Client, or the source of its script as asynq
// runs it, kept in scripts.go) in one namespace and wahaq's replacement in
// a twin namespace of the same Redis, from the same state, and compares
// every key asynq owns in the two: type, value, every hash field, expiry.
// An asynq upgrade is checked by changing this package and running this
// suite; a replacement that drifts from asynq's operation fails it.

// twinSide is one of the two namespaces.
type twinSide struct {
	ns, q string
	st    *store.Store
	k     store.Keys
}

// twin is a pair of namespaces that start in the same state.
type twin struct {
	rdb *redis.Client
	// now is both stores' clock, and the time asynq's scripts are given.
	now       time.Time
	asynq     twinSide // where asynq's own operation runs
	wahaq     twinSide // where wahaq's replacement runs
	id        string   // the task both sides hold, by the same id
	session   string
	leaseEnd  time.Time
	asynqTask *asynq.TaskInfo // set by ops that enqueue with asynq's Client
}

const instance = "default"

func newTwin(t *testing.T) *twin {
	t.Helper()
	rdb := redistest.Client(t)
	now := time.Now().Truncate(time.Second)
	side := func() twinSide {
		ns := redistest.Namespace(t)
		st := store.New(rdb, store.Options{Namespace: ns, Now: func() time.Time { return now }})
		return twinSide{ns: ns, q: st.Keys(instance).Queue, st: st, k: st.Keys(instance)}
	}
	return &twin{rdb: rdb, now: now, asynq: side(), wahaq: side(), id: base.NewID(), session: "s1", leaseEnd: now.Add(30 * time.Second)}
}

// both runs f on each side.
func (tw *twin) both(t *testing.T, f func(s twinSide)) {
	t.Helper()
	f(tw.asynq)
	f(tw.wahaq)
}

// enqueue is wahaq's enqueue of the twin's task on side s, at at (zero:
// now).
func (tw *twin) enqueue(t *testing.T, s twinSide, at time.Time) store.Enqueued {
	t.Helper()
	res, err := s.st.Enqueue(context.Background(), []store.NewTask{{ID: tw.id, Instance: instance, Session: tw.session,
		MaxRetries: 3, Timeout: time.Minute, ProcessAt: at}})
	require.NoError(t, err)
	return res[0]
}

// asynqDequeue runs asynq's dequeue script on side s as asynq's RDB.Dequeue
// does, and returns its reply.
func (tw *twin) asynqDequeue(t *testing.T, s twinSide) string {
	t.Helper()
	msg, err := tw.rdb.Eval(context.Background(), asynqcompat.DequeueScript,
		[]string{s.k.Pending(), s.k.Paused(), asynqcompat.ActiveKey(s.q), asynqcompat.LeaseKey(s.q)},
		tw.leaseEnd.Unix(), s.k.AsynqTaskPrefix()).Text()
	require.NoError(t, err)
	return msg
}

// take is wahaq's take of one task on side s.
func (tw *twin) take(t *testing.T, s twinSide) store.Taken {
	t.Helper()
	ts, err := s.st.TakeN(context.Background(), instance, tw.leaseEnd, 0, 10*time.Second, 1)
	require.NoError(t, err)
	require.Len(t, ts, 1, "wahaq's take took the task")
	return ts[0]
}

// payload is the twin's task's payload, as enqueue wrote it.
func (tw *twin) payload() base.Payload {
	return base.Payload{Instance: instance, Session: tw.session, MaxRetries: 3}
}

// conformance is one of asynq's operations and wahaq's replacement of it.
type conformance struct {
	name string
	// setup brings both sides to the same state.
	setup func(t *testing.T, tw *twin)
	// wahaq runs wahaq's replacement on tw.wahaq; it runs first.
	wahaq func(t *testing.T, tw *twin)
	// asynq runs asynq's own operation on tw.asynq.
	asynq func(t *testing.T, tw *twin)
	// differs are the hash fields ("key suffix field") wahaq writes on
	// purpose where asynq's operation does not, and why; the suite checks
	// that wahaq writes them and compares the rest.
	differs map[string]string
}

var conformances = []conformance{
	{
		name: "Client.Enqueue vs enqueue, now",
		wahaq: func(t *testing.T, tw *twin) {
			require.False(t, tw.enqueue(t, tw.wahaq, time.Time{}).Deduplicated)
		},
		asynq: func(t *testing.T, tw *twin) {
			tw.asynqEnqueue(t)
		},
	},
	{
		name: "Client.Enqueue vs enqueue, later",
		wahaq: func(t *testing.T, tw *twin) {
			// a whole second: wahaq rounds a scheduled time up to one
			// (asynq's scores are whole seconds; a task never runs early)
			require.False(t, tw.enqueue(t, tw.wahaq, tw.now.Add(time.Hour)).Deduplicated)
		},
		asynq: func(t *testing.T, tw *twin) {
			tw.asynqEnqueue(t, asynq.ProcessAt(tw.now.Add(time.Hour)))
		},
	},
	{
		name: "dequeue vs take",
		setup: func(t *testing.T, tw *twin) {
			tw.both(t, func(s twinSide) { tw.enqueue(t, s, time.Time{}) })
		},
		wahaq: func(t *testing.T, tw *twin) {
			got := tw.take(t, tw.wahaq)
			require.True(t, got.Started, "the take started the task")
			require.Equal(t, tw.id, got.ID)
			// the reply asynq gets is the message its dequeue returns
			msg := tw.rdb.HGet(context.Background(), tw.wahaq.k.AsynqTask(tw.id), asynqcompat.FieldMsg).Val()
			require.Equal(t, msg, got.Message)
		},
		asynq: func(t *testing.T, tw *twin) {
			msg := tw.asynqDequeue(t, tw.asynq)
			require.NotEmpty(t, msg)
		},
	},
	{
		name: "done vs finish's settle",
		setup: func(t *testing.T, tw *twin) {
			tw.both(t, func(s twinSide) {
				tw.enqueue(t, s, time.Time{})
				tw.asynqDequeue(t, s)
			})
		},
		wahaq: func(t *testing.T, tw *twin) {
			settled, err := tw.wahaq.st.FinishSettled(context.Background(), tw.id, tw.payload(),
				store.Finish{State: store.StateCompleted, Outcome: "logged_out", ResultTTL: time.Hour, Settle: true})
			require.NoError(t, err)
			require.True(t, settled, "the finish did asynq's done")
		},
		asynq: func(t *testing.T, tw *twin) {
			s := tw.asynq
			// as asynq's RDB.Done runs it
			require.NoError(t, tw.rdb.Eval(context.Background(), asynqcompat.DoneScript,
				[]string{asynqcompat.ActiveKey(s.q), asynqcompat.LeaseKey(s.q), s.k.AsynqTask(tw.id),
					asynqcompat.ProcessedKey(s.q, tw.now), asynqcompat.ProcessedTotalKey(s.q)},
				tw.id, tw.now.Add(asynqcompat.StatsTTL).Unix(), int64(math.MaxInt64)).Err())
		},
	},
	{
		name: "requeue vs give-back",
		setup: func(t *testing.T, tw *twin) {
			tw.both(t, func(s twinSide) { tw.enqueue(t, s, time.Time{}) })
		},
		wahaq: func(t *testing.T, tw *twin) {
			taken := tw.take(t, tw.wahaq)
			n, err := tw.wahaq.st.GiveBack(context.Background(), instance, []store.Taken{taken})
			require.NoError(t, err)
			require.Equal(t, 1, n, "given back")
		},
		asynq: func(t *testing.T, tw *twin) {
			s := tw.asynq
			tw.asynqDequeue(t, s)
			// as asynq's server hands an active task back at a shutdown
			// (RDB.Requeue)
			require.NoError(t, tw.rdb.Eval(context.Background(), asynqcompat.RequeueScript,
				[]string{asynqcompat.ActiveKey(s.q), asynqcompat.LeaseKey(s.q), s.k.Pending(), s.k.AsynqTask(tw.id)}, tw.id).Err())
		},
		differs: map[string]string{
			"t:<id> " + asynqcompat.FieldPendingSince: "wahaq stamps the task given back as waiting since now, as asynq's forwarder does, so asynq's queue latency counts it; asynq's requeue leaves it unset, which its latency reads as no wait",
		},
	},
	{
		name: "forwarder vs enqueue pulling a scheduled task forward",
		setup: func(t *testing.T, tw *twin) {
			tw.both(t, func(s twinSide) { tw.enqueue(t, s, tw.now.Add(time.Hour)) })
		},
		wahaq: func(t *testing.T, tw *twin) {
			// the same session asked for now: the scheduled task runs now
			res := tw.enqueue(t, tw.wahaq, time.Time{})
			require.True(t, res.Deduplicated)
			require.Equal(t, tw.id, res.ID)
		},
		asynq: func(t *testing.T, tw *twin) {
			s := tw.asynq
			// asynq's forwarder once the task is due (RDB.forward)
			n, err := tw.rdb.Eval(context.Background(), asynqcompat.ForwardScript, []string{s.k.Scheduled(), s.k.Pending()},
				tw.now.Add(2*time.Hour).Unix(), s.k.AsynqTaskPrefix(), tw.now.UnixNano(), asynqcompat.QueuePrefix(s.q)+"g:").Int()
			require.NoError(t, err)
			require.Equal(t, 1, n, "forwarded")
		},
	},
}

// asynqEnqueue enqueues the twin's task on the asynq side with asynq's
// Client, with the type, payload, retry limit and timeout wahaq wrote on
// its side (read back through asynq's Inspector).
func (tw *twin) asynqEnqueue(t *testing.T, opts ...asynq.Option) {
	t.Helper()
	w, err := asynq.NewInspectorFromRedisClient(tw.rdb).GetTaskInfo(tw.wahaq.q, tw.id)
	require.NoError(t, err)
	opts = append([]asynq.Option{asynq.Queue(tw.asynq.q), asynq.TaskID(tw.id), asynq.MaxRetry(w.MaxRetry), asynq.Timeout(w.Timeout)}, opts...)
	info, err := asynq.NewClientFromRedisClient(tw.rdb).Enqueue(asynq.NewTask(w.Type, w.Payload), opts...)
	require.NoError(t, err)
	tw.asynqTask = info
}

func TestConformance(t *testing.T) {
	t.Parallel()
	for _, c := range conformances {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			tw := newTwin(t)
			if c.setup != nil {
				c.setup(t, tw)
			}
			require.Equal(t, asynqKeys(t, tw, tw.asynq), asynqKeys(t, tw, tw.wahaq), "the twins start alike")
			c.wahaq(t, tw)
			c.asynq(t, tw)
			got, want := asynqKeys(t, tw, tw.wahaq), asynqKeys(t, tw, tw.asynq)
			for field, why := range c.differs {
				key, f, _ := strings.Cut(field, " ")
				require.Contains(t, got[key], "\n"+f+"=", "wahaq writes %s: %s", field, why)
				got[key] = dropField(got[key], f)
				want[key] = dropField(want[key], f)
			}
			require.Equal(t, want, got, "asynq's keys after asynq's operation (expected) and wahaq's (actual)")
		})
	}
}

// asynqKeys reads every key asynq owns of side s's queue, and the queue's
// membership of asynq's queue set, in a form the two sides share: the
// queue name is Q, the task id <id>, a pending_since near the twin's clock
// <now>; each value says its type, its content and its expiry (absolute,
// so the moment of reading does not matter).
func asynqKeys(t *testing.T, tw *twin, s twinSide) map[string]string {
	t.Helper()
	ctx := context.Background()
	norm := func(v string) string {
		v = strings.ReplaceAll(v, s.q, "Q")
		return strings.ReplaceAll(v, tw.id, "<id>")
	}
	out := map[string]string{}
	member, err := tw.rdb.SIsMember(ctx, asynqcompat.AllQueues, s.q).Result()
	require.NoError(t, err)
	out[asynqcompat.AllQueues] = fmt.Sprint("member ", member)
	keys, err := tw.rdb.Keys(ctx, asynqcompat.QueuePrefix(s.q)+"*").Result()
	require.NoError(t, err)
	for _, key := range keys {
		typ, err := tw.rdb.Type(ctx, key).Result()
		require.NoError(t, err)
		var b strings.Builder
		b.WriteString(typ)
		switch typ {
		case "string":
			fmt.Fprintf(&b, "\n%s", tw.rdb.Get(ctx, key).Val())
		case "list":
			for _, v := range tw.rdb.LRange(ctx, key, 0, -1).Val() {
				fmt.Fprintf(&b, "\n%s", v)
			}
		case "zset":
			for _, z := range tw.rdb.ZRangeWithScores(ctx, key, 0, -1).Val() {
				fmt.Fprintf(&b, "\n%v %s", z.Member, strconv.FormatFloat(z.Score, 'f', -1, 64))
			}
		case "hash":
			h := tw.rdb.HGetAll(ctx, key).Val()
			fields := make([]string, 0, len(h))
			for f := range h {
				fields = append(fields, f)
			}
			slices.Sort(fields)
			for _, f := range fields {
				v := h[f]
				if f == asynqcompat.FieldPendingSince {
					v = tw.timestamp(v)
				}
				fmt.Fprintf(&b, "\n%s=%q", f, v)
			}
		default:
			t.Fatalf("asynq key %s of type %s", key, typ)
		}
		exp, err := tw.rdb.Do(ctx, "EXPIRETIME", key).Int64()
		require.NoError(t, err)
		fmt.Fprintf(&b, "\nexpires %d", exp)
		out[norm(strings.TrimPrefix(key, asynqcompat.QueuePrefix(s.q)))] = norm(b.String())
	}
	return out
}

// timestamp writes v, a time in Unix ns, as <now> when it is within a
// minute of the twin's clock (asynq's Client reads the real clock, wahaq's
// store the twin's): the suite compares what is written, not when. Every
// other time the two sides are given is the same.
func (tw *twin) timestamp(v string) string {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return v
	}
	if d := time.Unix(0, n).Sub(tw.now); d > -time.Minute && d < time.Minute {
		return "<now>"
	}
	return v
}

// dropField removes hash field f from a value asynqKeys wrote.
func dropField(v, f string) string {
	lines := strings.Split(v, "\n")
	return strings.Join(slices.DeleteFunc(lines, func(l string) bool { return strings.HasPrefix(l, f+"=") }), "\n")
}
