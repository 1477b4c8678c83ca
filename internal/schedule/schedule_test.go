package schedule

import (
	"context"
	"encoding/json"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/base"
	"github.com/wahaq/wahaq/internal/config"
	"github.com/wahaq/wahaq/internal/redistest"
	"github.com/wahaq/wahaq/internal/store"
	"github.com/wahaq/wahaq/tasks"
)

// schedules parses a small instances file, so Spec and Location are set as
// in production.
func schedules(t *testing.T, yaml string) []config.Schedule {
	t.Helper()
	f, err := config.ParseFile([]byte(yaml), func(string) string { return "" })
	require.NoError(t, err)
	require.NotEmpty(t, f.Schedules)
	return f.Schedules
}

// replicas returns n Runners, each with its own Redis client and Producer,
// sharing one namespace: n wahaq replicas.
func replicas(t *testing.T, ns string, n int, scs []config.Schedule) []*Runner {
	t.Helper()
	out := make([]*Runner, n)
	for i := range out {
		rdb := redistest.Client(t)
		p, err := tasks.NewProducer(tasks.Config{Redis: rdb, Namespace: ns})
		require.NoError(t, err)
		out[i] = New(p, store.New(rdb, store.Options{Namespace: ns}), scs, zerolog.Nop(), nil)
	}
	return out
}

// checkAll runs Check on every runner at once, each with its own window, and
// returns how many each enqueued.
func checkAll(ctx context.Context, rs []*Runner, window func(i int) (from, to time.Time)) []int {
	got := make([]int, len(rs))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, r := range rs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			from, to := window(i)
			<-start
			got[i] = r.Check(ctx, from, to)
		}()
	}
	close(start)
	wg.Wait()
	return got
}

func sum(ns []int) int {
	n := 0
	for _, x := range ns {
		n += x
	}
	return n
}

func scanKeys(t *testing.T, rdb *redis.Client, pattern string) []string {
	t.Helper()
	var keys []string
	iter := rdb.Scan(context.Background(), 0, pattern, 1000).Iterator()
	for iter.Next(context.Background()) {
		keys = append(keys, iter.Val())
	}
	require.NoError(t, iter.Err())
	sort.Strings(keys)
	return keys
}

// batchKeys lists the batch hashes (not their task lists, b:<id>:ids).
func batchKeys(t *testing.T, rdb *redis.Client, ns string) []string {
	var out []string
	for _, k := range scanKeys(t, rdb, store.KeysFor(ns, "default").Batch("*")) {
		if !strings.HasSuffix(k, ":ids") {
			out = append(out, k)
		}
	}
	return out
}

func pendingDiscoveries(t *testing.T, rdb *redis.Client, ns string) []*asynq.TaskInfo {
	t.Helper()
	insp := asynq.NewInspectorFromRedisClient(rdb)
	info, err := insp.GetQueueInfo(ns + ":default")
	require.NoError(t, err)
	list, err := insp.ListPendingTasks(ns+":default", asynq.PageSize(1000))
	require.NoError(t, err)
	require.Len(t, list, info.Pending)
	for _, ti := range list {
		require.Equal(t, tasks.TypeDiscover, ti.Type)
	}
	return list
}

var t0 = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// TestThreeReplicasEachTickOnce is the requirement: three replicas
// over several ticks, each tick enqueued exactly once.
func TestThreeReplicasEachTickOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := redistest.Client(t)
	ns := redistest.Namespace(t)
	rs := replicas(t, ns, 3, schedules(t, `
schedules:
  - name: every-minute
    cron: "* * * * *"
    status: [working]
`))

	const ticks = 10
	total := 0
	for m := range ticks {
		from, to := t0.Add(time.Duration(m)*time.Minute), t0.Add(time.Duration(m+1)*time.Minute)
		got := checkAll(ctx, rs, func(int) (time.Time, time.Time) { return from, to })
		require.Equal(t, 1, sum(got), "tick %s enqueued by %v", to, got)
		total += sum(got)
	}
	require.Equal(t, ticks, total)

	// Replicas that check the same windows again (a restart, a slow clock)
	// enqueue nothing more.
	got := checkAll(ctx, rs, func(int) (time.Time, time.Time) { return t0, t0.Add(ticks * time.Minute) })
	require.Equal(t, 0, sum(got))

	// Redis holds exactly one batch, one discovery task and one claim per tick.
	require.Len(t, batchKeys(t, rdb, ns), ticks)
	require.Len(t, scanKeys(t, rdb, store.KeysFor(ns, "default").Prefix()+"cron:every-minute:*"), ticks)
	pending := pendingDiscoveries(t, rdb, ns)
	require.Len(t, pending, ticks)
	batches := map[string]bool{}
	for _, ti := range pending {
		var p base.DiscoverPayload
		require.NoError(t, json.Unmarshal(ti.Payload, &p))
		require.Equal(t, "default", p.Instance)
		require.Equal(t, []string{"WORKING"}, p.Statuses)
		require.Equal(t, ti.ID, p.BatchID)
		batches[p.BatchID] = true
	}
	require.Len(t, batches, ticks, "every tick has its own batch")
	for _, k := range batchKeys(t, rdb, ns) {
		require.True(t, batches[k[len(store.KeysFor(ns, "default").Batch("")):]], "batch key %s has a discovery task", k)
	}
}

