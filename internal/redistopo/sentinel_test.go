package redistopo

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/config"
	"github.com/wahaq/wahaq/internal/store"
	"github.com/wahaq/wahaq/tasks"
	"github.com/wahaq/wahaq/wahaclient/wahafake"
	"github.com/wahaq/wahaq/worker"
)

// TestSentinelFailover runs a 600-session teardown through
// REDIS_URL=redis-sentinel://s1,s2,s3/mymaster, kills the master with
// SIGKILL a third of the way in (no clean shutdown, so writes not yet
// replicated are lost), and accounts for every task: completed, dead,
// retried, lost, and WAHA called twice. A trickle of single enqueues runs
// across the failover to measure acknowledged writes that vanish.
//
// It fails only if wahaq does not recover (no progress on the promoted
// replica, a task dead-lettered by the failover, tasks enqueued after the
// failover not completing); losses are measured and reported, because
// asynchronous replication allows them.
func TestSentinelFailover(t *testing.T) {
	st := StartSentinelTopology(t)
	u, err := config.NewRedis(st.URL(), nil)
	require.NoError(t, err)
	rdb := u.(*redis.Client)
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	require.NoError(t, rdb.Ping(ctx).Err())
	addr, err := st.MasterAddr(ctx)
	require.NoError(t, err)
	require.Equal(t, st.Master.Addr, addr)

	ns := namespace()
	q := ns + ":default"
	fake := wahafake.NewT(t, wahafake.Options{LogoutLatency: 20 * time.Millisecond})
	batchSessions := fake.AddSessions("s", 600, wahafake.StatusWorking)
	trickleSessions := fake.AddSessions("t", 2000, wahafake.StatusWorking)
	cfg := tasks.Config{Redis: rdb, Namespace: ns}
	prod, err := tasks.NewProducer(cfg)
	require.NoError(t, err)
	insp, err := tasks.NewInspector(cfg)
	require.NoError(t, err)
	aq := asynq.NewInspectorFromRedisClient(rdb)

	b, err := prod.EnqueueBatch(ctx, tasks.BatchRequest{Sessions: batchSessions})
	require.NoError(t, err)
	require.EqualValues(t, 600, b.Total)
	batchIDs := batchTaskIDs(t, rdb, ns, b.BatchID, 600)

	w, err := worker.New(worker.Config{
		Redis: rdb, Namespace: ns,
		Instances:   []worker.Instance{{Name: "default", BaseURL: fake.URL(), Concurrency: 8}},
		Concurrency: 16, RetryBase: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond,
		ShutdownGrace: 2 * time.Second,
	})
	require.NoError(t, err)
	require.NoError(t, w.Start())
	t.Cleanup(w.Shutdown)

	// The trickle: one enqueue every 5 ms until told to stop, each
	// acknowledged id kept with its time.
	type acked struct {
		id string
		at time.Time
	}
	var (
		tmu     sync.Mutex
		trickle []acked
		tfail   int
	)
	stopTrickle := make(chan struct{})
	trickleDone := make(chan struct{})
	go func() {
		defer close(trickleDone)
		for _, s := range trickleSessions {
			select {
			case <-stopTrickle:
				return
			case <-time.After(5 * time.Millisecond):
			}
			c, cancel := context.WithTimeout(ctx, 2*time.Second)
			task, err := prod.Enqueue(c, tasks.LogoutRequest{Session: s})
			cancel()
			tmu.Lock()
			if err == nil {
				trickle = append(trickle, acked{task.ID, time.Now()})
			} else {
				tfail++
			}
			tmu.Unlock()
		}
	}()
	t.Cleanup(func() {
		select {
		case <-stopTrickle:
		default:
			close(stopTrickle)
		}
		<-trickleDone
	})

	// Kill the master a third of the way through the batch.
	require.Eventually(t, func() bool { return fake.TotalLogoutCalls() >= 200 }, wait, 5*time.Millisecond,
		"the batch never got going")
	callsAtKill := fake.TotalLogoutCalls()
	killed := time.Now()
	st.Master.Kill()

	// Failover time as Sentinel sees it, and as wahaq's client sees it.
	var promoted, writable time.Duration
	deadline := killed.Add(30 * time.Second)
	for time.Now().Before(deadline) && (promoted == 0 || writable == 0) {
		if promoted == 0 {
			if a, err := st.MasterAddr(ctx); err == nil && a == st.Replica.Addr {
				promoted = time.Since(killed)
			}
		}
		if writable == 0 {
			c, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
			if rdb.Set(c, "{"+q+"}:probe", "1", time.Minute).Err() == nil && promoted != 0 {
				writable = time.Since(killed)
			}
			cancel()
		}
		time.Sleep(20 * time.Millisecond)
	}
	require.NotZero(t, promoted, "Sentinel never promoted the replica\n%s", st.Sentinels[0].Log())
	require.NotZero(t, writable, "wahaq's client never wrote to the new master")
	// Keep the trickle going a moment on the new master, then stop it.
	time.Sleep(time.Second)
	close(stopTrickle)
	<-trickleDone
	recovered := killed.Add(writable)

	tmu.Lock()
	all := append([]string(nil), batchIDs...)
	var trickleBefore, trickleAfter []string // acknowledged before the kill / after the client could write again
	for _, a := range trickle {
		all = append(all, a.id)
		switch {
		case a.at.Before(killed):
			trickleBefore = append(trickleBefore, a.id)
		case a.at.After(recovered):
			trickleAfter = append(trickleAfter, a.id)
		}
	}
	enqueueErrors := tfail
	tmu.Unlock()

	// Wait for every task to be final, or for the rest to stop moving.
	var acc accounting
	lastChange, lastFinal := time.Now(), -1
	for end := killed.Add(60 * time.Second); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
		acc = account(t, insp, aq, q, all)
		if acc.final == len(all) {
			break
		}
		if acc.final != lastFinal {
			lastFinal, lastChange = acc.final, time.Now()
		}
		// Nothing moved for 10 s and what is left is lost or stranded in
		// asynq's active list (asynq's recoverer frees those only after
		// their 30 s lease plus 30 s, on its once-a-minute round).
		if time.Since(lastChange) > 10*time.Second && acc.final+len(acc.lost)+len(acc.stranded) == len(all) {
			break
		}
	}

	dup := 0
	for _, s := range append(append([]string(nil), batchSessions...), trickleSessions...) {
		if fake.LogoutCalls(s) > 1 {
			dup++
		}
	}
	lostBefore := 0
	for _, id := range trickleBefore {
		if acc.isLost(id) {
			lostBefore++
		}
	}
	figures := fmt.Sprintf("SENTINEL FAILOVER (kill -9 of the master after %d of 600 logouts): "+
		"promoted in %s, client writing again in %s; tasks %d (600 batch + %d single enqueued during the run, %d enqueue errors during the outage): "+
		"completed %d (%d of them after the failover), dead %d, canceled %d, retried (attempts>1) %d, "+
		"lost %d %v, stranded in asynq active %d, not final %d; acknowledged enqueues lost: %d of %d made before the kill; "+
		"WAHA called more than once for %d sessions",
		callsAtKill, promoted.Round(10*time.Millisecond), writable.Round(10*time.Millisecond),
		len(all), len(trickle), enqueueErrors,
		acc.completed, acc.completedAfter(recovered), acc.dead, acc.canceled, acc.retried,
		len(acc.lost), acc.lostKinds(), len(acc.stranded), len(all)-acc.final, lostBefore, len(trickleBefore), dup)
	t.Log(figures)
	fmt.Println(figures)

	// The worker recovered: the promoted replica carried on with the batch,
	// nothing was dead-lettered by the failover, and every task enqueued
	// once the client could write again completed.
	require.Positive(t, acc.completedAfter(recovered), "no task completed after the failover")
	require.Zero(t, acc.dead, "the failover dead-lettered tasks")
	for _, id := range trickleAfter {
		require.Equal(t, tasks.StateCompleted, acc.state[id], "task %s enqueued after the failover", id)
	}
	require.Greater(t, fake.TotalLogoutCalls(), callsAtKill+100, "the worker stopped calling WAHA after the failover")
	// The accounting adds up: every task is final, lost or stranded.
	require.Equal(t, len(all), acc.final+len(acc.lost)+len(acc.stranded)+acc.live,
		"some task is in no category: %+v", acc)
	for _, id := range acc.stranded {
		task, err := insp.Task(ctx, id)
		info, aerr := aq.GetTaskInfo(q, id)
		if err == nil && aerr == nil {
			t.Logf("stranded %s: record %s attempts %d; asynq %s retried %d last_err %q",
				id, task.State, task.Attempts, info.State, info.Retried, info.LastErr)
		}
	}
	if acc.live > 0 {
		t.Logf("%d tasks still live (pending/retry in asynq) when the wait ended", acc.live)
	}
}

