package redistopo

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/config"
	"github.com/wahaq/wahaq/internal/store"
	"github.com/wahaq/wahaq/tasks"
	"github.com/wahaq/wahaq/wahaclient/wahafake"
	"github.com/wahaq/wahaq/worker"
)

// TestClusterFailover runs a 600-session teardown on a Redis Cluster of
// three masters with one replica each (REDIS_CLUSTER_ADDRS' client), kills
// the master that holds the queue's slot with SIGKILL (by PID) a third of
// the way in, lets its replica take over by itself (cluster-node-timeout
// 2 s), and waits, with the worker's reconciler running every second, until
// every task is final. It then asserts that every task is final, the batch
// reads done, and the fake WAHA never saw one session logged out twice at
// the same time; the other figures (failover time, repairs, duplicates
// one after the other) are reported for docs/redis-ha.md.
//
// It takes a minute or two (asynq hands back tasks a dead master's
// failover left in its active list only after their lease, on its
// once-a-minute recoverer round), so -short skips it.
func TestClusterFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("Cluster failover takes a minute or two; run without -short")
	}
	cl := StartReplicatedCluster(t)
	u, err := config.NewRedis("", cl.Addrs())
	require.NoError(t, err)
	rdb := u.(*redis.ClusterClient)
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	require.NoError(t, rdb.Ping(ctx).Err())

	ns := namespace()
	q := ns + ":default"
	fake := wahafake.NewT(t, wahafake.Options{LogoutLatency: 20 * time.Millisecond})
	sessions := fake.AddSessions("s", 600, wahafake.StatusWorking)
	cfg := tasks.Config{Redis: rdb, Namespace: ns}
	prod, err := tasks.NewProducer(cfg)
	require.NoError(t, err)
	insp, err := tasks.NewInspector(cfg)
	require.NoError(t, err)
	aq := asynq.NewInspectorFromRedisClient(rdb)

	b, err := prod.EnqueueBatch(ctx, tasks.BatchRequest{Sessions: sessions})
	require.NoError(t, err)
	require.EqualValues(t, 600, b.Total)
	ids := batchTaskIDs(t, rdb, ns, b.BatchID, 600)

	master, err := rdb.MasterForKey(ctx, store.KeysFor(ns, "default").Pending())
	require.NoError(t, err)
	masterAddr := master.Options().Addr
	replica := cl.ReplicaOf(t, masterAddr)
	require.NotNil(t, replica, "no replica of %s", masterAddr)
	var victim *Node
	for _, n := range cl.Nodes {
		if n.Addr == masterAddr {
			victim = n
		}
	}
	require.NotNil(t, victim)
	t.Logf("queue %s on master %s (pid %d), replica %s", q, masterAddr, victim.Pid(), replica.Addr)

	reg := prometheus.NewRegistry()
	w, err := worker.New(worker.Config{
		Redis: rdb, Namespace: ns,
		Instances:   []worker.Instance{{Name: "default", BaseURL: fake.URL(), Concurrency: 8}},
		Concurrency: 16, RetryBase: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond,
		ShutdownGrace: 2 * time.Second, ReconcileInterval: time.Second, Registerer: reg,
	})
	require.NoError(t, err)
	require.NoError(t, w.Start())
	t.Cleanup(w.Shutdown)

	require.Eventually(t, func() bool { return fake.TotalLogoutCalls() >= 200 }, wait, 5*time.Millisecond,
		"the batch never got going")
	callsAtKill := fake.TotalLogoutCalls()
	killed := time.Now()
	victim.Kill() // SIGKILL: no shutdown, writes not yet replicated are lost

	// Failover time as the replica sees it (it reports role:master), and
	// as wahaq's client sees it (a write to the queue's slot succeeds).
	rc := replica.Client(t)
	var promoted, writable time.Duration
	for deadline := killed.Add(60 * time.Second); time.Now().Before(deadline) && (promoted == 0 || writable == 0); time.Sleep(20 * time.Millisecond) {
		if promoted == 0 {
			if info, err := rc.Info(ctx, "replication").Result(); err == nil && infoField(info, "role") == "master" {
				promoted = time.Since(killed)
			}
		}
		if writable == 0 && promoted != 0 {
			c, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
			if rdb.Set(c, "{"+q+"}:probe", "1", time.Minute).Err() == nil {
				writable = time.Since(killed)
			}
			cancel()
		}
	}
	require.NotZero(t, promoted, "the replica never took over\n%s", replica.Log())
	require.NotZero(t, writable, "wahaq's client never wrote to the new master")

	// Every task final and the batch done, with the reconciler running.
	var acc accounting
	var batch *tasks.Batch
	end := killed.Add(3 * time.Minute)
	for ; time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
		acc = account(t, insp, aq, q, ids)
		if batch, err = insp.Batch(ctx, b.BatchID); err == nil && acc.final == len(ids) && batch.Done {
			break
		}
	}
	settled := time.Since(killed)

	repairs := map[string]float64{}
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != "wahaq_reconciled_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			repairs[label(m, "kind")] += m.GetCounter().GetValue()
		}
	}
	twice := 0
	for _, s := range sessions {
		if fake.LogoutCalls(s) > 1 {
			twice++
		}
	}
	figures := fmt.Sprintf("CLUSTER FAILOVER (kill -9 of the queue's master after %d of 600 logouts; 3 masters + 3 replicas, "+
		"cluster-node-timeout 2s, reconcile every 1s): replica promoted in %s, client writing again in %s; "+
		"all final and batch done %s after the kill; completed %d, dead %d, canceled %d, retried (attempts>1) %d, "+
		"not final %d, lost %d %v, stranded %d; repairs %v; WAHA called more than once for %d sessions, "+
		"twice at the same time for %d",
		callsAtKill, promoted.Round(10*time.Millisecond), writable.Round(10*time.Millisecond), settled.Round(100*time.Millisecond),
		acc.completed, acc.dead, acc.canceled, acc.retried, len(ids)-acc.final, len(acc.lost), acc.lostKinds(),
		len(acc.stranded), repairs, twice, fake.ConcurrentSameSession())
	t.Log(figures)
	fmt.Println(figures)

	require.Equal(t, len(ids), acc.final, "every task is final: %+v", acc)
	require.NotNil(t, batch)
	require.True(t, batch.Done, "the batch reads done: %+v", batch)
	require.Zero(t, fake.ConcurrentSameSession(), "a session was logged out twice at the same time")
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
