package bench

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wahaq/wahaq/tasks"
	"github.com/wahaq/wahaq/wahaclient/wahafake"
	"github.com/wahaq/wahaq/worker"
)

// ---- 11. callbacks: logouts beside hanging callback receivers ----

// CallbacksFigures time a batch without callbacks alone and after Hanging
// logouts whose callback receivers accept the POST and never answer.
type CallbacksFigures struct {
	N, Hanging, Cap, Concurrency int
	Latency                      time.Duration
	// Stuck is how many deliveries the receivers held when the batch
	// started (the most of the rounds).
	Stuck         int64
	Alone, Beside time.Duration
}

// callbacksHanging is the count of hanging receivers.
const callbacksHanging = 40

// callbacksRounds is how many times each run is made, in pairs whose order
// alternates; the median of each counts, so that a burst of load on a shared machine does
// not decide the ratio.
const callbacksRounds = 5

// Callbacks logs out N sessions (Latency per logout, cap 8, worker
// concurrency 20) as one batch without callbacks: alone, and after 40
// logouts whose callback_urls point at 40 receivers that never answer,
// while their deliveries hang; the median of five rounds of each.
func Callbacks(ctx context.Context, e *env) (CallbacksFigures, error) {
	f := CallbacksFigures{N: e.sizes.CallbacksN, Hanging: callbacksHanging, Cap: isolationCap, Concurrency: 20, Latency: e.sizes.IsolationLatency}
	ns := e.ns(ScenarioCallbacks)
	var alones, besides []time.Duration
	for round := range callbacksRounds {
		// alternate which goes first, so that neither gains from the order
		for _, hanging := range [][2]bool{{false, true}, {true, false}}[round%2] {
			took, stuck, err := callbacksRun(ctx, e, fmt.Sprintf("%s-%d-%t", ns, round, hanging), f, hanging)
			if err != nil {
				return f, err
			}
			if hanging {
				e.logf("callbacks: batch of %d beside %d hanging receivers (%d deliveries stuck) in %s", f.N, f.Hanging, stuck, took.Round(time.Millisecond))
				besides = append(besides, took)
				f.Stuck = max(f.Stuck, stuck)
			} else {
				e.logf("callbacks: batch of %d alone in %s", f.N, took.Round(time.Millisecond))
				alones = append(alones, took)
			}
		}
	}
	slices.Sort(alones)
	slices.Sort(besides)
	f.Alone, f.Beside = alones[len(alones)/2], besides[len(besides)/2]
	return f, nil
}

func callbacksRun(ctx context.Context, e *env, ns string, f CallbacksFigures, hanging bool) (time.Duration, int64, error) {
	fake, err := newFake(f.Latency)
	if err != nil {
		return 0, 0, err
	}
	defer fake.Close()
	allow := []string{"127.0.0.1"}
	p, err := tasks.NewProducer(tasks.Config{Redis: e.rdb, Namespace: ns, Instances: []string{"default"}, CallbackAllow: allow})
	if err != nil {
		return 0, 0, err
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	w, err := worker.New(worker.Config{Redis: e.rdb, Namespace: ns, Concurrency: f.Concurrency, ShutdownGrace: time.Second,
		Instances:      []worker.Instance{{Name: "default", BaseURL: fake.URL(), Concurrency: f.Cap}},
		CallbackSecret: "whsec_" + base64.StdEncoding.EncodeToString(key), CallbackAllow: allow,
		Registerer: prometheus.NewRegistry()})
	if err != nil {
		return 0, 0, err
	}
	var rcv *hangingReceivers
	if hanging {
		if rcv, err = startHangingReceivers(f.Hanging); err != nil {
			return 0, 0, err
		}
		defer rcv.close()
		for i, s := range fake.AddSessions("cb", f.Hanging, wahafake.StatusWorking) {
			if _, err := p.Enqueue(ctx, tasks.LogoutRequest{Session: s, CallbackURL: rcv.urls[i]}); err != nil {
				return 0, 0, err
			}
		}
	}
	if err := w.Start(); err != nil {
		return 0, 0, err
	}
	defer w.Shutdown() // cuts the hanging POSTs first
	var stuck int64
	if hanging {
		// Every delivery slot the receivers can hold is held before the
		// batch arrives.
		want := int64(min(f.Hanging, worker.DefaultCallbackConcurrency))
		if err := waitUntil(ctx, time.Minute, func() (bool, error) {
			time.Sleep(20 * time.Millisecond)
			return rcv.held.Load() >= want, nil
		}); err != nil {
			return 0, 0, fmt.Errorf("the hanging receivers never held %d deliveries: %w", want, err)
		}
		stuck = rcv.held.Load()
	}
	took, err := timeBatch(ctx, e.rdb, ns, p, "default", fake.AddSessions("ok", f.N, wahafake.StatusWorking), 3*time.Minute)
	return took, stuck, err
}

// hangingReceivers are HTTP servers on loopback that read a callback and
// never answer until closed.
type hangingReceivers struct {
	urls    []string
	servers []*http.Server
	held    atomic.Int64
	release chan struct{}
	once    sync.Once
}

func startHangingReceivers(n int) (*hangingReceivers, error) {
	h := &hangingReceivers{release: make(chan struct{})}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.held.Add(1)
		defer h.held.Add(-1)
		select {
		case <-h.release:
		case <-r.Context().Done():
		}
	})
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			h.close()
			return nil, err
		}
		srv := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		h.servers = append(h.servers, srv)
		h.urls = append(h.urls, "http://"+ln.Addr().String()+"/hook")
	}
	return h, nil
}

func (h *hangingReceivers) close() {
	h.once.Do(func() { close(h.release) })
	for _, s := range h.servers {
		_ = s.Close()
	}
}
