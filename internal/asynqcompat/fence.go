package asynqcompat

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"testing"
)

// Module is asynq's module path.
const Module = "github.com/hibiken/asynq"

// Version is the asynq release whose internals this package knows. The
// fast path runs only on a binary built with it.
const Version = "v0.26.0"

// BuiltVersion returns the version of asynq the running binary was built
// with, as its build info says (a replace directive's version when there
// is one); "" when the build info does not name asynq.
//
// A test binary's build info lists no modules: there it returns the
// version this module's go.mod requires, which TestGoModRequiresVersion
// holds equal to Version.
func BuiltVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if testing.Testing() && (!ok || len(bi.Deps) == 0) {
		return Version
	}
	if !ok {
		return ""
	}
	for _, d := range bi.Deps {
		if d.Path != Module {
			continue
		}
		if r := d.Replace; r != nil {
			// what runs is the replacement: a directory has no version, a
			// fork is not asynq's release whatever its version says
			if r.Path != Module {
				return r.Path + "@" + r.Version
			}
			return r.Version
		}
		return d.Version
	}
	return ""
}

// Why the fast path is off (Status.Reason).
const (
	// ReasonOn: it is not off.
	ReasonOn = "on"
	// ReasonSwitch: the operator turned it off (WAHAQ_FAST_PATH=off).
	ReasonSwitch = "switch"
	// ReasonVersion: the binary was built with an asynq other than
	// Version.
	ReasonVersion = "asynq_version"
	// ReasonScript: the hook saw one of asynq's queue scripts whose
	// digest it does not know.
	ReasonScript = "asynq_script"
)

// Reasons lists every Status.Reason, for a metric's label values.
var Reasons = []string{ReasonOn, ReasonSwitch, ReasonVersion, ReasonScript}

// Status says whether the fast path runs and, when it does not, why.
type Status struct {
	// On is true while the fast path runs.
	On bool
	// Reason is one of the Reason constants; ReasonOn when On.
	Reason string
	// Detail says what differed, for a person: the asynq version found,
	// or the script and its digest.
	Detail string
}

// Fence decides whether the fast path (the Hook's answers, and the
// finish's settle of asynq's done) runs: only while the operator's switch
// is on, the binary was built with the asynq Version this package knows,
// and every one of asynq's queue scripts the hook has seen carries the
// digest of the source this package knows (scripts.go). A script the hook
// sees with another digest turns it off for good, at once: from then on
// every call goes to asynq untouched and wahaq's finish leaves asynq's
// done to asynq. Create it with NewFence.
type Fence struct {
	digests map[Op]string
	status  atomic.Pointer[Status]
	// doneSeen: asynq's done went through the hook with the known digest,
	// so a finish may do its work (Settle): until then the done asynq
	// runs is not known to be the one DoneLua copies.
	doneSeen atomic.Bool
	report   func(Status)
	mu       sync.Mutex
}

// Digest returns the SHA1 digest of a script's source in hex, as go-redis
// sends it with EVALSHA.
func Digest(src string) string {
	h := sha1.Sum([]byte(src))
	return hex.EncodeToString(h[:])
}

// NewFence returns a fence for a worker whose operator switch is on (or
// off), in a binary built with asynq version built (BuiltVersion).
// report, when not nil, is told the status now when the fast path is off,
// and once more if a script turns it off later.
func NewFence(on bool, built string, report func(Status)) *Fence {
	f := &Fence{
		digests: map[Op]string{
			OpDequeue: Digest(DequeueScript),
			OpForward: Digest(ForwardScript),
			OpDone:    Digest(DoneScript),
		},
		report: report,
	}
	s := Status{On: true, Reason: ReasonOn}
	switch {
	case !on:
		s = Status{Reason: ReasonSwitch, Detail: "turned off by the operator"}
	case built != Version:
		found := built
		if found == "" {
			found = "unknown (no build info, or a local replacement)"
		}
		s = Status{Reason: ReasonVersion, Detail: fmt.Sprintf("built with asynq %s; the fast path knows %s", found, Version)}
	}
	f.status.Store(&s)
	if !s.On && report != nil {
		report(s)
	}
	return f
}

// Status returns the fence's status now.
func (f *Fence) Status() Status { return *f.status.Load() }

// On reports whether the fast path runs.
func (f *Fence) On() bool { return f.status.Load().On }

// Settle reports whether wahaq's finish may do asynq's done of a
// completed task itself: the fast path runs and asynq's done has been
// seen with the digest this package knows.
func (f *Fence) Settle() bool { return f.On() && f.doneSeen.Load() }

// Expect replaces the digest the fence knows for op's script. Tests use it
// to play an asynq whose script differs from the one this package knows.
func (f *Fence) Expect(op Op, digest string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.digests[op] = digest
}

// known reports whether c's script is the one the fence knows; one that is
// not turns the fast path off.
func (f *Fence) known(c Call) bool {
	f.mu.Lock()
	want := f.digests[c.Op]
	f.mu.Unlock()
	if c.Digest == want {
		if c.Op == OpDone {
			f.doneSeen.Store(true)
		}
		return true
	}
	f.off(Status{Reason: ReasonScript, Detail: fmt.Sprintf("asynq's %s script has digest %s; the fast path knows %s (asynq %s)", c.Op, c.Digest, want, Version)})
	return false
}

// off turns the fast path off for good, reporting it the first time.
func (f *Fence) off(s Status) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.status.Load().On {
		return
	}
	f.status.Store(&s)
	if f.report != nil {
		f.report(s)
	}
}

// String names op as asynq's source does.
func (op Op) String() string {
	switch op {
	case OpDequeue:
		return "dequeue"
	case OpForward:
		return "forward"
	case OpDone:
		return "done"
	}
	return "none"
}