// TestReplicasWithSkewedWindows: replicas do not check in step; their
// (from, to] windows overlap arbitrarily. Still each tick once.
func TestReplicasWithSkewedWindows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := redistest.Client(t)
	ns := redistest.Namespace(t)
	rs := replicas(t, ns, 3, schedules(t, `
schedules:
  - name: every-minute
    cron: "* * * * *"
`))
	// Replica i checks 45 s windows shifted by i*20 s, over about 11 minutes.
	total := 0
	for step := 0; step < 14; step++ {
		got := checkAll(ctx, rs, func(i int) (time.Time, time.Time) {
			from := t0.Add(time.Duration(i)*20*time.Second + time.Duration(step)*45*time.Second)
			return from, from.Add(45 * time.Second)
		})
		total += sum(got)
	}
	// Together the windows cover (t0, t0+11m10s]: the ticks 00:01 to 00:11.
	require.Equal(t, 11, total)
	require.Len(t, batchKeys(t, rdb, ns), 11)
	require.Len(t, pendingDiscoveries(t, rdb, ns), 11)
}

// TestEveryFiresWhenCheckedEachSecond: Run checks (last, now] about once a
// second. An "@every" schedule must still fire, once, whichever replica
// checks.
func TestEveryFiresWhenCheckedEachSecond(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := redistest.Client(t)
	ns := redistest.Namespace(t)
	rs := replicas(t, ns, 3, schedules(t, `
schedules:
  - name: every-ten-seconds
    cron: "@every 10s"
`))
	total := 0
	// 60 one-second windows starting at a fraction of a second, as a real
	// ticker's would, each replica a little behind the one before.
	base := t0.Add(300 * time.Millisecond)
	for s := range 60 {
		got := checkAll(ctx, rs, func(i int) (time.Time, time.Time) {
			from := base.Add(time.Duration(s)*time.Second + time.Duration(i)*100*time.Millisecond)
			return from, from.Add(time.Second)
		})
		total += sum(got)
	}
	require.Equal(t, 6, total, "one tick every 10 s over 60 s")
	require.Len(t, batchKeys(t, rdb, ns), 6)
}

func TestSessionsSchedule(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := redistest.Client(t)
	ns := redistest.Namespace(t)
	rs := replicas(t, ns, 3, schedules(t, `
schedules:
  - name: bots
    cron: "*/5 * * * *"
    sessions: [bot-1, bot_2, bot-3]
`))
	got := checkAll(ctx, rs, func(int) (time.Time, time.Time) { return t0.Add(time.Minute), t0.Add(6 * time.Minute) })
	require.Equal(t, 1, sum(got), "one tick (00:05) in the window: %v", got)

	keys := batchKeys(t, rdb, ns)
	require.Len(t, keys, 1)
	batchID := keys[0][len(store.KeysFor(ns, "default").Batch("")):]
	insp, err := tasks.NewInspector(tasks.Config{Redis: rdb, Namespace: ns})
	require.NoError(t, err)
	b, err := insp.Batch(ctx, batchID)
	require.NoError(t, err)
	require.EqualValues(t, 3, b.Total)
	require.EqualValues(t, 3, b.Counts[tasks.StatePending])
	require.False(t, b.Discovering)
	require.False(t, b.Done)

	// The batch holds exactly the listed sessions, as logout tasks.
	var sessions []string
	for _, k := range scanKeys(t, rdb, store.KeysFor(ns, "default").Record("*")) {
		task, err := insp.Task(ctx, k[len(store.KeysFor(ns, "default").Record("")):])
		require.NoError(t, err)
		require.NotNil(t, task.BatchID)
		require.Equal(t, batchID, *task.BatchID)
		require.Equal(t, "default", task.Instance)
		sessions = append(sessions, task.Session)
	}
	sort.Strings(sessions)
	require.Equal(t, []string{"bot-1", "bot-3", "bot_2"}, sessions)

	info, err := asynq.NewInspectorFromRedisClient(rdb).GetQueueInfo(ns + ":default")
	require.NoError(t, err)
	require.Equal(t, 3, info.Pending, "three logouts, no discovery task")
}

