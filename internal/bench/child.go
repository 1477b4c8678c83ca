package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/wahaq/wahaq/internal/config"
	"github.com/wahaq/wahaq/wahaclient"
	"github.com/wahaq/wahaq/worker"
)

// ---- the worker child process ----

// ChildEnv names the environment variable that carries a ChildSpec to a
// worker child process.
const ChildEnv = "WAHAQ_BENCH_CHILD"

// ChildSpec tells a child process what worker to run.
type ChildSpec struct {
	// Mode is "wahaq" (a wahaq worker, as `wahaq worker` builds it) or
	// "bare" (a bare asynq server with the bare handler).
	Mode        string `json:"mode"`
	RedisURL    string `json:"redis_url"`
	Namespace   string `json:"namespace,omitempty"`
	Queue       string `json:"queue,omitempty"`
	WahaURL     string `json:"waha_url"`
	Concurrency int    `json:"concurrency"`
}

// runChild starts a worker child, waits until done reports true, reads the
// child's peak RSS, and stops it.
func (e *env) runChild(ctx context.Context, spec ChildSpec, done func() (bool, error)) (int64, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, err
	}
	if spec.RedisURL == "" {
		return 0, errors.New("no Redis URL for the child process")
	}
	raw, _ := json.Marshal(spec)
	cmd := exec.CommandContext(ctx, exe, e.child...)
	cmd.Env = append(os.Environ(), ChildEnv+"="+string(raw))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe() // the child exits when this closes (parent gone)
	if err != nil {
		return 0, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer func() {
		_ = stdin.Close()
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		return 0, fmt.Errorf("child did not start (%q, %v)", line, err)
	}
	if err := waitUntil(ctx, 10*time.Minute, func() (bool, error) {
		time.Sleep(20 * time.Millisecond)
		return done()
	}); err != nil {
		return 0, err
	}
	return peakRSS(cmd.Process.Pid), nil
}

// peakRSS reads VmHWM (peak resident set size) of a process, in bytes; 0
// where /proc is not available.
func peakRSS(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// ChildMain runs a worker child from the ChildSpec in the environment until
// SIGTERM, SIGINT or the end of stdin, and returns the exit code. It prints
// "ready" once the worker runs.
func ChildMain() int {
	var spec ChildSpec
	if err := json.Unmarshal([]byte(os.Getenv(ChildEnv)), &spec); err != nil {
		fmt.Fprintf(os.Stderr, "bench child: bad %s: %v\n", ChildEnv, err)
		return 2
	}
	rdb, err := config.NewRedis(spec.RedisURL, nil)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench child: %v\n", err)
		return 2
	}
	defer rdb.Close()
	var stop func()
	switch spec.Mode {
	case "wahaq":
		// As `wahaq worker` builds it: JSON logs at info (written to
		// nowhere, but formatted), metrics registered, instance cap equal
		// to the concurrency so the cap does not throttle.
		log := zerolog.New(io.Discard).Level(zerolog.InfoLevel).With().Timestamp().Logger()
		w, err := worker.New(worker.Config{Redis: rdb, Namespace: spec.Namespace,
			Instances:   []worker.Instance{{Name: "default", BaseURL: spec.WahaURL, Concurrency: spec.Concurrency}},
			Concurrency: spec.Concurrency, Logger: &log, Registerer: prometheus.NewRegistry()})
		if err == nil {
			err = w.Start()
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench child: %v\n", err)
			return 1
		}
		stop = w.Shutdown
	case "bare":
		wc, err := wahaclient.New(wahaclient.Config{BaseURL: spec.WahaURL})
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench child: %v\n", err)
			return 1
		}
		srv := bareServer(rdb, spec.Queue, spec.Concurrency)
		if err := srv.Start(bareHandler(wc, true, nil)); err != nil {
			fmt.Fprintf(os.Stderr, "bench child: %v\n", err)
			return 1
		}
		stop = srv.Shutdown
	default:
		fmt.Fprintf(os.Stderr, "bench child: unknown mode %q\n", spec.Mode)
		return 2
	}
	fmt.Println("ready")
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	eof := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); close(eof) }()
	select {
	case <-sig:
	case <-eof:
	}
	stop()
	return 0
}
