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
	// closedN counts the gates held closed: the block take shares the free
	// handlers between the queues that are open (take.go).
	closedN atomic.Int64
	// poll is the worker's PollInterval: the longest awaitOpen waits.
	poll time.Duration
	// wake, when not nil, is closed when any gate is next seen open.
	wakeMu sync.Mutex
	wake   chan struct{}
	// changed, when set, hears of a gate that opened or of work announced
	// on its channel (store.WorkMarker): the queue view forgets what it
	// knew of the queue (queueview.go).
	changed func(instance string)
}

// opened wakes every awaitOpen.
func (v *gateView) opened() {
	v.wakeMu.Lock()
	defer v.wakeMu.Unlock()
	if v.wake != nil {
		close(v.wake)
		v.wake = nil
	}
}

// reopened tells the queue view that g's gate opened: a dequeue that found
// it closed (the cap full) dequeued nothing and left the queue's tasks
// pending.
func (v *gateView) reopened(g *gate) {
	if v.changed != nil {
		v.changed(g.instance)
	}
}

// gate is one queue's gate as the view knows it.
type gate struct {
	paused, channel string
	instance        string

	mu     sync.Mutex
	closed bool
	until  time.Time // closed is trusted until then
	seq    uint64    // bumped by every announcement
	// empty: the last dequeue of the queue found nothing.
	empty bool
	view  *gateView
}

// setClosed records the gate's state, under g.mu; an opening wakes
// awaitOpen.
func (g *gate) setClosed(closed bool) {
	was := g.closed
	g.closed = closed
	switch {
	case was && !closed:
		g.view.closedN.Add(-1)
		g.view.opened()
		g.view.reopened(g)
	case !was && closed:
		g.view.closedN.Add(1)
	}
}

func newGateView(rdb redis.UniversalClient, now func() time.Time, poll time.Duration, log *zerolog.Logger) *gateView {
	return &gateView{rdb: rdb, now: now, poll: poll, log: log, byPaused: map[string]*gate{}}
}

// open is how many of the worker's queues the view does not hold closed.
func (v *gateView) open() int {
	return max(len(v.byPaused)-int(v.closedN.Load()), 1)
}

// add makes the view keep the gate of the instance with keys k.
func (v *gateView) add(instance string, k store.Keys) *gate {
	g := &gate{paused: k.Paused(), channel: k.Gate(), instance: instance, view: v}
	v.byPaused[k.Paused()] = g
	return g
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
	g.setClosed(err == nil && val == store.GateMarker)
	g.until = v.now().Add(gateRecheck)
	return g.closed
}

// awaitOpen waits, up to the worker's poll interval, for a gate to open
// when closed g is asked for a task and every other queue of the worker is
// closed too or was found empty by its last dequeue: asynq would sleep that
// long before its next poll anyway, and waiting for the announcement
// instead lets the task that a freed slot allows start at once (the
// teardown, skew and isolation rows of `wahaq bench`). It returns the
// queue to take from: g if it opened, else another that opened and may
// hold tasks; nil when none did.
func (v *gateView) awaitOpen(ctx context.Context, g *gate) *gate {
	if v.poll <= 0 {
		return nil
	}
	v.wakeMu.Lock()
	if v.wake == nil {
		v.wake = make(chan struct{})
	}
	wake := v.wake
	v.wakeMu.Unlock()
	if o := v.openOne(g); o != nil {
		return o
	}
	for _, o := range v.byPaused {
		if o == g {
			continue
		}
		o.mu.Lock()
		idle := o.closed || o.empty
		o.mu.Unlock()
		if !idle {
			return nil
		}
	}
	t := time.NewTimer(v.poll)
	defer t.Stop()
	select {
	case <-wake:
		return v.openOne(g)
	case <-t.C:
	case <-ctx.Done():
	}
	return nil
}

// openOne returns g if it is open, else an open queue that may hold tasks
// (its last dequeue found one), else nil.
func (v *gateView) openOne(g *gate) *gate {
	g.mu.Lock()
	open := !g.closed
	g.mu.Unlock()
	if open {
		return g
	}
	for _, o := range v.byPaused {
		o.mu.Lock()
		ok := !o.closed && !o.empty
		o.mu.Unlock()
		if ok {
			return o
		}
	}
	return nil
}

// found records what a dequeue of g found: a task, or nothing.
func (g *gate) found(task bool) {
	g.mu.Lock()
	g.empty = !task
	g.mu.Unlock()
}

// heard applies one announcement of g's channel.
func (v *gateView) heard(g *gate, msg string) {
	if msg == store.WorkMarker {
		if v.changed != nil {
			v.changed(g.instance)
		}
		return
	}
	closed, until, ok := store.ParseGate(msg)
	if !ok {
		return
	}
	if !closed {
		// an opening announced is heard even if the close was not (this
		// view may never have seen the gate closed)
		v.reopened(g)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.seq++
	g.setClosed(closed)
	g.until = v.now().Add(gateRecheck)
	if closed && until.Before(g.until) {
		g.until = until // the gate's own expiry comes first
	}
}

// run keeps the view until ctx is done: one subscription for every gate
// channel (one per gate on a Cluster, where a shard subscription holds the
// channels of one slot), each first taking its gates as closed, since
// announcements made before it were not heard. The view answers dequeues
// only while run runs.
func (v *gateView) run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, gs := range v.groups() {
		wg.Go(func() { v.follow(ctx, gs) })
	}
	v.on.Store(true)
	wg.Wait()
	v.on.Store(false)
}

// groups splits the gates between subscriptions. One subscription for all
// keeps an idle worker's connections and the client's health-check PINGs
// (one each every few seconds) from growing with its servers.
func (v *gateView) groups() [][]*gate {
	all := make([]*gate, 0, len(v.byPaused))
	for _, g := range v.byPaused {
		all = append(all, g)
	}
	if _, cluster := v.rdb.(*redis.ClusterClient); !cluster {
		return [][]*gate{all}
	}
	out := make([][]*gate, len(all))
	for i, g := range all {
		out[i] = []*gate{g}
	}
	return out
}

// follow subscribes to the channels of gs, again after a failure, until ctx
// is done.
func (v *gateView) follow(ctx context.Context, gs []*gate) {
	byChannel := make(map[string]*gate, len(gs))
	channels := make([]string, len(gs))
	for i, g := range gs {
		byChannel[g.channel], channels[i] = g, g.channel
	}
	for ctx.Err() == nil {
		ps, err := store.Subscribe(ctx, v.rdb, channels...)
		if err != nil {
			if ctx.Err() == nil {
				v.log.Debug().Err(err).Int("channels", len(channels)).Msg("cannot follow the queue gates; their dequeues go to Redis")
			}
			select {
			case <-ctx.Done():
			case <-time.After(gateRecheck):
			}
			continue
		}
		// What was said before the subscription was not heard: take the
		// gates as closed, so the first dequeue reads their keys.
		for _, g := range gs {
			g.mu.Lock()
			g.seq++
			g.setClosed(true)
			g.until = time.Time{}
			g.mu.Unlock()
		}
		stop := context.AfterFunc(ctx, func() { _ = ps.Close() })
		for m := range ps.Channel() {
			if g := byChannel[m.Channel]; g != nil {
				v.heard(g, m.Payload)
			}
		}
		stop()
	}
}