func TestFailedClaimEnqueuesNothing(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	ns := redistest.Namespace(t)
	rs := replicas(t, ns, 1, schedules(t, `
schedules:
  - name: every-minute
    cron: "* * * * *"
`))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.Equal(t, 0, rs[0].Check(ctx, t0, t0.Add(3*time.Minute)))
	require.Empty(t, scanKeys(t, rdb, store.KeysFor(ns, "default").Prefix()+"*"), "no claim, no batch")
	require.Zero(t, rdb.Exists(context.Background(), store.KeysFor(ns, "default").Pending()).Val())

	// The ticks were not claimed, so a working replica still enqueues them.
	require.Equal(t, 3, rs[0].Check(context.Background(), t0, t0.Add(3*time.Minute)))
	require.Len(t, batchKeys(t, rdb, ns), 3)
}

func TestTimezone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := redistest.Client(t)
	ns := redistest.Namespace(t)
	rs := replicas(t, ns, 1, schedules(t, `
schedules:
  - name: berlin-nine
    cron: "0 9 * * *"
    timezone: Europe/Berlin
`))
	day := time.Date(2030, 1, 15, 0, 0, 0, 0, time.UTC)
	// 09:00 in Berlin is 08:00 UTC in January, not 09:00 UTC.
	require.Equal(t, 0, rs[0].Check(ctx, day.Add(8*time.Hour+30*time.Minute), day.Add(9*time.Hour+30*time.Minute)))
	require.Equal(t, 1, rs[0].Check(ctx, day.Add(7*time.Hour+30*time.Minute), day.Add(8*time.Hour+30*time.Minute)))
	require.Len(t, batchKeys(t, rdb, ns), 1)
}

// TestNeverDueSchedule: a cron that never fires (30 February) must make Check
// return, enqueueing nothing.
func TestNeverDueSchedule(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	ns := redistest.Namespace(t)
	rs := replicas(t, ns, 1, schedules(t, `
schedules:
  - name: never
    cron: "0 0 30 2 *"
`))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan int, 1)
	go func() { done <- rs[0].Check(ctx, t0, t0.Add(24*time.Hour)) }()
	select {
	case n := <-done:
		require.Equal(t, 0, n)
	case <-time.After(5 * time.Second):
		t.Fatal("Check did not return for a schedule that never fires")
	}
	require.Empty(t, batchKeys(t, rdb, ns))
}

func TestRunStopsWithContext(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	ns := redistest.Namespace(t)
	scs := schedules(t, `
schedules:
  - name: every-second
    cron: "@every 1s"
`)
	p, err := tasks.NewProducer(tasks.Config{Redis: rdb, Namespace: ns})
	require.NoError(t, err)
	claims := store.New(rdb, store.Options{Namespace: ns})
	r := New(p, claims, scs, zerolog.Nop(), nil)
	r.Interval = 50 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	require.Eventually(t, func() bool { return len(batchKeys(t, rdb, ns)) >= 1 }, 5*time.Second, 50*time.Millisecond)
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not stop")
	}

	// No schedules: Run returns at once.
	empty := New(p, claims, nil, zerolog.Nop(), nil)
	returned := make(chan struct{})
	go func() { empty.Run(context.Background()); close(returned) }()
	select {
	case <-returned:
	case <-time.After(time.Second):
		t.Fatal("Run without schedules did not return")
	}
}
