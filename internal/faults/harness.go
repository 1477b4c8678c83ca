// Package faults is wahaq's fault suite: process-level tests that run real
// `wahaq` worker and API processes against a real redis-server and the fake
// WAHA (cmd/fakewaha), break one of them on purpose (kill -9 a worker,
// restart Redis, take WAHA down, revoke the key, SIGTERM a worker) and check
// that no task is lost. The tests live in faults_test.go; the harness is
// beside them: building the binaries and the figures each scenario prints
// (harness.go), starting and killing processes (proc.go), the peers wahaq
// talks to, including a TCP proxy that can play "WAHA is down" (peers.go),
// and wahaq's own processes (wahaq.go).
//
// The suite runs with the default `go test ./...` (skip it with -short).
// WAHAQ_FAULTS_FULL=1 runs the long variants (WAHA down 30 s, 25,000 auth
// failures); WAHAQ_FAULTS_REPORT=FILE appends each scenario's figures line to
// FILE. See docs/reliability.md.
package faults

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
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
