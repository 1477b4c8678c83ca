// Package faults is wahaq's fault suite: process-level tests that run real
// `wahaq` worker and API processes against a real redis-server and the fake
// WAHA (cmd/fakewaha), break one of them on purpose (kill -9 a worker,
// restart Redis, take WAHA down, revoke the key, SIGTERM a worker) and check
// that no task is lost. The tests live in faults_test.go; this file is their
// harness: building the binaries, starting and killing processes, a TCP proxy
// that can play "WAHA is down", and the figures each scenario prints.
//
// The suite runs with the default `go test ./...` (skip it with -short).
// WAHAQ_FAULTS_FULL=1 runs the long variants (WAHA down 30 s, 25,000 auth
// failures); WAHAQ_FAULTS_REPORT=FILE appends each scenario's figures line to
// FILE. See docs/reliability.md.
package faults

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wahaq/wahaq/internal/redistest"
	"github.com/wahaq/wahaq/wahaclient/wahafake"
)

// Full reports whether the long variants were asked for (WAHAQ_FAULTS_FULL=1).
func Full() bool { return os.Getenv("WAHAQ_FAULTS_FULL") == "1" }

// Bins are the binaries under test, built once per test binary.
type Bins struct {
	Wahaq, FakeWaha string
}

// Build compiles cmd/wahaq and cmd/fakewaha into dir with `go build`.
func Build(dir string) (Bins, error) {
	b := Bins{Wahaq: filepath.Join(dir, "wahaq"), FakeWaha: filepath.Join(dir, "fakewaha")}
	for pkg, out := range map[string]string{
		"github.com/wahaq/wahaq/cmd/wahaq":    b.Wahaq,
		"github.com/wahaq/wahaq/cmd/fakewaha": b.FakeWaha,
	} {
		cmd := exec.Command("go", "build", "-o", out, pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if outp, err := cmd.CombinedOutput(); err != nil {
			return b, fmt.Errorf("go build %s: %v\n%s", pkg, err, outp)
		}
	}
	return b, nil
}

// ---- figures ----

// Figures are what each scenario reports.
type Figures struct {
	Scenario   string
	Tasks      int
	Lost       int
	Duplicates int
	Dead       int
	Recover    time.Duration
	Extra      string
}

// Line renders the figures line: FAULTS scenario=... tasks=N lost=N
// duplicates=N dead=N recover=Xs.
func (f Figures) Line() string {
	s := fmt.Sprintf("FAULTS scenario=%s tasks=%d lost=%d duplicates=%d dead=%d recover=%.1fs",
		f.Scenario, f.Tasks, f.Lost, f.Duplicates, f.Dead, f.Recover.Seconds())
	if f.Extra != "" {
		s += " " + f.Extra
	}
	return s
}

var reportMu sync.Mutex

// Report prints the figures line to stdout (shown by go test -v) and appends
// it to $WAHAQ_FAULTS_REPORT when set.
func Report(t testing.TB, f Figures) {
	t.Helper()
	line := f.Line()
	fmt.Println(line)
	t.Log(line)
	path := os.Getenv("WAHAQ_FAULTS_REPORT")
	if path == "" {
		return
	}
	reportMu.Lock()
	defer reportMu.Unlock()
	fh, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Errorf("WAHAQ_FAULTS_REPORT: %v", err)
		return
	}
	defer fh.Close()
	_, _ = fmt.Fprintln(fh, line)
}

// ---- processes ----

// Proc is a child process whose stdout and stderr go to a log file.
type Proc struct {
	Name    string
	Cmd     *exec.Cmd
	LogPath string
	done    chan struct{}
	state   *os.ProcessState
}

// baseEnv is the environment every child starts from: nothing of the test
// runner's own settings leaks in (no REDIS_URL, no WAHA_API_KEY).
func baseEnv() []string {
	var env []string
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "LANG"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// StartProc starts bin with args and env (on top of a minimal base), logging
// to dir/name.log. The process is killed when the test ends, pass or fail,
// and on failure the tail of its log is printed.
func StartProc(t testing.TB, dir, name, bin string, args, env []string) *Proc {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(baseEnv(), env...)
	cmd.Stdout, cmd.Stderr = lf, lf
	redistest.KillWithParent(cmd)
	if err := cmd.Start(); err != nil {
		lf.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	p := &Proc{Name: name, Cmd: cmd, LogPath: logPath, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		p.state = cmd.ProcessState
		lf.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("---- tail of %s ----\n%s", name, tail(logPath, 40))
		}
	})
	return p
}

func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Alive reports whether the process is still running.
func (p *Proc) Alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Signal sends sig to the process.
func (p *Proc) Signal(sig os.Signal) error { return p.Cmd.Process.Signal(sig) }

// Kill sends SIGKILL and waits for the process to be gone.
func (p *Proc) Kill() {
	if p.Alive() {
		_ = p.Cmd.Process.Kill()
	}
	<-p.done
}

