package worker

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/asynqcompat"
	"github.com/wahaq/wahaq/internal/redistest"
	"github.com/wahaq/wahaq/internal/store"
	"github.com/wahaq/wahaq/tasks"
	"github.com/wahaq/wahaq/wahaclient/wahafake"
)

// logBuffer is a zerolog writer the worker's goroutines share.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestFastPathOff runs a teardown with the fast path off, by the
// operator's switch and by an asynq whose scripts are not the ones the
// fence knows (a swapped digest): every logout completes, with asynq doing
// its own dequeues and dones (no take ran, no done was answered by the
// hook); the worker says so once in its log and in
// wahaq_fast_path_enabled, with the reason.
func TestFastPathOff(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		mode    string
		swap    asynqcompat.Op // the script whose digest the fence expects wrongly
		reason  string
		logText string
	}{
		{"switch", FastPathOff, asynqcompat.OpNone, asynqcompat.ReasonSwitch, "turned off by the operator"},
		{"dequeue script differs", FastPathOn, asynqcompat.OpDequeue, asynqcompat.ReasonScript, "asynq's dequeue script has digest " + asynqcompat.Digest(asynqcompat.DequeueScript)},
		{"done script differs", FastPathOn, asynqcompat.OpDone, asynqcompat.ReasonScript, "asynq's done script has digest " + asynqcompat.Digest(asynqcompat.DoneScript)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rdb := redistest.Client(t)
			ns := redistest.Namespace(t)
			fake := wahafake.NewT(t, wahafake.Options{})
			logs := &logBuffer{}
			log := zerolog.New(logs)
			reg := prometheus.NewRegistry()
			w, err := New(Config{Redis: rdb, Namespace: ns, Instances: []Instance{{Name: "default", BaseURL: fake.URL(), Concurrency: 8}},
				Concurrency: 8, PollInterval: 10 * time.Millisecond, Registerer: reg, FastPath: tc.mode, Logger: &log})
			require.NoError(t, err)
			if tc.swap != asynqcompat.OpNone {
				w.hook.Fence().Expect(tc.swap, strings.Repeat("0", 40))
			}
			sent := &wire{n: map[asynqcompat.Op]int{}}
			rdb.AddHook(sent)
			sessions := fake.AddSessions("s", 40, wahafake.StatusWorking)
			got := runToDone(t, rdb, ns, w, sessions)
			require.EqualValues(t, len(sessions), got.Outcomes[tasks.OutcomeLoggedOut])
			w.Shutdown()

			require.False(t, w.hook.Fence().On())
			require.Equal(t, tc.reason, w.hook.Fence().Status().Reason)
			switch tc.swap {
			case asynqcompat.OpDone:
				// the takes before asynq's first done ran; from that done on
				// the fast path is off, so every done is asynq's own
				require.Equal(t, len(sessions), sent.count(asynqcompat.OpDone), "asynq did every done itself")
			default:
				require.Zero(t, sent.count(opTake), "no take ran")
				require.Equal(t, len(sessions), sent.count(asynqcompat.OpDone), "asynq did every done itself")
				require.Positive(t, sent.count(asynqcompat.OpDequeue), "asynq dequeued itself")
			}
			info, err := asynq.NewInspectorFromRedisClient(rdb).GetQueueInfo(store.KeysFor(ns, "default").Queue)
			require.NoError(t, err)
			require.Zero(t, info.Active)
			require.Equal(t, len(sessions), info.Processed)

			out := logs.String()
			require.Equal(t, 1, strings.Count(out, "fast path off"), "said once: %s", out)
			require.Contains(t, out, tc.logText)
			require.Contains(t, out, `"asynq_version":"`+asynqcompat.Version+`"`)
			require.Equal(t, map[string]float64{tc.reason: 0}, fastPathGauge(t, reg), "one reason at a time")
		})
	}
}

// TestFastPathOnMetric: a worker whose fast path runs says so.
func TestFastPathOnMetric(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	w, err := New(Config{Redis: redistest.Client(t), Namespace: redistest.Namespace(t), Instances: []Instance{{Name: "default", BaseURL: "http://127.0.0.1:1"}},
		Registerer: reg, FastPath: FastPathOn})
	require.NoError(t, err)
	require.True(t, w.hook.Fence().On())
	require.Equal(t, map[string]float64{asynqcompat.ReasonOn: 1}, fastPathGauge(t, reg))
	_, err = New(Config{Redis: redistest.Client(t), Instances: []Instance{{Name: "default", BaseURL: "http://127.0.0.1:1"}},
		Registerer: prometheus.NewRegistry(), FastPath: "fast"})
	require.ErrorContains(t, err, `fast path "fast" is not on or off`)
}

// fastPathGauge reads wahaq_fast_path_enabled from reg by reason.
func fastPathGauge(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	fams, err := reg.Gather()
	require.NoError(t, err)
	out := map[string]float64{}
	for _, f := range fams {
		if f.GetName() != "wahaq_fast_path_enabled" {
			continue
		}
		for _, m := range f.GetMetric() {
			out[m.GetLabel()[0].GetValue()] = m.GetGauge().GetValue()
		}
	}
	return out
}
