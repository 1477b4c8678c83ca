package faults

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wahaq/wahaq/internal/asynqcompat"
	"github.com/wahaq/wahaq/internal/store"
	"github.com/wahaq/wahaq/tasks"
)

var (
	binOnce sync.Once
	binDir  string
	bins    Bins
	binErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// binaries builds wahaq and fakewaha once for the whole test binary.
func binaries(t *testing.T) Bins {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "wahaq-faults-bin-")
		if binErr == nil {
			bins, binErr = Build(binDir)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return bins
}

func secret(prefix string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// rig is one scenario's world: its own redis-server, fake WAHA and namespace.
type rig struct {
	t     *testing.T
	bins  Bins
	dir   string
	redis *Redis
	rdb   *redis.Client
	ns    string
	fake  *Fake
	key   string
	env   Env
}

// newRig starts Redis (AOF on, fsync always) and a fakewaha with the key and
// extra flags. The settings in r.env point workers at both.
func newRig(t *testing.T, fakeFlags ...string) *rig {
	if testing.Short() {
		t.Skip("fault suite: skipped with -short")
	}
	t.Parallel()
	r := &rig{t: t, bins: binaries(t), dir: t.TempDir(), ns: secret("f"), key: secret("wahakey-")}
	r.redis = StartRedis(t, r.dir)
	r.rdb = r.redis.Client()
	r.fake = StartFake(t, r.bins, r.dir, "fakewaha", append([]string{"--api-key", r.key}, fakeFlags...)...)
	r.env = Env{
		"REDIS_URL":                  r.redis.URL(),
		"WAHAQ_NAMESPACE":            r.ns,
		"WAHA_BASE_URL":              r.fake.URL,
		"WAHA_API_KEY":               r.key,
		"LOG_LEVEL":                  "info",
		"LOG_FORMAT":                 "json",
		"WAHAQ_RETRY_BASE":           "200ms",
		"WAHAQ_RETRY_MAX":            "2s",
		"WAHAQ_SHUTDOWN_GRACE":       "10s",
		"WAHAQ_CONCURRENCY":          "20",
		"WAHAQ_INSTANCE_CONCURRENCY": "40",
	}
	return r
}

func (r *rig) queue() string { return r.ns + ":default" }

func (r *rig) tasksConfig(ns string) tasks.Config {
	return tasks.Config{Redis: r.rdb, Namespace: ns, MaxRetries: 10}
}

func (r *rig) producer(ns string) *tasks.Producer {
	p, err := tasks.NewProducer(r.tasksConfig(ns))
	if err != nil {
		r.t.Fatal(err)
	}
	return p
}

func (r *rig) inspector(ns string) *tasks.Inspector {
	i, err := tasks.NewInspector(r.tasksConfig(ns))
	if err != nil {
		r.t.Fatal(err)
	}
	return i
}

func sessionNames(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%04d", prefix, i+1)
	}
	return out
}

// enqueue enqueues one batch of the sessions with a Producer, as a Go
// service would.
func (r *rig) enqueue(ns string, sessions []string) string {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	info, err := r.producer(ns).EnqueueBatch(ctx, tasks.BatchRequest{Sessions: sessions})
	if err != nil {
		r.t.Fatal(err)
	}
	if int(info.Total) != len(sessions) {
		r.t.Fatalf("batch holds %d tasks, want %d", info.Total, len(sessions))
	}
	return info.BatchID
}

// batch reads a batch; Redis errors (during a restart) give nil.
func batch(insp *tasks.Inspector, id string) *tasks.Batch {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b, err := insp.Batch(ctx, id)
	if err != nil {
		return nil
	}
	return b
}

func describe(b *tasks.Batch) string {
	if b == nil {
		return "batch unreadable"
	}
	return fmt.Sprintf("total=%d counts=%v outcomes=%v done=%v", b.Total, b.Counts, b.Outcomes, b.Done)
}

// waitBatch waits until cond holds for the batch and returns it.
func waitBatch(t *testing.T, insp *tasks.Inspector, id string, d time.Duration, cond func(*tasks.Batch) bool) *tasks.Batch {
	t.Helper()
	var last *tasks.Batch
	Eventually(t, d, 100*time.Millisecond, func() (bool, string) {
		last = batch(insp, id)
		return last != nil && cond(last), describe(last)
	})
	return last
}

func completedAtLeast(n int64) func(*tasks.Batch) bool {
	return func(b *tasks.Batch) bool { return b.Counts[tasks.StateCompleted] >= n }
}

func isDone(b *tasks.Batch) bool { return b.Done }

// record is a task record as stored in Redis.
type record struct {
	ID, State, Session, Outcome, Err, Result string
	Attempts                                 int
}

// records reads every task record of a queue straight from Redis.
func records(t *testing.T, rdb *redis.Client, ns string) map[string]record {
	t.Helper()
	ctx := context.Background()
	prefix := store.KeysFor(ns, "default").Record("")
	out := map[string]record{}
	iter := rdb.Scan(ctx, 0, prefix+"*", 2000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	for start := 0; start < len(keys); start += 1000 {
		chunk := keys[start:min(start+1000, len(keys))]
		pipe := rdb.Pipeline()
		cmds := make([]*redis.MapStringStringCmd, len(chunk))
		for i, k := range chunk {
			cmds[i] = pipe.HGetAll(ctx, k)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatal(err)
		}
		for i, c := range cmds {
			m := c.Val()
			id := strings.TrimPrefix(chunk[i], prefix)
			n := store.RecordAttempts(m) // a final record derives it from its attempt log
			out[id] = record{ID: id, State: m["state"], Session: m["session"], Outcome: m["outcome"],
				Err: m["err"], Result: m["result"], Attempts: n}
		}
	}
	return out
}

// lostCount is the number of sessions that never reached a final state or
// were never logged out at WAHA although their record says so.
func lostCount(recs map[string]record, sessions []string, calls map[string]int, wantOutcome string) int {
	bySession := map[string]record{}
	for _, rc := range recs {
		bySession[rc.Session] = rc
	}
	lost := 0
	for _, s := range sessions {
		rc, ok := bySession[s]
		switch {
		case !ok, !tasks.State(rc.State).Final():
			lost++
		case wantOutcome != "" && rc.Outcome != wantOutcome:
			lost++
		case rc.Outcome == string(tasks.OutcomeLoggedOut) && calls[s] == 0:
			lost++
		}
	}
	return lost
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

// ---- 1. Worker killed ----

// TestWorkerKilled kills -9 one of two workers in the middle of a
// 2,000-session batch and restarts it. Every task must end logged_out; a
// session may see a second WAHA call only if its task was active when the
// worker died (asynq hands such a task to another worker once its lease has
// expired, about a minute later).
func TestWorkerKilled(t *testing.T) {
	const n = 2000
	r := newRig(t, "--sessions", strconv.Itoa(n), "--latency", "100ms")
	insp := r.inspector(r.ns)
	w1 := StartWorker(t, r.bins, r.dir, "worker-1", r.env) // the one we kill
	StartWorker(t, r.bins, r.dir, "worker-2", r.env)
	sessions := sessionNames("session", n)
	start := time.Now()
	id := r.enqueue(r.ns, sessions)
	waitBatch(t, insp, id, 60*time.Second, completedAtLeast(n/4))

	w1.Kill() // kill -9
	killedAt := time.Now()
	ctx := context.Background()
	activeIDs, err := r.rdb.LRange(ctx, asynqcompat.ActiveKey(r.queue()), 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	recs := records(t, r.rdb, r.ns)
	inFlight := map[string]bool{}
	for _, aid := range activeIDs {
		inFlight[recs[aid].Session] = true
	}
	if len(inFlight) == 0 {
		t.Fatalf("no task was active when the worker was killed: the scenario tested nothing")
	}
	t.Logf("killed worker-1 at %s with %d tasks active across workers; %s",
		killedAt.Sub(start).Round(time.Millisecond), len(activeIDs), describe(batch(insp, id)))
	StartWorker(t, r.bins, r.dir, "worker-1-restarted", r.env)

	b := waitBatch(t, insp, id, 200*time.Second, isDone)
	recover := time.Since(killedAt)
	stats := r.fake.Stats()
	recs = records(t, r.rdb, r.ns)
	lost := lostCount(recs, sessions, stats.LogoutCalls, string(tasks.OutcomeLoggedOut))
	dups, dupSessions := stats.Duplicates()
	Report(t, Figures{Scenario: "worker_killed", Tasks: n, Lost: lost, Duplicates: dups,
		Dead: int(b.Counts[tasks.StateDead]), Recover: recover,
		Extra: fmt.Sprintf("active_at_kill=%d total=%.1fs", len(activeIDs), time.Since(start).Seconds())})

	if lost != 0 || b.Counts[tasks.StateCompleted] != n || b.Outcomes[tasks.OutcomeLoggedOut] != n {
		t.Errorf("lost %d; %s", lost, describe(b))
	}
	for _, s := range sessions {
		if stats.LogoutCalls[s] == 0 {
			t.Errorf("session %s was never logged out at WAHA", s)
		}
	}
	for _, s := range dupSessions {
		if !inFlight[s] {
			t.Errorf("session %s got %d WAHA calls but its task was not in flight at the kill", s, stats.LogoutCalls[s])
		}
	}
	if len(recs) != n {
		t.Errorf("%d task records, want %d", len(recs), n)
	}
}

// ---- 2. Redis restarted ----

// TestRedisRestarted kills redis-server (AOF on, fsync always) in the middle
// of a batch and starts it again on the same port and directory. The workers
// and the API keep running; the batch must finish with nothing lost.
func TestRedisRestarted(t *testing.T) {
	const n = 2000
	r := newRig(t, "--sessions", strconv.Itoa(n), "--latency", "50ms")
	insp := r.inspector(r.ns)
	token := secret("tok-")
	apiEnv := r.env.With("WAHAQ_API_TOKENS", token)
	workers := []*Proc{
		StartWorker(t, r.bins, r.dir, "worker-1", r.env),
		StartWorker(t, r.bins, r.dir, "worker-2", r.env),
	}
	api := StartAPI(t, r.bins, r.dir, "api", apiEnv)
	sessions := sessionNames("session", n)
	start := time.Now()
	id := r.enqueue(r.ns, sessions)
	waitBatch(t, insp, id, 60*time.Second, completedAtLeast(n/4))
	if pre := batch(insp, id); pre == nil || pre.Counts[tasks.StateCompleted] > n*3/4 {
		t.Fatalf("the batch was nearly done before Redis was killed: %s", describe(pre))
	}
	r.redis.Kill()
	downAt := time.Now()
	// The API notices: /readyz fails while Redis is gone.
	Eventually(t, 15*time.Second, 100*time.Millisecond, func() (bool, string) {
		code, body := api.Do(t, "GET", "/readyz", "", nil)
		return code == http.StatusServiceUnavailable, fmt.Sprintf("/readyz answered %d %s while Redis is down", code, body)
	})
	time.Sleep(2 * time.Second)
	r.redis.Start()
	upAt := time.Now()
	t.Logf("Redis down for %s", upAt.Sub(downAt).Round(time.Millisecond))

	b := waitBatch(t, insp, id, 200*time.Second, isDone)
	recover := time.Since(upAt)
	for i, w := range workers {
		if !w.Alive() {
			t.Errorf("worker-%d exited after the Redis restart", i+1)
		}
	}
	if !api.Proc.Alive() {
		t.Fatalf("the API exited after the Redis restart")
	}
	Eventually(t, 15*time.Second, 100*time.Millisecond, func() (bool, string) {
		code, body := api.Do(t, "GET", "/readyz", "", nil)
		return code == 200, fmt.Sprintf("/readyz answered %d %s after the restart", code, body)
	})
	code, body := api.Do(t, "GET", "/v1/batches/"+id, "Bearer "+token, nil)
	var viaAPI tasks.Batch
	if code != 200 || json.Unmarshal(body, &viaAPI) != nil || !viaAPI.Done || viaAPI.Counts[tasks.StateCompleted] != n {
		t.Errorf("GET /v1/batches/%s after the restart: %d %s", id, code, body)
	}

	stats := r.fake.Stats()
	recs := records(t, r.rdb, r.ns)
	lost := lostCount(recs, sessions, stats.LogoutCalls, string(tasks.OutcomeLoggedOut))
	dups, _ := stats.Duplicates()
	Report(t, Figures{Scenario: "redis_restarted", Tasks: n, Lost: lost, Duplicates: dups,
		Dead: int(b.Counts[tasks.StateDead]), Recover: recover,
		Extra: fmt.Sprintf("redis_down=%.1fs total=%.1fs", upAt.Sub(downAt).Seconds(), time.Since(start).Seconds())})
	if lost != 0 || b.Counts[tasks.StateCompleted] != n || b.Outcomes[tasks.OutcomeLoggedOut] != n {
		t.Errorf("lost %d; %s", lost, describe(b))
	}
	// Only logouts in flight when Redis died can run twice: at most what the
	// two workers run at once.
	if maxDup := 2 * atoi(r.env["WAHAQ_CONCURRENCY"]); dups > maxDup {
		t.Errorf("%d duplicate WAHA calls, more than the %d logouts the workers can have in flight", dups, maxDup)
	}
}

// ---- 3. WAHA down ----

// TestWahaDown takes WAHA away in the middle of a batch: first nothing
// listens (connection refused), then it answers 503, then it is back. Tasks
// retry with backoff and all end logged_out; none is dead.
func TestWahaDown(t *testing.T) {
	const n = 1000
	down := 8 * time.Second
	if Full() {
		down = 30 * time.Second
	}
	r := newRig(t, "--sessions", strconv.Itoa(n), "--latency", "20ms")
	proxy := StartProxy(t, strings.TrimPrefix(r.fake.URL, "http://"))
	env := r.env.With("WAHA_BASE_URL", "http://"+proxy.Addr, "WAHAQ_CONCURRENCY", "10", "WAHAQ_INSTANCE_CONCURRENCY", "20",
		"WAHAQ_RETRY_BASE", "500ms", "WAHAQ_RETRY_MAX", "4s", "WAHAQ_MAX_RETRIES", "20")
	insp := r.inspector(r.ns)
	StartWorker(t, r.bins, r.dir, "worker-1", env)
	StartWorker(t, r.bins, r.dir, "worker-2", env)
	sessions := sessionNames("session", n)
	start := time.Now()
	id := r.enqueue(r.ns, sessions)
	waitBatch(t, insp, id, 60*time.Second, completedAtLeast(n/5))

	proxy.Down() // connection refused
	downAt := time.Now()
	var sawRetrying atomic.Int64
	watch := func(until time.Time) {
		for time.Now().Before(until) {
			if b := batch(insp, id); b != nil && b.Counts[tasks.StateRetrying] > sawRetrying.Load() {
				sawRetrying.Store(b.Counts[tasks.StateRetrying])
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	watch(downAt.Add(down / 2))
	r.fake.Control("default-fault", map[string]any{"status": 503})
	proxy.Up(t) // listening again, but answering 503
	watch(downAt.Add(down))
	r.fake.Control("default-fault", nil)
	backAt := time.Now()
	mid := batch(insp, id)
	t.Logf("WAHA back after %s; %s", backAt.Sub(downAt).Round(time.Millisecond), describe(mid))

	b := waitBatch(t, insp, id, 120*time.Second, isDone)
	recover := time.Since(backAt)
	stats := r.fake.Stats()
	recs := records(t, r.rdb, r.ns)
	lost := lostCount(recs, sessions, stats.LogoutCalls, string(tasks.OutcomeLoggedOut))
	attempts, retried := 0, 0
	for _, rc := range recs {
		attempts += rc.Attempts
		if rc.Attempts > 1 {
			retried++
		}
	}
	// Duplicates: logouts WAHA performed more than once per session (503s
	// and refused connections are not logouts).
	dups := stats.CallsByStatus["201"] - n
	Report(t, Figures{Scenario: "waha_down", Tasks: n, Lost: lost, Duplicates: dups,
		Dead: int(b.Counts[tasks.StateDead]), Recover: recover,
		Extra: fmt.Sprintf("down=%s attempts=%d tasks_retried=%d calls_503=%d total=%.1fs",
			down, attempts, retried, stats.CallsByStatus["503"], time.Since(start).Seconds())})

	if b.Counts[tasks.StateDead] != 0 || b.Outcomes[tasks.OutcomeLoggedOut] != n || lost != 0 {
		t.Errorf("want all %d logged_out and none dead: %s; lost %d", n, describe(b), lost)
	}
	if sawRetrying.Load() == 0 || retried == 0 {
		t.Errorf("no task was seen retrying during the outage (max retrying %d, tasks with >1 attempt %d)", sawRetrying.Load(), retried)
	}
	if stats.CallsByStatus["503"] == 0 {
		t.Errorf("no call met the 503 phase: %v", stats.CallsByStatus)
	}
	// Backoff: within the outage each task tried only a few times, not in a
	// tight loop (500ms base, doubling to 4s).
	maxAttempts := 0
	for _, rc := range recs {
		maxAttempts = max(maxAttempts, rc.Attempts)
	}
	if limit := int(down/(500*time.Millisecond)) + 3; maxAttempts > limit {
		t.Errorf("a task made %d attempts during a %s outage: no backoff? (limit %d)", maxAttempts, down, limit)
	}
}

// ---- 4. Keys revoked ----

// TestKeysRevoked revokes the WAHA key in the middle of a batch: every
// remaining task goes to the dead-letter queue after exactly one call; once
// the key is fixed, `wahaq dlq requeue --all` logs them all out. Then a flood
// of auth failures (12,000, or 25,000 with WAHAQ_FAULTS_FULL=1: more than
// asynq's 10,000-entry archive keeps) is listed in full.
func TestKeysRevoked(t *testing.T) {
	const n = 1000
	r := newRig(t, "--sessions", strconv.Itoa(n), "--latency", "20ms")
	env := r.env.With("WAHAQ_CONCURRENCY", "10", "WAHAQ_INSTANCE_CONCURRENCY", "10", "WAHAQ_MAX_RETRIES", "3")
	insp := r.inspector(r.ns)
	workers := []*Proc{
		StartWorker(t, r.bins, r.dir, "worker-1", env),
		StartWorker(t, r.bins, r.dir, "worker-2", env),
	}
	sessions := sessionNames("session", n)
	start := time.Now()
	id := r.enqueue(r.ns, sessions)
	waitBatch(t, insp, id, 60*time.Second, completedAtLeast(n/4))
	r.fake.Control("api-key", map[string]string{"key": secret("rotated-")})
	revokedAt := time.Now()
	b := waitBatch(t, insp, id, 120*time.Second, isDone)
	deadAfterRevoke := b.Counts[tasks.StateDead]
	stats := r.fake.Stats()
	t.Logf("key revoked after %s; %s", revokedAt.Sub(start).Round(time.Millisecond), describe(b))

	if deadAfterRevoke == 0 || b.Outcomes[tasks.OutcomeAuthFailed] != deadAfterRevoke {
		t.Fatalf("want the rest dead with auth_failed: %s", describe(b))
	}
	if b.Counts[tasks.StateCompleted]+deadAfterRevoke != n {
		t.Fatalf("not every task is final: %s", describe(b))
	}
	recs := records(t, r.rdb, r.ns)
	deadSessions := map[string]bool{}
	for _, rc := range recs {
		if rc.State == string(tasks.StateDead) {
			deadSessions[rc.Session] = true
			if c := stats.LogoutCalls[rc.Session]; c != 1 {
				t.Errorf("dead session %s got %d WAHA calls, want exactly 1", rc.Session, c)
			}
			if rc.Attempts != 1 {
				t.Errorf("dead session %s has %d attempts, want 1", rc.Session, rc.Attempts)
			}
		}
	}
	if got := stats.CallsByStatus["401"]; int64(got) != deadAfterRevoke {
		t.Errorf("%d calls answered 401, want one per dead task (%d)", got, deadAfterRevoke)
	}
	out, errOut, code := CLI(t, r.bins, env, 30*time.Second, "dlq", "list", "--json", "--limit", "1000")
	var page tasks.DeadLetterPage
	if code != 0 || json.Unmarshal([]byte(out), &page) != nil || page.Total != deadAfterRevoke {
		t.Errorf("wahaq dlq list --json: exit %d, total %d, want %d; %s", code, page.Total, deadAfterRevoke, errOut)
	}

	// The operator fixes the key and replays the dead letters.
	r.fake.Control("api-key", map[string]string{"key": r.key})
	fixedAt := time.Now()
	out, errOut, code = CLI(t, r.bins, env, 60*time.Second, "dlq", "requeue", "--all")
	if code != 0 {
		t.Fatalf("wahaq dlq requeue --all: exit %d\n%s%s", code, out, errOut)
	}
	b = waitBatch(t, insp, id, 120*time.Second, func(b *tasks.Batch) bool {
		return b.Done && b.Counts[tasks.StateCompleted] == n
	})
	recover := time.Since(fixedAt)
	stats = r.fake.Stats()
	recs = records(t, r.rdb, r.ns)
	lost := lostCount(recs, sessions, stats.LogoutCalls, string(tasks.OutcomeLoggedOut))
	dlqLeft, _ := r.inspector(r.ns).DeadLetters(context.Background(), "", 0, 1)
	dups := 0
	for _, s := range sessions {
		want := 1
		if deadSessions[s] {
			want = 2 // the 401, then the replay
		}
		if c := stats.LogoutCalls[s]; c != want {
			dups += max(c-want, 0)
			if c < want {
				t.Errorf("session %s: %d WAHA calls, want %d", s, c, want)
			}
		}
	}
	Report(t, Figures{Scenario: "keys_revoked", Tasks: n, Lost: lost, Duplicates: dups, Dead: int(deadAfterRevoke),
		Recover: recover, Extra: fmt.Sprintf("dead_after_requeue=%d", dlqLeft.Total)})
	if lost != 0 || b.Outcomes[tasks.OutcomeLoggedOut] != n || dlqLeft.Total != 0 {
		t.Errorf("after requeue: lost %d, dead letters left %d; %s", lost, dlqLeft.Total, describe(b))
	}
	if dups != 0 {
		t.Errorf("%d WAHA calls beyond the expected ones", dups)
	}
	for _, w := range workers {
		w.Kill()
	}

	// Part two: a flood of auth failures, every one kept and listed.
	flood := 12_000
	if Full() {
		flood = 25_000
	}
	ns2 := r.ns + "b"
	env2 := r.env.With("WAHAQ_NAMESPACE", ns2, "WAHAQ_CONCURRENCY", "100", "WAHAQ_INSTANCE_CONCURRENCY", "100", "WAHAQ_MAX_RETRIES", "0")
	r.fake.Control("reset-stats", map[string]any{})
	r.fake.Control("default-fault", map[string]any{"status": 401})
	floodNames := sessionNames("auth", flood)
	insp2 := r.inspector(ns2)
	id2 := r.enqueue(ns2, floodNames)
	floodStart := time.Now()
	StartWorker(t, r.bins, r.dir, "flood-worker-1", env2)
	StartWorker(t, r.bins, r.dir, "flood-worker-2", env2)
	b2 := waitBatch(t, insp2, id2, 240*time.Second, isDone)
	floodTook := time.Since(floodStart)
	ctx := context.Background()
	listed := map[string]bool{}
	for off := int64(0); off >= 0; {
		page, err := insp2.DeadLetters(ctx, "", off, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, tk := range page.Tasks {
			if tk.Outcome == nil || *tk.Outcome != tasks.OutcomeAuthFailed || tk.State != tasks.StateDead {
				t.Fatalf("dead letter %s: state %s outcome %v", tk.ID, tk.State, tk.Outcome)
			}
			listed[tk.Session] = true
		}
		off = page.NextOffset
	}
	archived, _ := r.rdb.ZCard(ctx, asynqcompat.ArchivedKey(ns2+":default")).Result()
	out, errOut, code = CLI(t, r.bins, env2, 60*time.Second, "dlq", "list", "--json", "--limit", "1", "--offset", strconv.Itoa(flood-1))
	page = tasks.DeadLetterPage{}
	if code != 0 || json.Unmarshal([]byte(out), &page) != nil || page.Total != int64(flood) || len(page.Tasks) != 1 {
		t.Errorf("wahaq dlq list --json --offset %d: exit %d, total %d, %d tasks; want total %d; %s", flood-1, code, page.Total, len(page.Tasks), flood, errOut)
	}
	stats = r.fake.Stats()
	missing := 0
	for _, s := range floodNames {
		if !listed[s] {
			missing++
		}
	}
	Report(t, Figures{Scenario: "auth_flood", Tasks: flood, Lost: missing, Duplicates: stats.CallsByStatus["401"] - flood,
		Dead: int(b2.Counts[tasks.StateDead]), Recover: 0,
		Extra: fmt.Sprintf("listed=%d asynq_archive=%d took=%.1fs", len(listed), archived, floodTook.Seconds())})
	if missing != 0 || b2.Counts[tasks.StateDead] != int64(flood) {
		t.Errorf("%d of %d auth failures missing from the dead-letter queue; %s", missing, flood, describe(b2))
	}
	if stats.CallsByStatus["401"] != flood {
		t.Errorf("%d calls answered 401, want exactly one per task (%d)", stats.CallsByStatus["401"], flood)
	}
}

// ---- 5. Graceful shutdown ----

// TestGracefulShutdown sends SIGTERM to a worker with logouts in flight:
// they finish, nothing new starts, and the process exits within the grace
// period. A new worker then does the rest.
func TestGracefulShutdown(t *testing.T) {
	const n, conc = 20, 5
	grace := 10 * time.Second
	r := newRig(t, "--sessions", strconv.Itoa(n), "--latency", "3s")
	env := r.env.With("WAHAQ_CONCURRENCY", strconv.Itoa(conc), "WAHAQ_INSTANCE_CONCURRENCY", strconv.Itoa(conc),
		"WAHAQ_SHUTDOWN_GRACE", grace.String())
	insp := r.inspector(r.ns)
	w := StartWorker(t, r.bins, r.dir, "worker-1", env)
	sessions := sessionNames("session", n)
	id := r.enqueue(r.ns, sessions)
	Eventually(t, 30*time.Second, 20*time.Millisecond, func() (bool, string) {
		s := r.fake.Stats()
		return s.InFlight == conc, fmt.Sprintf("%d logouts in flight, want %d", s.InFlight, conc)
	})
	before := r.fake.Stats()
	if err := w.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	termAt := time.Now()
	code, exited := w.Wait(grace + 10*time.Second)
	took := time.Since(termAt)
	if !exited {
		t.Fatalf("the worker did not exit within %s of SIGTERM", grace+10*time.Second)
	}
	after := r.fake.Stats()
	b := batch(insp, id)
	Report(t, Figures{Scenario: "graceful_shutdown", Tasks: n, Lost: 0, Duplicates: 0, Dead: int(b.Counts[tasks.StateDead]),
		Recover: took, Extra: fmt.Sprintf("in_flight_at_sigterm=%d finished=%d started_after=%d exit=%d",
			before.InFlight, after.TotalLogoutCalls, after.TotalLogoutCalls-before.TotalLogoutCalls-before.InFlight, code)})
	if code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
	if took >= grace {
		t.Errorf("the worker took %s to exit, more than the %s grace period", took, grace)
	}
	if after.InFlight != 0 || after.TotalLogoutCalls != before.TotalLogoutCalls+conc {
		t.Errorf("WAHA calls: %d before SIGTERM with %d in flight, %d after (%d in flight): in-flight logouts must finish and no new one start",
			before.TotalLogoutCalls, before.InFlight, after.TotalLogoutCalls, after.InFlight)
	}
	if done := int64(before.TotalLogoutCalls + conc); b.Counts[tasks.StateCompleted] != done || b.Counts[tasks.StatePending] != n-done {
		t.Errorf("after shutdown want %d completed and %d pending: %s", done, n-done, describe(b))
	}
	if !strings.Contains(w.Log(), "signal received") {
		t.Errorf("the worker did not log the signal")
	}

	StartWorker(t, r.bins, r.dir, "worker-2", env)
	b = waitBatch(t, insp, id, 60*time.Second, isDone)
	final := r.fake.Stats()
	recs := records(t, r.rdb, r.ns)
	if lost := lostCount(recs, sessions, final.LogoutCalls, string(tasks.OutcomeLoggedOut)); lost != 0 || b.Outcomes[tasks.OutcomeLoggedOut] != n {
		t.Errorf("lost %d after restart: %s", lost, describe(b))
	}
	if dups, names := final.Duplicates(); dups != 0 {
		t.Errorf("%d duplicate WAHA calls (%v) across a graceful shutdown", dups, names)
	}
}

// ---- 7. Secrets and access ----

// TestSecretsAndAccess runs a worker and the API at LOG_LEVEL=debug through
// successes, retries, auth failures, rejections and unknown sessions, then
// looks for the WAHA key, the validation key and the API token in every log
// line, every Redis key and value, and every task the API returns. It also
// checks that every /v1 route refuses a request without a valid token, and
// that no request can make the worker call an address of its choosing.
func TestSecretsAndAccess(t *testing.T) {
	r := newRig(t, "--sessions", "30")
	valKey, token, token2 := secret("valkey-"), secret("apitoken-"), secret("apitoken2-")
	var valCalls atomic.Int64
	validator := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		valCalls.Add(1)
		if req.Header.Get("Authorization") != "Bearer "+valKey {
			http.Error(w, `{"message":"subscription expired"}`, http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(validator.Close)
	var evilHits atomic.Int64
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		evilHits.Add(1)
		w.WriteHeader(http.StatusCreated)
	}))
	t.Cleanup(evil.Close)

	r.fake.Control("script", map[string]any{"session": "session-0002", "faults": []map[string]any{{"status": 503, "times": 2}}})
	r.fake.Control("script", map[string]any{"session": "session-0003", "faults": []map[string]any{{"status": 401}}})
	r.fake.Control("script", map[string]any{"session": "session-0004", "faults": []map[string]any{{"status": 422}}})
	env := r.env.With("LOG_LEVEL", "debug", "WAHA_VALIDATION_URL", validator.URL, "WAHA_VALIDATION_API_KEY", valKey,
		"WAHAQ_API_TOKENS", token+","+token2, "WAHAQ_MAX_RETRIES", "3")
	worker := StartWorker(t, r.bins, r.dir, "worker", env)
	api := StartAPI(t, r.bins, r.dir, "api", env)
	bearer := "Bearer " + token

	var ids []string
	for _, s := range append(sessionNames("session", 10), "ghost-session") {
		code, body := api.Do(t, "POST", "/v1/logouts", bearer, []byte(`{"session":"`+s+`"}`))
		var tk tasks.Task
		if code != http.StatusAccepted || json.Unmarshal(body, &tk) != nil {
			t.Fatalf("POST /v1/logouts %s: %d %s", s, code, body)
		}
		ids = append(ids, tk.ID)
	}
	code, body := api.Do(t, "POST", "/v1/batches", bearer, []byte(`{"sessions":["session-0011","session-0012","session-0013","session-0014","session-0015"]}`))
	if code != http.StatusAccepted {
		t.Fatalf("POST /v1/batches: %d %s", code, body)
	}
	// A legitimate request carrying hostile extras outside the body: ignored.
	req, _ := http.NewRequest("POST", api.URL+"/v1/logouts?base_url="+evil.URL+"&url="+evil.URL, strings.NewReader(`{"session":"session-0020"}`))
	req.Header.Set("Authorization", bearer)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Forwarded-Host", strings.TrimPrefix(evil.URL, "http://"))
	req.Header.Set("X-Waha-Base-Url", evil.URL)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /v1/logouts with hostile query and headers: %v %v", err, resp)
	}
	resp.Body.Close()

	// Requests that try to name the WAHA address: refused, nothing enqueued.
	hostile := []struct{ path, body string }{
		{"/v1/logouts", `{"session":"evil-1","base_url":"` + evil.URL + `"}`},
		{"/v1/logouts", `{"session":"evil-2","url":"` + evil.URL + `"}`},
		{"/v1/logouts", `{"session":"evil-3","waha_base_url":"` + evil.URL + `"}`},
		{"/v1/logouts", `{"session":"evil-4","instance":"` + evil.URL + `"}`},
		{"/v1/logouts", `{"session":"evil-5","instance":"evil"}`},
		{"/v1/logouts", `{"session":"` + evil.URL + `/x"}`},
		{"/v1/batches", `{"sessions":["evil-6"],"base_url":"` + evil.URL + `"}`},
		{"/v1/batches", `{"all":true,"url":"` + evil.URL + `"}`},
		{"/v1/batches", `{"sessions":["evil-7"],"instance":"` + evil.URL + `"}`},
	}
	for _, h := range hostile {
		code, body := api.Do(t, "POST", h.path, bearer, []byte(h.body))
		if code != http.StatusBadRequest {
			t.Errorf("POST %s %s: %d %s, want 400", h.path, h.body, code, body)
		}
	}

	insp := r.inspector(r.ns)
	all := func() []*tasks.Task {
		var out []*tasks.Task
		for _, rc := range records(t, r.rdb, r.ns) {
			tk, err := insp.Task(context.Background(), rc.ID)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, tk)
		}
		return out
	}
	Eventually(t, 90*time.Second, 200*time.Millisecond, func() (bool, string) {
		ts := all()
		for _, tk := range ts {
			if !tk.State.Final() {
				return false, fmt.Sprintf("task %s (%s) is %s", tk.ID, tk.Session, tk.State)
			}
		}
		return len(ts) == 17, fmt.Sprintf("%d tasks, want 17", len(ts))
	})
	ts := all()
	outcomes := map[string]int{}
	for _, tk := range ts {
		if tk.Outcome != nil {
			outcomes[string(*tk.Outcome)]++
		}
		if strings.HasPrefix(tk.Session, "evil") {
			t.Errorf("a task was enqueued from a refused request: %+v", tk)
		}
	}
	t.Logf("outcomes %v", outcomes)
	for _, o := range []tasks.Outcome{tasks.OutcomeLoggedOut, tasks.OutcomeNotFound, tasks.OutcomeAuthFailed, tasks.OutcomeRejected} {
		if outcomes[string(o)] == 0 {
			t.Errorf("no task ended %s: the secret hunt below would miss that path; outcomes %v", o, outcomes)
		}
	}
	if valCalls.Load() == 0 {
		t.Errorf("the validation service was never called")
	}
	if evilHits.Load() != 0 {
		t.Errorf("the address named in requests got %d calls", evilHits.Load())
	}
	if r.fake.Stats().LogoutCalls["session-0020"] == 0 {
		t.Errorf("session-0020 was not logged out at the configured WAHA")
	}

	// Every task as the API and the CLI show it, the dead-letter list, then
	// every log line and every Redis key and value.
	var haystacks []struct{ where, text string }
	add := func(where, text string) { haystacks = append(haystacks, struct{ where, text string }{where, text}) }
	for _, tk := range ts {
		code, body := api.Do(t, "GET", "/v1/tasks/"+tk.ID, bearer, nil)
		if code != 200 {
			t.Errorf("GET /v1/tasks/%s: %d", tk.ID, code)
		}
		add("GET /v1/tasks/"+tk.ID, string(body))
		out, errOut, _ := CLI(t, r.bins, env, 30*time.Second, "status", tk.ID, "--json")
		add("wahaq status --json "+tk.ID, out+errOut)
	}
	code, body = api.Do(t, "GET", "/v1/dlq", bearer, nil)
	add("GET /v1/dlq", string(body))
	if code != 200 || !strings.Contains(string(body), "auth_failed") {
		t.Errorf("GET /v1/dlq: %d %s", code, body)
	}
	out, errOut, _ := CLI(t, r.bins, env, 30*time.Second, "dlq", "list", "--json")
	add("wahaq dlq list --json", out+errOut)
	out, errOut, _ = CLI(t, r.bins, env, 30*time.Second, "dlq", "list")
	add("wahaq dlq list", out+errOut)
	_, body = api.Do(t, "GET", "/metrics", "", nil)
	add("API /metrics", string(body))
	worker.Signal(syscall.SIGTERM)
	api.Proc.Signal(syscall.SIGTERM)
	worker.Wait(20 * time.Second)
	api.Proc.Wait(20 * time.Second)
	add("worker log", worker.Log())
	add("API log", api.Proc.Log())
	if lv := LogLines(worker.Log()); lv["info"]+lv["warn"]+lv["debug"] == 0 {
		t.Errorf("the worker's log has no lines: %v", lv)
	}
	if !strings.Contains(worker.Log(), "task dead-lettered") || !strings.Contains(api.Proc.Log(), "http request") {
		t.Errorf("the logs were not captured as expected")
	}
	keys := ScanAll(t, r.rdb)
	if len(keys) == 0 {
		t.Fatalf("Redis is empty")
	}
	for k, v := range keys {
		add("redis key", k)
		add("redis value of "+k, v)
	}
	// The hunt looks in the right places: what is not secret is there.
	for where, text := range map[string]string{"worker log": worker.Log(), "API log": api.Proc.Log(), "Redis": fmt.Sprint(keys)} {
		if !strings.Contains(text, "session-0003") && !strings.Contains(text, "/v1/logouts") {
			t.Errorf("%s shows neither the session names nor the routes: is it captured?", where)
		}
	}
	found := 0
	for _, h := range haystacks {
		for name, s := range map[string]string{"WAHA key": r.key, "validation key": valKey, "API token": token, "second API token": token2} {
			if strings.Contains(h.text, s) {
				found++
				t.Errorf("the %s appears in %s", name, h.where)
			}
		}
	}

	// Access: every /v1 route of the OpenAPI document refuses requests
	// without a valid token; health, readiness, metrics and the document are
	// open.
	api = StartAPI(t, r.bins, r.dir, "api-2", env) // the first one was stopped above
	code, body = api.Do(t, "GET", "/openapi.json", "", nil)
	var doc struct {
		Paths map[string]map[string]any `json:"paths"`
	}
	if code != 200 || json.Unmarshal(body, &doc) != nil || len(doc.Paths) == 0 {
		t.Fatalf("GET /openapi.json: %d", code)
	}
	open := []string{"/healthz", "/readyz", "/metrics", "/openapi.json"}
	badAuth := []string{"", "Bearer", "Bearer ", "Bearer wrong", "Bearer " + token[:len(token)-1], "Bearer " + token + "x",
		"Bearer " + strings.ToUpper(token), "Basic " + token, token, "Token " + token, "Bearer  " + valKey, "Bearer " + r.key}
	checked := 0
	paths := make([]string, 0, len(doc.Paths))
	for p := range doc.Paths {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		for method := range doc.Paths[p] {
			method = strings.ToUpper(method)
			if !slices.Contains([]string{"GET", "POST", "PUT", "PATCH", "DELETE"}, method) {
				continue
			}
			path := strings.ReplaceAll(p, "{id}", ids[0])
			var body []byte
			if method == "POST" || method == "DELETE" {
				body = []byte(`{}`)
			}
			if slices.Contains(open, p) {
				if code, _ := api.Do(t, method, path, "", nil); code != 200 {
					t.Errorf("open route %s %s answered %d without a token", method, p, code)
				}
				continue
			}
			if !strings.HasPrefix(p, "/v1/") {
				t.Errorf("route %s %s is neither /v1 nor a documented open route", method, p)
			}
			for _, a := range badAuth {
				// each from a loopback address of its own: serve answers
				// 429 to an address past its wrong-token burst
				code, _ := api.DoFrom(t, loopback(1, checked), method, path, a, body)
				checked++
				if code != http.StatusUnauthorized {
					t.Errorf("%s %s with Authorization %q answered %d, want 401", method, p, a, code)
				}
			}
			if strings.HasPrefix(p, "/v1/waha/") {
				// WAHA's webhook target takes an HMAC signature, never a
				// bearer token: the right token is refused there too
				continue
			}
			if code, _ := api.DoFrom(t, loopback(2, checked), method, path, "Bearer "+token2, body); code == http.StatusUnauthorized || code == http.StatusTooManyRequests {
				t.Errorf("%s %s refused the second configured token", method, p)
			}
		}
	}
	if checked == 0 {
		t.Errorf("no /v1 route found in /openapi.json")
	}
	Report(t, Figures{Scenario: "secrets_and_access", Tasks: len(ts), Lost: 0, Duplicates: 0, Dead: outcomes["auth_failed"] + outcomes["rejected"],
		Extra: fmt.Sprintf("secrets_found=%d haystacks=%d redis_keys=%d unauthorized_requests_refused=%d hostile_requests_refused=%d evil_calls=%d",
			found, len(haystacks), len(keys), checked, len(hostile), evilHits.Load())})
}

// loopback returns the i-th address of 127.block.0.0/16, a client address
// of its own for request i.
func loopback(block byte, i int) net.IP { return net.IPv4(127, block, byte(i/250), byte(i%250+1)) }

// TestAPITokenComparedInConstantTime reads the API's source: bearer tokens are
// compared with crypto/subtle.ConstantTimeCompare, and no token is compared
// with == or != (other than against "" or nil). A timing measurement
// across processes would be too noisy to mean anything on a shared machine.
func TestAPITokenComparedInConstantTime(t *testing.T) {
	// the API authenticates through internal/access, which holds the
	// tokens' hashes
	files, err := filepath.Glob("../api/*.go")
	more, err2 := filepath.Glob("../access/*.go")
	files = append(files, more...)
	if err != nil || err2 != nil || len(files) == 0 {
		t.Fatalf("no API source found: %v %v", err, err2)
	}
	fset := token.NewFileSet()
	constantTime := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CallExpr:
				if sel, ok := n.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "ConstantTimeCompare" {
					if id, ok := sel.X.(*ast.Ident); ok && id.Name == "subtle" {
						constantTime++
					}
				}
			case *ast.BinaryExpr:
				if n.Op != token.EQL && n.Op != token.NEQ {
					return true
				}
				if isEmptyString(n.X) || isEmptyString(n.Y) {
					return true
				}
				if mentionsToken(n.X) || mentionsToken(n.Y) {
					t.Errorf("%s: a token is compared with %s, not in constant time", fset.Position(n.Pos()), n.Op)
				}
			}
			return true
		})
	}
	if constantTime == 0 {
		t.Errorf("packages api and access never call subtle.ConstantTimeCompare")
	}
}

func isEmptyString(e ast.Expr) bool {
	if id, ok := e.(*ast.Ident); ok && id.Name == "nil" {
		return true
	}
	l, ok := e.(*ast.BasicLit)
	return ok && (l.Value == `""` || l.Value == "``")
}

func mentionsToken(e ast.Expr) bool {
	var name string
	switch v := e.(type) {
	case *ast.Ident:
		name = v.Name
	case *ast.SelectorExpr:
		name = v.Sel.Name
	case *ast.IndexExpr:
		return mentionsToken(v.X)
	default:
		return false
	}
	return strings.Contains(strings.ToLower(name), "token")
}
