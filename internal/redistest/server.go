package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// This file is the one redis-server launcher of the test suites: the shared
// fallback server, the topologies of internal/redistopo and the crashable
// servers of internal/faults all start through Launch.

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

// ServerConfig says how Launch runs one redis-server (or Sentinel).
type ServerConfig struct {
	// Name names the process in errors. Defaults to "redis-server".
	Name string
	// Dir is its working directory, created if missing. Defaults to a new
	// temporary directory.
	Dir string
	// Addr is the loopback host:port to listen on, e.g. to restart a server
	// where it was. Defaults to a free port, picked a moment before use; a
	// port lost to another process in that moment is retried on a new one.
	Addr string
	// Args returns redis-server's arguments for the port and directory.
	// Defaults to DefaultArgs.
	Args func(port int, dir string) []string
	// LogFile is the log the Args write, relative to Dir, read by
	// Server.Log. Defaults to "redis.log".
	LogFile string
	// Timeout bounds the wait for the first PING answer (with the data
	// loaded). Defaults to 10s.
	Timeout time.Duration
}

// DefaultArgs runs a throw-away server: loopback only, no persistence, its
// log in dir/redis.log.
func DefaultArgs(port int, dir string) []string {
	return []string{
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", dir,
		"--logfile", filepath.Join(dir, "redis.log"),
	}
}

// Server is a redis-server process started by Launch.
type Server struct {
	// Addr is its loopback address, host:port.
	Addr string
	// Dir is its working directory (config, data, logs).
	Dir string

	logPath string
	cmd     *exec.Cmd
	exited  chan struct{} // closed once the process has been reaped
}

// Launch starts a redis-server as cfg says and waits until it answers PING.
// The process dies with the test binary (KillWithParent); call Kill to stop
// it before.
func Launch(cfg ServerConfig) (*Server, error) {
	bin, err := ServerBinary()
	if err != nil {
		return nil, err
	}
	if cfg.Name == "" {
		cfg.Name = "redis-server"
	}
	if cfg.Args == nil {
		cfg.Args = DefaultArgs
	}
	if cfg.LogFile == "" {
		cfg.LogFile = "redis.log"
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Dir == "" {
		if cfg.Dir, err = os.MkdirTemp("", "wahaq-redis-"); err != nil {
			return nil, err
		}
	} else if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, err
	}
	var lastErr error
	for try := 0; try < 3; try++ {
		addr := cfg.Addr
		if addr == "" {
			port, err := FreePort()
			if err != nil {
				return nil, err
			}
			addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		} else if try > 0 {
			time.Sleep(200 * time.Millisecond) // a fixed port may linger a moment after a kill
		}
		_, portStr, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		port, err := strconv.Atoi(portStr)
		if err != nil {
			return nil, fmt.Errorf("%s: bad port in %q", cfg.Name, addr)
		}
		cmd := exec.Command(bin, cfg.Args(port, cfg.Dir)...)
		cmd.Dir = cfg.Dir
		KillWithParent(cmd)
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("start %s: %w", cfg.Name, err)
		}
		s := &Server{Addr: addr, Dir: cfg.Dir, logPath: filepath.Join(cfg.Dir, cfg.LogFile), cmd: cmd, exited: make(chan struct{})}
		go func() {
			// The one Wait: reaps the process however it ends.
			_ = cmd.Wait()
			close(s.exited)
		}()
		if lastErr = waitPing(addr, s.exited, cfg.Timeout); lastErr == nil {
			return s, nil
		}
		lastErr = fmt.Errorf("%s on %s: %w\n%s", cfg.Name, addr, lastErr, s.Log())
		s.Kill()
	}
	return nil, fmt.Errorf("cannot start %s: %w", cfg.Name, lastErr)
}

// LaunchT is Launch for a test: it fails the test if the server cannot
// start, kills it when the test ends and, if the test failed, logs the tail
// of its log.
func LaunchT(t testing.TB, cfg ServerConfig) *Server {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	s, err := Launch(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Kill()
		if t.Failed() {
			t.Logf("---- tail of %s ----\n%s", s.logPath, s.Log())
		}
	})
	return s
}

// StartServer starts a throw-away redis-server (DefaultArgs) on a free
// loopback port for the life of the process (it dies with its parent) and
// returns its address. Extra arguments are passed to redis-server as config
// directives.
func StartServer(args ...string) (string, error) {
	s, err := Launch(ServerConfig{Args: func(port int, dir string) []string {
		return append(DefaultArgs(port, dir), args...)
	}})
	if err != nil {
		return "", err
	}
	return s.Addr, nil
}

// Alive reports whether the process is still running.
func (s *Server) Alive() bool {
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// Kill kills the process with SIGKILL, as a crash would (no shutdown, no
// final save), and waits for it. Killing a server twice is harmless.
func (s *Server) Kill() {
	if !s.Alive() {
		return
	}
	_ = s.cmd.Process.Kill()
	select {
	case <-s.exited:
	case <-time.After(5 * time.Second):
	}
}

// Log returns the last 30 lines of the server's log file, for failure
// messages.
func (s *Server) Log() string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return strings.Join(lines, "\n")
}

// waitPing waits until addr answers PING, the process exits, or timeout.
func waitPing(addr string, exited <-chan struct{}, timeout time.Duration) error {
	c := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: 200 * time.Millisecond, MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return errors.New("process exited")
		default:
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(30 * time.Millisecond)
	}
}

// Pid is the server's process id.
func (s *Server) Pid() int { return s.cmd.Process.Pid }
