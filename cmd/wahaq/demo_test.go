package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/wahaq/wahaq/internal/demo"
	"github.com/wahaq/wahaq/tasks"
)

// The demo must need nothing: no Redis, no WAHA, whatever the settings say.
func demoIsolate(t *testing.T) {
	t.Setenv("REDIS_URL", "redis://127.0.0.1:1/0")
	t.Setenv("WAHA_BASE_URL", "http://127.0.0.1:1")
	t.Setenv("WAHAQ_INSTANCES", "/nonexistent/instances.yaml")
}

// The command passes its flags to the demo and exits 0; what the demo
// shows is tested in internal/demo.
func TestDemoCommand(t *testing.T) {
	demoIsolate(t)
	var out, errb bytes.Buffer
	code := run([]string{"demo", "--latency", "20ms", "--sessions", "12", "--json"}, &out, &errb)
	if code != exitOK {
		t.Fatalf("exit code %d, want 0\nstdout:\n%s\nstderr:\n%s", code, out.String(), errb.String())
	}
	if first, _, _ := strings.Cut(errb.String(), "\n"); first != demo.Warning {
		t.Errorf("first line of stderr = %q, want the durability warning", first)
	}
	var got []tasks.Task
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("stdout is not a JSON array of tasks: %v\n%s", err, out.String())
	}
	// 12 sessions + 3 ghosts on default, 2 on core, 2 on locked, 3 on partner.
	if len(got) != 22 {
		t.Errorf("%d tasks, want 22", len(got))
	}
}

func TestDemoBadUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"demo", "--sessions", "3"}, &out, &errb); code != exitUsage {
		t.Errorf("--sessions 3: exit code %d, want %d", code, exitUsage)
	}
}