// Wait waits up to d for the process to exit and returns its exit code.
func (p *Proc) Wait(d time.Duration) (int, bool) {
	select {
	case <-p.done:
		return p.state.ExitCode(), true
	case <-time.After(d):
		return -1, false
	}
}

// Log returns the process's log so far.
func (p *Proc) Log() string {
	b, _ := os.ReadFile(p.LogPath)
	return string(b)
}

// WaitLog waits until the log contains s.
func (p *Proc) WaitLog(t testing.TB, s string, d time.Duration) {
	t.Helper()
	Eventually(t, d, 50*time.Millisecond, func() (bool, string) {
		if !p.Alive() {
			t.Fatalf("%s exited before logging %q:\n%s", p.Name, s, tail(p.LogPath, 30))
		}
		return strings.Contains(p.Log(), s), fmt.Sprintf("%s has not logged %q", p.Name, s)
	})
}

// Eventually polls cond every `every` until it holds, failing the test after d
// with cond's last explanation.
func Eventually(t testing.TB, d, every time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", d, why)
		}
		time.Sleep(every)
	}
}

// FreeAddr returns a free loopback address.
func FreeAddr(t testing.TB) string {
	t.Helper()
	port, err := redistest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return "127.0.0.1:" + strconv.Itoa(port)
}

// ---- Redis ----

// Redis is a redis-server of the test's own, with AOF on and fsync on every
// write, that can be killed and started again on the same port and
// directory (so it reloads its append-only file).
type Redis struct {
	t    testing.TB
	Addr string
	Dir  string
	proc *redistest.Server
	n    int
}

// StartRedis starts a redis-server in dir on a free port.
func StartRedis(t testing.TB, dir string) *Redis {
	t.Helper()
	r := &Redis{t: t, Addr: FreeAddr(t), Dir: filepath.Join(dir, "redis")}
	if err := os.MkdirAll(r.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	r.Start()
	return r
}

// Start (re)starts the server on r.Addr, through the shared launcher, and
// waits until it answers PING with its data loaded.
func (r *Redis) Start() {
	t := r.t
	t.Helper()
	r.n++
	logFile := fmt.Sprintf("redis-%d.log", r.n)
	r.proc = redistest.LaunchT(t, redistest.ServerConfig{
		Name: fmt.Sprintf("redis-server-%d", r.n), Dir: r.Dir, Addr: r.Addr, LogFile: logFile, Timeout: 15 * time.Second,
		Args: func(port int, dir string) []string {
			return []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
				"--appendonly", "yes", "--appendfsync", "always", "--save", "",
				"--logfile", filepath.Join(dir, logFile)}
		},
	})
}

// Kill kills the server with SIGKILL: no shutdown, no final save; only what
// the append-only file holds survives.
func (r *Redis) Kill() { r.proc.Kill() }

// URL is the server's redis:// URL.
func (r *Redis) URL() string { return "redis://" + r.Addr + "/0" }

// Client returns a client, closed when the test ends.
func (r *Redis) Client() *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: r.Addr})
	r.t.Cleanup(func() { _ = c.Close() })
	return c
}

// ---- fake WAHA ----

// Fake is a fakewaha process.
type Fake struct {
	t    testing.TB
	URL  string
	Proc *Proc
}

// StartFake starts fakewaha on a free port with extra flags and waits until
// its control API answers.
func StartFake(t testing.TB, bins Bins, dir, name string, flags ...string) *Fake {
	t.Helper()
	addr := FreeAddr(t)
	p := StartProc(t, dir, name, bins.FakeWaha, append([]string{"--addr", addr}, flags...), nil)
	f := &Fake{t: t, URL: "http://" + addr, Proc: p}
	Eventually(t, 15*time.Second, 50*time.Millisecond, func() (bool, string) {
		if !p.Alive() {
			t.Fatalf("fakewaha exited:\n%s", p.Log())
		}
		resp, err := http.Get(f.URL + "/_fake/stats")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == 200, resp.Status
	})
	return f
}

// Control POSTs a JSON body to the fake's control API (/_fake/<path>).
func (f *Fake) Control(path string, body any) {
	f.t.Helper()
	b, _ := json.Marshal(body)
	resp, err := http.Post(f.URL+"/_fake/"+path, "application/json", bytes.NewReader(b))
	if err != nil {
		f.t.Fatalf("fake control %s: %v", path, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		f.t.Fatalf("fake control %s %s: %s %s", path, b, resp.Status, msg)
	}
}

// FakeStats is GET /_fake/stats.
type FakeStats struct {
	// Stats is the body of the fake's GET /_fake/stats.
	wahafake.Stats
}

// Stats reads the fake's counters.
func (f *Fake) Stats() FakeStats {
	f.t.Helper()
	resp, err := http.Get(f.URL + "/_fake/stats")
	if err != nil {
		f.t.Fatalf("fake stats: %v", err)
	}
	defer resp.Body.Close()
	var s FakeStats
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		f.t.Fatalf("fake stats: %v", err)
	}
	return s
}

