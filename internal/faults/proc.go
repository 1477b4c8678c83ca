// Processes started by the fault suite: any binary, with its log in a file,
// killed with the test (and with the test binary, on Linux).

package faults

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wahaq/wahaq/internal/redistest"
)

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
