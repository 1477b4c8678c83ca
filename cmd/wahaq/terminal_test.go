package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/tasks"
)

// hostile is a WAHA message that would recolour the terminal, set its
// title, overwrite the line and reverse the text, printed raw.
const hostile = "bad \x1b[31mred\x1b[0m \x1b]0;owned\x07 \r\u202eesrever\u202c \u009b2J end"

func requireTerminalSafe(t *testing.T, out string) {
	t.Helper()
	for _, c := range []string{"\x1b", "\x07", "\r", "\u202e", "\u202c", "\u009b"} {
		require.NotContains(t, out, c, "control %q in %q", c, out)
	}
	require.Contains(t, out, "bad [31mred[0m", "the printable text stays")
}

func TestHumanOutputStripsControlCharacters(t *testing.T) {
	t.Parallel()
	o := tasks.OutcomeRejected
	msg := hostile
	task := &tasks.Task{ID: "0b8e4f6a-5d0e-4a7c-9a57-2f1f0b2f7d11", Instance: "default", Session: "s", State: tasks.StateDead,
		Outcome: &o, LastError: &msg, Result: &tasks.Result{Status: "error", Message: hostile, HTTPStatus: 422}}

	var b bytes.Buffer
	require.NoError(t, printTask(&b, task, false))
	requireTerminalSafe(t, b.String())
	require.Equal(t, 2, strings.Count(b.String(), "bad [31mred"), "last error and result both shown")

	b.Reset()
	done := tasks.OutcomeLoggedOut
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	require.NoError(t, printTask(&b, &tasks.Task{ID: "x", State: tasks.StateCompleted, Outcome: &done,
		Confirmed: &tasks.Confirmation{Status: "SCAN_QR_CODE", At: at}}, false))
	require.Contains(t, b.String(), "confirmed:  SCAN_QR_CODE at 2030-01-02T03:04:05Z (WAHA's event)")

	b.Reset()
	require.NoError(t, printDeadLetters(&b, &tasks.DeadLetterPage{Tasks: []*tasks.Task{task}, Total: 1, NextOffset: -1}, 0))
	requireTerminalSafe(t, b.String())

	b.Reset()
	require.NoError(t, printTaskPage(&b, &tasks.TaskPage{Tasks: []*tasks.Task{task}}))
	requireTerminalSafe(t, b.String())

	b.Reset()
	require.NoError(t, printBatch(&b, &tasks.Batch{BatchID: "b", Instance: "default", Total: 1, Done: true, Error: hostile,
		Counts: map[tasks.State]int64{}, Outcomes: map[tasks.Outcome]int64{}}, false))
	requireTerminalSafe(t, b.String())

	// JSON output keeps the text exactly; its encoder escapes the controls.
	b.Reset()
	require.NoError(t, printTask(&b, task, true))
	require.NotContains(t, b.String(), "\x1b")
	require.Contains(t, b.String(), `\u001b[31m`)
}

func TestTerminalSafe(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"plain text":       "plain text",
		"two\nlines\ttab":  "two\nlines\ttab",
		"a\x00b\x7fc\x1bd": "abcd",
		"é ünïcode ✓":      "é ünïcode ✓",
		"\u2066iso\u2069":  "iso",
		"cr\roverwrite":    "croverwrite",
		"\x9b31m c1 csi":   "31m c1 csi",
		"":                 "",
	} {
		require.Equal(t, want, terminalSafe(in), "%q", in)
	}
}
