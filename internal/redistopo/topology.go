// Package redistopo starts real Redis topologies for tests: a master with a
// replica watched by three Sentinels, and a three-master Redis Cluster, all
// on loopback ports. Its tests run wahaq through them (failover, Cluster,
// asynq's own tools); see docs/redis-ha.md for what they found.
//
// Every process started here is killed when the test ends (and by the kernel
// if the test binary dies first, on Linux).
package redistopo

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wahaq/wahaq/internal/redistest"
)

// Node is one redis-server (or Sentinel) process: Addr, Dir, Kill and Log
// come from the shared launcher.
type Node struct {
	*redistest.Server
}

// Client returns a plain client of this one node, closed at the end of the
// test.
func (n *Node) Client(t testing.TB) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: n.Addr, DialTimeout: time.Second, MaxRetries: -1})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// start runs redis-server with conf's arguments on a free loopback port
// through the shared launcher, which waits until it answers PING and kills
// it when the test ends.
func start(t testing.TB, name string, conf func(port int, dir string) []string) *Node {
	t.Helper()
	return &Node{redistest.LaunchT(t, redistest.ServerConfig{Name: name, Dir: filepath.Join(t.TempDir(), name), Args: conf})}
}

// serverArgs is the shared launcher's throw-away server plus extra directives.
func serverArgs(port int, dir string, extra ...string) []string {
	return append(redistest.DefaultArgs(port, dir), extra...)
}

// SentinelTopology is a master, one replica and three Sentinels watching
// them under MasterName, with quorum 2, down-after-milliseconds 1000 and
// failover-timeout 3000.
type SentinelTopology struct {
	Master, Replica *Node
	Sentinels       []*Node
	MasterName      string
}

// SentinelAddrs returns the Sentinels' addresses.
func (s *SentinelTopology) SentinelAddrs() []string {
	out := make([]string, len(s.Sentinels))
	for i, n := range s.Sentinels {
		out[i] = n.Addr
	}
	return out
}

// URL returns wahaq's REDIS_URL for the topology:
// redis-sentinel://s1,s2,s3/mymaster.
func (s *SentinelTopology) URL() string {
	return "redis-sentinel://" + strings.Join(s.SentinelAddrs(), ",") + "/" + s.MasterName
}

// MasterAddr asks a Sentinel which address it gives for the master now.
func (s *SentinelTopology) MasterAddr(ctx context.Context) (string, error) {
	var lastErr error
	for _, n := range s.Sentinels {
		c := redis.NewSentinelClient(&redis.Options{Addr: n.Addr, DialTimeout: 300 * time.Millisecond, MaxRetries: -1})
		v, err := c.GetMasterAddrByName(ctx, s.MasterName).Result()
		_ = c.Close()
		if err == nil && len(v) == 2 {
			return v[0] + ":" + v[1], nil
		}
		lastErr = err
	}
	return "", lastErr
}

// StartSentinelTopology starts a master, a replica of it and three
// Sentinels, and waits until the replica is in sync and every Sentinel knows
// the replica and the two other Sentinels (so a failover can be authorised).
func StartSentinelTopology(t testing.TB) *SentinelTopology {
	t.Helper()
	st := &SentinelTopology{MasterName: "mymaster"}
	st.Master = start(t, "master", func(port int, dir string) []string { return serverArgs(port, dir) })
	mport := strings.TrimPrefix(st.Master.Addr, "127.0.0.1:")
	st.Replica = start(t, "replica", func(port int, dir string) []string {
		return serverArgs(port, dir, "--replicaof", "127.0.0.1", mport)
	})
	for i := range 3 {
		st.Sentinels = append(st.Sentinels, start(t, "sentinel"+strconv.Itoa(i+1), func(port int, dir string) []string {
			conf := filepath.Join(dir, "sentinel.conf")
			body := fmt.Sprintf(`port %d
bind 127.0.0.1
dir %s
logfile %s
sentinel monitor %s 127.0.0.1 %s 2
sentinel down-after-milliseconds %[4]s 1000
sentinel failover-timeout %[4]s 3000
sentinel parallel-syncs %[4]s 1
`, port, dir, filepath.Join(dir, "redis.log"), st.MasterName, mport)
			if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
			return []string{conf, "--sentinel"}
		}))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	replica := st.Replica.Client(t)
	if err := waitFor(ctx, func() (bool, string) {
		info, err := replica.Info(ctx, "replication").Result()
		if err != nil {
			return false, err.Error()
		}
		return infoField(info, "master_link_status") == "up", info
	}); err != nil {
		t.Fatalf("replica never synced: %v\n%s", err, st.Replica.Log())
	}
	for _, n := range st.Sentinels {
		c := redis.NewSentinelClient(&redis.Options{Addr: n.Addr, MaxRetries: -1})
		err := waitFor(ctx, func() (bool, string) {
			m, err := c.Master(ctx, st.MasterName).Result()
			if err != nil {
				return false, err.Error()
			}
			return m["num-other-sentinels"] == "2" && m["num-slaves"] == "1", fmt.Sprint(m)
		})
		_ = c.Close()
		if err != nil {
			t.Fatalf("sentinel %s never saw the whole topology: %v\n%s", n.Addr, err, n.Log())
		}
	}
	return st
}

// Cluster is a Redis Cluster of three masters that share the 16384 slots,
// with no replicas (StartCluster) or one each (StartReplicatedCluster).
type Cluster struct {
	Nodes []*Node
}

// Addrs returns the nodes' addresses, as REDIS_CLUSTER_ADDRS lists them.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		out[i] = n.Addr
	}
	return out
}

