package asynqcompat

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestGoModRequiresVersion: the module's go.mod requires the asynq release
// this package knows. A test binary's build info lists no modules, so
// BuiltVersion trusts go.mod there; this keeps that honest.
func TestGoModRequiresVersion(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../go.mod")
	require.NoError(t, err)
	m := regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(Module) + `\s+(\S+)`).FindSubmatch(b)
	require.NotNil(t, m, "go.mod requires asynq")
	require.Equal(t, Version, string(m[1]))
	require.NotContains(t, string(b), "replace "+Module, "a replaced asynq is not the release the fence knows")
	require.Equal(t, Version, BuiltVersion())
}

// TestFence covers each way the fast path is off, and that it is reported
// once.
func TestFence(t *testing.T) {
	t.Parallel()
	dequeue := Call{Op: OpDequeue, Digest: Digest(DequeueScript)}
	done := Call{Op: OpDone, Digest: Digest(DoneScript)}
	for _, tc := range []struct {
		name   string
		on     bool
		built  string
		calls  []Call
		want   Status
		known  []bool // what known says of each call
		settle bool
	}{
		{name: "on", on: true, built: Version, calls: []Call{dequeue}, known: []bool{true},
			want: Status{On: true, Reason: ReasonOn}},
		{name: "settles once asynq's done was seen", on: true, built: Version, calls: []Call{dequeue, done}, known: []bool{true, true},
			want: Status{On: true, Reason: ReasonOn}, settle: true},
		{name: "switch", on: false, built: Version,
			want: Status{Reason: ReasonSwitch, Detail: "turned off by the operator"}},
		{name: "another asynq", on: true, built: "v0.27.0",
			want: Status{Reason: ReasonVersion, Detail: "built with asynq v0.27.0; the fast path knows " + Version}},
		{name: "no build info", on: true, built: "",
			want: Status{Reason: ReasonVersion, Detail: "built with asynq unknown (no build info, or a local replacement); the fast path knows " + Version}},
		{name: "a dequeue script it does not know", on: true, built: Version,
			calls: []Call{{Op: OpDequeue, Digest: "abc"}, {Op: OpForward, Digest: "def"}, done}, known: []bool{false, false, true},
			want: Status{Reason: ReasonScript, Detail: "asynq's dequeue script has digest abc; the fast path knows " + Digest(DequeueScript) + " (asynq " + Version + ")"}},
		{name: "a done script it does not know", on: true, built: Version,
			calls: []Call{dequeue, {Op: OpDone, Digest: Digest(DequeueScript)}}, known: []bool{true, false},
			want: Status{Reason: ReasonScript, Detail: "asynq's done script has digest " + Digest(DequeueScript) + "; the fast path knows " + Digest(DoneScript) + " (asynq " + Version + ")"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var reports []Status
			f := NewFence(tc.on, tc.built, func(s Status) { reports = append(reports, s) })
			for i, c := range tc.calls {
				require.Equal(t, tc.known[i], f.known(c), "call %d", i)
			}
			require.Equal(t, tc.want, f.Status())
			require.Equal(t, tc.want.On, f.On())
			require.Equal(t, tc.settle, f.Settle())
			if tc.want.On {
				require.Empty(t, reports)
			} else {
				require.Equal(t, []Status{tc.want}, reports, "reported once")
			}
		})
	}
}

// TestFenceExpect: a swapped digest makes the script it names unknown.
func TestFenceExpect(t *testing.T) {
	t.Parallel()
	f := NewFence(true, Version, nil)
	f.Expect(OpForward, strings.Repeat("0", 40))
	require.True(t, f.known(Call{Op: OpDequeue, Digest: Digest(DequeueScript)}))
	require.False(t, f.known(Call{Op: OpForward, Digest: Digest(ForwardScript)}))
	require.Equal(t, ReasonScript, f.Status().Reason)
}