// Duplicates counts logout calls beyond one per session, and returns the
// sessions that got more than one.
func (s FakeStats) Duplicates() (int, []string) {
	n := 0
	var names []string
	for name, c := range s.LogoutCalls {
		if c > 1 {
			n += c - 1
			names = append(names, name)
		}
	}
	return n, names
}

// ---- TCP proxy ----

// Proxy forwards TCP connections to a target. Down closes its listener and
// every open connection (clients see "connection refused" and resets); Up
// listens again on the same address.
type Proxy struct {
	Addr   string
	target string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// StartProxy starts a proxy to target on a free loopback port, stopped when
// the test ends.
func StartProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	p := &Proxy{target: target, conns: map[net.Conn]struct{}{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.Addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(func() { p.Down(); p.wg.Wait() })
	return p
}

func (p *Proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.handle(c)
			}()
		}
	}()
}

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln == nil {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

func (p *Proxy) handle(c net.Conn) {
	if !p.track(c) {
		c.Close()
		return
	}
	defer p.untrack(c)
	u, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		return
	}
	if !p.track(u) {
		u.Close()
		return
	}
	defer p.untrack(u)
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(u, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, u); done <- struct{}{} }()
	<-done
}

// Down stops listening and drops every open connection.
func (p *Proxy) Down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln == nil {
		return
	}
	p.ln.Close()
	p.ln = nil
	for c := range p.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // a reset, as when a server dies
		}
		c.Close()
	}
}

// Up listens again on the same address.
func (p *Proxy) Up(t testing.TB) {
	t.Helper()
	var err error
	for i := 0; i < 50; i++ {
		var ln net.Listener
		if ln, err = net.Listen("tcp", p.Addr); err == nil {
			p.serve(ln)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("proxy cannot listen on %s again: %v", p.Addr, err)
}

// ---- wahaq processes ----

// Env is a set of wahaq settings for a child process.
type Env map[string]string

// List renders the settings as KEY=VALUE strings.
func (e Env) List() []string {
	out := make([]string, 0, len(e))
	for k, v := range e {
		out = append(out, k+"="+v)
	}
	return out
}

// With returns a copy of e with more settings.
func (e Env) With(kv ...string) Env {
	out := Env{}
	for k, v := range e {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

// StartWorker starts `wahaq worker` and waits until it has started.
func StartWorker(t testing.TB, bins Bins, dir, name string, env Env) *Proc {
	t.Helper()
	p := StartProc(t, dir, name, bins.Wahaq, []string{"worker", "--metrics-addr", FreeAddr(t)}, env.List())
	p.WaitLog(t, "worker started", 20*time.Second)
	return p
}

// API is a `wahaq serve` process.
type API struct {
	URL  string
	Proc *Proc
}

// StartAPI starts `wahaq serve` and waits until /healthz answers.
func StartAPI(t testing.TB, bins Bins, dir, name string, env Env) *API {
	t.Helper()
	addr := FreeAddr(t)
	p := StartProc(t, dir, name, bins.Wahaq, []string{"serve", "--addr", addr}, env.List())
	a := &API{URL: "http://" + addr, Proc: p}
	Eventually(t, 20*time.Second, 50*time.Millisecond, func() (bool, string) {
		if !p.Alive() {
			t.Fatalf("wahaq serve exited:\n%s", p.Log())
		}
		resp, err := http.Get(a.URL + "/healthz")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == 200, resp.Status
	})
	return a
}

// Do sends a request to the API with an optional bearer token and returns the
// status and body.
func (a *API) Do(t testing.TB, method, path, token string, body []byte) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, a.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// CLI runs a short wahaq command and returns its stdout, stderr and exit code.
func CLI(t testing.TB, bins Bins, env Env, timeout time.Duration, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bins.Wahaq, args...)
	cmd.Env = append(baseEnv(), env.List()...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("wahaq %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

// ScanAll returns every key of the Redis with its value rendered as text,
// whatever its type, for secret hunting.
func ScanAll(t testing.TB, c *redis.Client) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	iter := c.Scan(ctx, 0, "*", 1000).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		typ, err := c.Type(ctx, k).Result()
		if err != nil {
			continue
		}
		var v any
		switch typ {
		case "string":
			v, err = c.Get(ctx, k).Result()
		case "hash":
			v, err = c.HGetAll(ctx, k).Result()
		case "list":
			v, err = c.LRange(ctx, k, 0, -1).Result()
		case "set":
			v, err = c.SMembers(ctx, k).Result()
		case "zset":
			v, err = c.ZRangeWithScores(ctx, k, 0, -1).Result()
		case "stream":
			v, err = c.XRange(ctx, k, "-", "+").Result()
		default:
			v = "(type " + typ + ")"
		}
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			t.Fatalf("read %s: %v", k, err)
		}
		out[k] = fmt.Sprintf("%v", v)
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// LogLines counts the lines of a log at each zerolog level.
func LogLines(log string) map[string]int {
	out := map[string]int{}
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l struct {
			Level string `json:"level"`
		}
		if json.Unmarshal(sc.Bytes(), &l) == nil && l.Level != "" {
			out[l.Level]++
		}
	}
	return out
}
