package worker

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/wahaq/wahaq/internal/store"
)

// gateRecheck is how long the view trusts a closed gate without word from
// its channel before it reads the paused key again. It bounds how long a
// lost "open" announcement (a resubscription) can keep this worker from a
// queue: about one GET a second per closed queue.
const gateRecheck = time.Second

// gateView is this worker's view of its queues' gates (internal/store's
// gate.go: the paused key wahaq sets while a server's cap is full), kept
// from the gate channels (Keys.Gate). Through the worker's client hook
// (hook.go) it answers asynq's dequeue of a queue it holds closed with
// "nothing to dequeue", and its forward with "none moved", without a round
// trip.
//
// Why: asynq polls its queues every PollInterval (10 ms) and treats a
// paused queue as an empty one, so a capped teardown, whose queue is closed
// most of the time, cost about 100 dequeue scripts a second per worker,
// 27 per completed logout (`wahaq bench --only waiting`); its forwarder
// adds two scripts per queue every DelayedInterval.
//
// It can only skip a dequeue asynq would have made; it never makes one.
// A closed gate it missed (an announcement lost while resubscribing) costs
// the round trips it always did; an "open" it missed keeps the queue
// skipped for at most gateRecheck. An operator's pause is not announced and
// never held closed here: asynq's own dequeue sees it.
type gateView struct {
	rdb redis.UniversalClient
	now func() time.Time
	log *zerolog.Logger
	// byPaused are the worker's queues by asynq's paused key, fixed by New.
	byPaused map[string]*gate
	on       atomic.Bool
}

// gate is one queue's gate as the view knows it.
type gate struct {
	paused, channel string
	instance        string

	mu     sync.Mutex
	closed bool
	until  time.Time // closed is trusted until then
	seq    uint64    // bumped by every announcement
}

func newGateView(rdb redis.UniversalClient, now func() time.Time, log *zerolog.Logger) *gateView {
	return &gateView{rdb: rdb, now: now, log: log, byPaused: map[string]*gate{}}
}

// add makes the view keep the gate of the instance with keys k.
func (v *gateView) add(instance string, k store.Keys) {
	v.byPaused[k.Paused()] = &gate{paused: k.Paused(), channel: k.Gate(), instance: instance}
}

// closed says whether g is closed, reading its paused key again when the
// view's knowledge is older than gateRecheck.
func (v *gateView) closed(ctx context.Context, g *gate) bool {
	g.mu.Lock()
	if !g.closed {
		g.mu.Unlock()
		return false
	}
	if v.now().Before(g.until) {
		g.mu.Unlock()
		return true
	}
	seq := g.seq
	g.mu.Unlock()
	val, err := v.rdb.Get(ctx, g.paused).Result()
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.seq != seq {
		// an announcement came while we read: it is newer
		return g.closed
	}
	g.closed = err == nil && val == store.GateMarker
	g.until = v.now().Add(gateRecheck)
	return g.closed
}

// heard applies one announcement of g's channel.
func (v *gateView) heard(g *gate, msg string) {
	closed, until, ok := store.ParseGate(msg)
	if !ok {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.seq++
	g.closed = closed
	g.until = v.now().Add(gateRecheck)
	if closed && until.Before(g.until) {
		g.until = until // the gate's own expiry comes first
	}
}

// run keeps the view until ctx is done: one subscription per gate channel,
// each first reading the gate's state, since announcements made before it
// were not heard. The view answers dequeues only while run runs.
func (v *gateView) run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, g := range v.byPaused {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v.follow(ctx, g)
		}()
	}
	v.on.Store(true)
	wg.Wait()
	v.on.Store(false)
}

// follow subscribes to g's channel, again after a failure, until ctx is
// done.
func (v *gateView) follow(ctx context.Context, g *gate) {
	for ctx.Err() == nil {
		ps, err := store.Subscribe(ctx, v.rdb, g.channel)
		if err != nil {
			if ctx.Err() == nil {
				v.log.Debug().Err(err).Str("channel", g.channel).Msg("cannot follow a queue gate; its dequeues go to Redis")
			}
			select {
			case <-ctx.Done():
			case <-time.After(gateRecheck):
			}
			continue
		}
		// What was said before the subscription was not heard: take the
		// gate as closed, so the first dequeue reads its key.
		g.mu.Lock()
		g.seq++
		g.closed, g.until = true, time.Time{}
		g.mu.Unlock()
		stop := context.AfterFunc(ctx, func() { _ = ps.Close() })
		for m := range ps.Channel() {
			v.heard(g, m.Payload)
		}
		stop()
	}
}
