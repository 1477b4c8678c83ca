package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wahaq/wahaq/tasks"
)

func TestTable(t *testing.T) {
	t.Parallel()
	var out, errb bytes.Buffer
	if err := Run(context.Background(), Options{Sessions: DefaultSessions, Latency: 20 * time.Millisecond}, &out, &errb); err != nil {
		t.Fatalf("Run: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errb.String())
	}
	all := out.String() + errb.String()
	if !strings.Contains(all, Warning) {
		t.Errorf("the durability warning is missing:\n%s", all)
	}
	if first, _, _ := strings.Cut(out.String(), "\n"); first != Warning {
		t.Errorf("first line = %q, want the durability warning", first)
	}
	table := tableRows(t, out.String())
	for _, o := range demoOutcomes() {
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

// jsonSessions is TestJSON's number of sessions on the default server.
const jsonSessions = 12

func TestJSON(t *testing.T) {
	t.Parallel()
	var out, errb bytes.Buffer
	if err := Run(context.Background(), Options{Sessions: jsonSessions, Latency: 20 * time.Millisecond, JSON: true}, &out, &errb); err != nil {
		t.Fatalf("Run: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errb.String())
	}
	if !strings.Contains(errb.String(), Warning) {
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
	f := faultySessions(jsonSessions)
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
		case task.Instance == "default" && task.Session == f.flaky: // 503 twice, then works
			if *task.Outcome != tasks.OutcomeLoggedOut || task.Attempts != 3 {
				t.Errorf("flaky session: outcome %s after %d attempts, want logged_out after 3", *task.Outcome, task.Attempts)
			}
		case task.Instance == "default" && task.Session == f.limited: // 429 Retry-After 1s once
			if *task.Outcome != tasks.OutcomeLoggedOut || task.Attempts != 2 {
				t.Errorf("429 session: outcome %s after %d attempts, want logged_out after 2", *task.Outcome, task.Attempts)
			}
		case task.Instance == "default" && task.Session == f.always503:
			if *task.Outcome != tasks.OutcomeRetriesExhausted || task.Attempts != MaxRetries+1 {
				t.Errorf("always-503 session: outcome %s after %d attempts, want retries_exhausted after %d", *task.Outcome, task.Attempts, MaxRetries+1)
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
	for _, o := range demoOutcomes() {
		if seen[o] == 0 {
			t.Errorf("no task with outcome %s", o)
		}
	}
}

// demoOutcomes is every outcome the demo's scenario produces: all but
// archived, which only an operator's use of asynq's own tools causes.
func demoOutcomes() []tasks.Outcome {
	var out []tasks.Outcome
	for _, o := range tasks.AllOutcomes {
		if o != tasks.OutcomeArchived {
			out = append(out, o)
		}
	}
	return out
}