// StartCluster starts three cluster-enabled masters, joins them with
// `redis-cli --cluster create`, and waits until every node reports
// cluster_state:ok and knows the three masters.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	return startCluster(t, 0)
}

// StartReplicatedCluster starts a Cluster of three masters with one replica
// each (six nodes, cluster-node-timeout 2000 ms, so a replica takes over a
// master that stops answering by itself within a few seconds), and waits
// until every replica is in sync. Nodes[0:3] are the masters
// `redis-cli --cluster create` picked first; ask the cluster who is whose
// replica (ReplicaOf) rather than assume it.
func StartReplicatedCluster(t testing.TB) *Cluster {
	t.Helper()
	return startCluster(t, 1)
}

// ReplicaOf returns the node that replicates the master at addr, asking
// the master (INFO replication), or nil.
func (c *Cluster) ReplicaOf(t testing.TB, addr string) *Node {
	t.Helper()
	var master *Node
	for _, n := range c.Nodes {
		if n.Addr == addr {
			master = n
		}
	}
	if master == nil {
		return nil
	}
	info, err := master.Client(t).Info(context.Background(), "replication").Result()
	if err != nil {
		return nil
	}
	// slave0:ip=127.0.0.1,port=6380,state=online,...
	for _, f := range strings.Split(infoField(info, "slave0"), ",") {
		if port, ok := strings.CutPrefix(f, "port="); ok {
			for _, n := range c.Nodes {
				if strings.HasSuffix(n.Addr, ":"+port) {
					return n
				}
			}
		}
	}
	return nil
}

func startCluster(t testing.TB, replicas int) *Cluster {
	t.Helper()
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Fatalf("redis-cli not found on PATH (apt-get install -y redis-tools): %v", err)
	}
	c := &Cluster{}
	for i := range 3 * (1 + replicas) {
		c.Nodes = append(c.Nodes, start(t, "node"+strconv.Itoa(i+1), func(port int, dir string) []string {
			bus, err := redistest.FreePort()
			if err != nil {
				t.Fatal(err)
			}
			return serverArgs(port, dir, "--cluster-enabled", "yes",
				"--cluster-config-file", filepath.Join(dir, "nodes.conf"),
				"--cluster-node-timeout", "2000", "--cluster-port", strconv.Itoa(bus))
		}))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-yes", "--cluster-replicas", strconv.Itoa(replicas))
	out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, n := range c.Nodes {
		cl := n.Client(t)
		if err := waitFor(ctx, func() (bool, string) {
			info, err := cl.ClusterInfo(ctx).Result()
			if err != nil {
				return false, err.Error()
			}
			return infoField(info, "cluster_state") == "ok" && infoField(info, "cluster_known_nodes") == strconv.Itoa(len(c.Nodes)) &&
				infoField(info, "cluster_slots_ok") == "16384", info
		}); err != nil {
			t.Fatalf("cluster never became ok on %s: %v\n%s", n.Addr, err, n.Log())
		}
		if replicas == 0 {
			continue
		}
		if err := waitFor(ctx, func() (bool, string) {
			info, err := cl.Info(ctx, "replication").Result()
			if err != nil {
				return false, err.Error()
			}
			if infoField(info, "role") == "slave" {
				return infoField(info, "master_link_status") == "up" && infoField(info, "master_sync_in_progress") == "0", info
			}
			return strings.Contains(infoField(info, "slave0"), "state=online"), info
		}); err != nil {
			t.Fatalf("replication never in sync on %s: %v\n%s", n.Addr, err, n.Log())
		}
	}
	return c
}

// waitFor polls cond until it is true or ctx ends; the error carries cond's
// last note.
func waitFor(ctx context.Context, cond func() (bool, string)) error {
	for {
		ok, note := cond()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w; last seen: %s", ctx.Err(), note)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// infoField reads one field of an INFO-style "key:value" reply.
func infoField(info, key string) string {
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), key+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
