// Package redistest gives tests a real Redis to talk to.
//
// It connects to the server named by WAHAQ_TEST_REDIS_URL (default
// redis://127.0.0.1:6379/0). When nothing answers there it starts a
// throw-away redis-server on a free loopback port for the whole test binary,
// so the suite passes on a fresh machine that only has the redis-server
// binary. Each test gets its own namespace, so parallel tests and parallel
// packages share one server without seeing each other's keys or queues.
package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

var (
	once    sync.Once
	baseURL string
	initErr error
)

// URL returns the URL of the shared test Redis, starting one if needed.
func URL(tb testing.TB) string {
	tb.Helper()
	once.Do(func() { baseURL, initErr = resolve() })
	if initErr != nil {
		tb.Fatalf("redistest: no Redis for tests: %v", initErr)
	}
	return baseURL
}

// Client returns a client for the shared test Redis, closed when the test ends.
func Client(tb testing.TB) *redis.Client {
	tb.Helper()
	opt, err := redis.ParseURL(URL(tb))
	if err != nil {
		tb.Fatalf("redistest: %v", err)
	}
	c := redis.NewClient(opt)
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// Namespace returns a namespace unique to this test, for wahaq's key prefix and
// queue names. Keys under it are deleted when the test ends.
func Namespace(tb testing.TB) string {
	tb.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	ns := "t" + hex.EncodeToString(b[:])
	c := Client(tb)
	tb.Cleanup(func() { cleanup(c, ns) })
	return ns
}

func cleanup(c *redis.Client, ns string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, pattern := range []string{"*{" + ns + ":*", "*" + ns + ":*"} {
		iter := c.Scan(ctx, 0, pattern, 1000).Iterator()
		var batch []string
		for iter.Next(ctx) {
			batch = append(batch, iter.Val())
			if len(batch) == 500 {
				c.Unlink(ctx, batch...)
				batch = batch[:0]
			}
		}
		if len(batch) > 0 {
			c.Unlink(ctx, batch...)
		}
	}
	// asynq registers every queue name in this global set.
	members, _ := c.SMembers(ctx, "asynq:queues").Result()
	for _, m := range members {
		if len(m) > len(ns) && m[:len(ns)+1] == ns+":" {
			c.SRem(ctx, "asynq:queues", m)
		}
	}
}

func resolve() (string, error) {
	url := os.Getenv("WAHAQ_TEST_REDIS_URL")
	if url == "" {
		url = "redis://127.0.0.1:6379/0"
	}
	if ping(url) == nil {
		return url, nil
	}
	if os.Getenv("WAHAQ_TEST_REDIS_URL") != "" {
		return "", fmt.Errorf("WAHAQ_TEST_REDIS_URL=%s does not answer", url)
	}
	addr, err := StartServer()
	if err != nil {
		return "", err
	}
	return "redis://" + addr + "/0", nil
}

func ping(url string) error {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return err
	}
	opt.DialTimeout = 500 * time.Millisecond
	c := redis.NewClient(opt)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return c.Ping(ctx).Err()
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// ServerBinary returns the path of redis-server, or an error that says how to
// get it.
func ServerBinary() (string, error) {
	p, err := exec.LookPath("redis-server")
	if err != nil {
		return "", fmt.Errorf("redis-server not found on PATH (install it: apt-get install -y redis-server): %w", err)
	}
	return p, nil
}

// StartServer starts a redis-server on a free loopback port for the life of
// the process (it dies with its parent) and returns its address. Extra
// arguments are passed to redis-server as config directives.
func StartServer(args ...string) (string, error) {
	bin, err := ServerBinary()
	if err != nil {
		return "", err
	}
	port, err := FreePort()
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "wahaq-redis-")
	if err != nil {
		return "", err
	}
	argv := append([]string{
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", dir,
		"--logfile", filepath.Join(dir, "redis.log"),
	}, args...)
	cmd := exec.Command(bin, argv...)
	setPdeathsig(cmd)
	if err := cmd.Start(); err != nil {
		return "", err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if ping("redis://"+addr) == nil {
			return addr, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	return "", fmt.Errorf("redis-server on %s did not answer within 10s", addr)
}

// MustURL is URL for code without a testing.TB (runnable examples): it
// panics when no Redis can be had.
func MustURL() string {
	once.Do(func() { baseURL, initErr = resolve() })
	if initErr != nil {
		panic("redistest: no Redis for tests: " + initErr.Error())
	}
	return baseURL
}

// Cleanup deletes every key of a namespace (what Namespace registers for a
// test), for code without a testing.TB.
func Cleanup(c *redis.Client, ns string) { cleanup(c, ns) }
