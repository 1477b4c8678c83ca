// The peers a wahaq process talks to, each a real process or server the
// suite can break: redis-server, the fake WAHA (cmd/fakewaha) and a TCP
// proxy that plays "WAHA is down".

package faults

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wahaq/wahaq/internal/redistest"
	"github.com/wahaq/wahaq/wahaclient/wahafake"
)

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
