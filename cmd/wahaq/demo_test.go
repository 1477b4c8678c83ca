package main

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/wahaq/wahaq/tasks"
)

// The demo must need nothing: no Redis, no WAHA, whatever the settings say.
func demoIsolate(t *testing.T) {
	t.Setenv("REDIS_URL", "redis://127.0.0.1:1/0")
	t.Setenv("WAHA_BASE_URL", "http://127.0.0.1:1")
	t.Setenv("WAHAQ_INSTANCES", "/nonexistent/instances.yaml")
}

func TestDemoTable(t *testing.T) {
	demoIsolate(t)
	var out, errb bytes.Buffer
	code := run([]string{"demo", "--latency", "20ms"}, &out, &errb)
	if code != exitOK {
		t.Fatalf("exit code %d, want 0\nstdout:\n%s\nstderr:\n%s", code, out.String(), errb.String())
	}
	all := out.String() + errb.String()
	if !strings.Contains(all, demoWarning) {
		t.Errorf("the durability warning is missing:\n%s", all)
	}
	if first, _, _ := strings.Cut(out.String(), "\n"); first != demoWarning {
		t.Errorf("first line = %q, want the durability warning", first)
	}
	table := tableRows(t, out.String())
	for _, o := range tasks.AllOutcomes {
		if table[string(o)] == 0 {
			t.Errorf("no row with outcome %s in the table:\n%s", o, out.String())
		}
	}
	for _, want := range []string{"Dead-letter queue: 6 tasks", "wahaq dlq list / wahaq dlq requeue --all"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

// tableRows counts the final table's rows by outcome.
func tableRows(t *testing.T, s string) map[string]int {
	t.Helper()
	_, rest, ok := strings.Cut(s, "INSTANCE  SESSION")
	if !ok {
		t.Fatalf("no table header in:\n%s", s)
	}
	rows := map[string]int{}
	lines := strings.Split(rest, "\n")[1:]
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			break
		}
		for _, f := range strings.Fields(l) {
			if slices.Contains(tasks.AllOutcomes, tasks.Outcome(f)) {
				rows[f]++
				break
			}
		}
	}
	return rows
}

func TestDemoJSON(t *testing.T) {
	demoIsolate(t)
	var out, errb bytes.Buffer
	code := run([]string{"demo", "--latency", "20ms", "--sessions", "12", "--json"}, &out, &errb)
	if code != exitOK {
		t.Fatalf("exit code %d, want 0\nstdout:\n%s\nstderr:\n%s", code, out.String(), errb.String())
	}
	if !strings.Contains(errb.String(), demoWarning) {
		t.Errorf("the durability warning is missing from stderr:\n%s", errb.String())
	}
	var got []tasks.Task
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("stdout is not a JSON array of tasks: %v\n%s", err, out.String())
	}
	// 12 sessions + 3 ghosts on default, 2 on core, 2 on locked, 3 on partner.
	if len(got) != 22 {
		t.Errorf("%d tasks, want 22", len(got))
	}
	seen := map[tasks.Outcome]int{}
	for _, task := range got {
		if !task.State.Final() || task.Outcome == nil {
			t.Errorf("task %s/%s is %s with outcome %v, want a final outcome", task.Instance, task.Session, task.State, task.Outcome)
			continue
		}
		seen[*task.Outcome]++
		if task.State != task.Outcome.State() {
			t.Errorf("task %s/%s: state %s with outcome %s", task.Instance, task.Session, task.State, *task.Outcome)
		}
		switch {
		case task.Instance == "default" && task.Session == demoSession(2): // 503 twice, then works
			if *task.Outcome != tasks.OutcomeLoggedOut || task.Attempts != 3 {
				t.Errorf("flaky session: outcome %s after %d attempts, want logged_out after 3", *task.Outcome, task.Attempts)
			}
		case task.Instance == "default" && task.Session == demoSession(4): // 429 Retry-After 1s once
			if *task.Outcome != tasks.OutcomeLoggedOut || task.Attempts != 2 {
				t.Errorf("429 session: outcome %s after %d attempts, want logged_out after 2", *task.Outcome, task.Attempts)
			}
		case task.Instance == "default" && task.Session == demoSession(6):
			if *task.Outcome != tasks.OutcomeRetriesExhausted || task.Attempts != demoMaxRetries+1 {
				t.Errorf("always-503 session: outcome %s after %d attempts, want retries_exhausted after %d", *task.Outcome, task.Attempts, demoMaxRetries+1)
			}
		case task.Instance == "core" && task.Session == "sales-bot":
			if *task.Outcome != tasks.OutcomeRejected {
				t.Errorf("core/sales-bot: outcome %s, want rejected", *task.Outcome)
			}
		case task.Instance == "partner" && task.Session == "partner-c":
			if *task.Outcome != tasks.OutcomeAuthFailed {
				t.Errorf("partner/partner-c: outcome %s, want auth_failed", *task.Outcome)
			}
		}
	}
	for _, o := range tasks.AllOutcomes {
		if seen[o] == 0 {
			t.Errorf("no task with outcome %s", o)
		}
	}
}

func TestDemoBadUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"demo", "--sessions", "3"}, &out, &errb); code != exitUsage {
		t.Errorf("--sessions 3: exit code %d, want %d", code, exitUsage)
	}
}