// TestSentinelWrongMasterName: a REDIS_URL naming a master the Sentinels do
// not monitor fails with an error that says so, rather than a hang.
func TestSentinelWrongMasterName(t *testing.T) {
	t.Parallel()
	st := StartSentinelTopology(t)
	u, err := config.NewRedis("redis-sentinel://"+strings.Join(st.SentinelAddrs(), ",")+"/nosuchmaster", nil)
	require.NoError(t, err, "the URL is well formed; the name is checked on first use")
	t.Cleanup(func() { _ = u.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	err = u.Ping(ctx).Err()
	require.Error(t, err)
	t.Logf("error: %v (after %s)", err, time.Since(start))
	require.Contains(t, err.Error(), `"nosuchmaster"`)
	require.Contains(t, err.Error(), "no Sentinel")
	require.ErrorIs(t, err, config.ErrBadConfig)
	require.Less(t, time.Since(start), 5*time.Second)

	_, err = config.NewRedis("redis-sentinel://"+strings.Join(st.SentinelAddrs(), ","), nil)
	require.ErrorIs(t, err, config.ErrBadConfig)
	require.Contains(t, err.Error(), "master name")
}

// batchTaskIDs reads the ids of a batch's tasks from their records.
func batchTaskIDs(t *testing.T, rdb redis.UniversalClient, ns, batchID string, want int) []string {
	t.Helper()
	ctx := context.Background()
	prefix := store.KeysFor(ns, "default").Record("")
	var ids []string
	iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		if b, _ := rdb.HGet(ctx, iter.Val(), "batch").Result(); b == batchID {
			ids = append(ids, strings.TrimPrefix(iter.Val(), prefix))
		}
	}
	require.NoError(t, iter.Err())
	require.Len(t, ids, want)
	sort.Strings(ids)
	return ids
}

// accounting sorts tasks after a failover.
type accounting struct {
	final, completed, dead, canceled, retried, live int
	// lost: no final record and no asynq task: nothing will ever run it.
	lost map[string]string // id -> how
	// stranded: record not final, asynq task active but no worker runs it;
	// asynq's recoverer requeues it once its lease is long expired.
	stranded []string
	state    map[string]tasks.State
	finished map[string]time.Time
}

func (a accounting) isLost(id string) bool { _, ok := a.lost[id]; return ok }

func (a accounting) completedAfter(t time.Time) int {
	n := 0
	for id, f := range a.finished {
		if a.state[id] == tasks.StateCompleted && f.After(t) {
			n++
		}
	}
	return n
}

func (a accounting) lostKinds() map[string]int {
	m := map[string]int{}
	for _, how := range a.lost {
		m[how]++
	}
	return m
}

func account(t *testing.T, insp *tasks.Inspector, aq *asynq.Inspector, q string, ids []string) accounting {
	t.Helper()
	ctx := context.Background()
	a := accounting{lost: map[string]string{}, state: map[string]tasks.State{}, finished: map[string]time.Time{}}
	for _, id := range ids {
		task, err := insp.Task(ctx, id)
		if err != nil && !isNotFound(err) {
			t.Fatalf("task %s: %v", id, err)
		}
		if err == nil {
			a.state[id] = task.State
			if task.Attempts > 1 {
				a.retried++
			}
			if task.State.Final() {
				a.final++
				if task.FinishedAt != nil {
					a.finished[id] = *task.FinishedAt
				}
				switch task.State {
				case tasks.StateCompleted:
					a.completed++
				case tasks.StateDead:
					a.dead++
				case tasks.StateCanceled:
					a.canceled++
				}
				continue
			}
		}
		info, aerr := aq.GetTaskInfo(q, id)
		switch {
		case aerr != nil && err != nil:
			a.lost[id] = "record and asynq task gone"
		case aerr != nil:
			a.lost[id] = "record " + string(task.State) + ", asynq task gone"
		case info.State == asynq.TaskStateActive:
			a.stranded = append(a.stranded, id)
		default:
			// pending, scheduled or retry in asynq: it will run (and the
			// worker recreates a missing record when it starts).
			a.live++
		}
	}
	return a
}
