package store

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// notifyLua defines notify(channel, what), which announces what on one of
// wahaq's shard channels (Keys.Done, Keys.Gate) for the scripts. pcall: a
// server without shard channels (miniredis in the demo) gets a plain
// PUBLISH, and a failed announcement never fails the script that makes it.
const notifyLua = `
local function notify(channel, what)
  local r = redis.pcall('SPUBLISH', channel, what)
  if type(r) == 'table' and r.err then redis.pcall('PUBLISH', channel, what) end
end
`

// Notifier turns the completion announcements of the finishing scripts
// (Keys.Done) into in-process wake-ups. It holds ONE subscription per
// channel, whatever the number of waiters, and waiting costs Redis nothing:
// a thousand long-polls on one API process are one SSUBSCRIBE and no
// commands until something finishes. It is safe for concurrent use.
//
// A message lost while the subscription reconnects (go-redis resubscribes on
// its own) only makes its waiters run to the end of their wait, which then
// answers the current state.
type Notifier struct {
	rdb redis.UniversalClient

	mu      sync.Mutex
	subs    map[string]*redis.PubSub
	pending map[string]chan struct{}              // channel -> closed when its subscription attempt ends
	waiters map[string]map[chan struct{}]struct{} // channel + " " + what -> wake-ups
	closed  bool
}

// NewNotifier returns a Notifier on rdb.
func NewNotifier(rdb redis.UniversalClient) *Notifier {
	return &Notifier{rdb: rdb, subs: map[string]*redis.PubSub{}, pending: map[string]chan struct{}{}, waiters: map[string]map[chan struct{}]struct{}{}}
}

// Watch subscribes, if not yet, to channel and returns a channel closed when
// what ("t:<id>", "b:<id>") is announced on it. When Watch returns, the
// subscription is confirmed: a state read after it cannot miss an
// announcement. Call stop when done waiting.
func (n *Notifier) Watch(ctx context.Context, channel, what string) (<-chan struct{}, func(), error) {
	if err := n.subscribe(ctx, channel); err != nil {
		return nil, nil, err
	}
	key := channel + " " + what
	ch := make(chan struct{})
	n.mu.Lock()
	if n.waiters[key] == nil {
		n.waiters[key] = map[chan struct{}]struct{}{}
	}
	n.waiters[key][ch] = struct{}{}
	n.mu.Unlock()
	stop := func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		if set := n.waiters[key]; set != nil {
			if _, ok := set[ch]; ok {
				delete(set, ch)
				close(ch)
			}
			if len(set) == 0 {
				delete(n.waiters, key)
			}
		}
	}
	return ch, stop, nil
}

func (n *Notifier) subscribe(ctx context.Context, channel string) error {
	for {
		n.mu.Lock()
		if n.closed {
			n.mu.Unlock()
			return fmt.Errorf("notifier closed")
		}
		if _, ok := n.subs[channel]; ok {
			n.mu.Unlock()
			return nil
		}
		wait, busy := n.pending[channel]
		if !busy {
			// This caller subscribes; the others wait for it, so a burst
			// of first waiters makes one subscription.
			wait = make(chan struct{})
			n.pending[channel] = wait
			n.mu.Unlock()
			err := n.dial(ctx, channel)
			n.mu.Lock()
			delete(n.pending, channel)
			close(wait)
			n.mu.Unlock()
			return err
		}
		n.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Subscribe subscribes to wahaq's shard channels (Keys.Done, Keys.Gate),
// all on one connection (on a Cluster, they must share a slot), and
// returns once Redis has confirmed the subscription. On a server without
// shard channels (miniredis) it falls back to plain pub/sub, as the scripts
// do when they announce.
func Subscribe(ctx context.Context, rdb redis.UniversalClient, channels ...string) (*redis.PubSub, error) {
	ps := rdb.SSubscribe(ctx, channels...)
	if _, err := ps.Receive(ctx); err != nil {
		_ = ps.Close()
		ps = rdb.Subscribe(ctx, channels...)
		if _, err2 := ps.Receive(ctx); err2 != nil {
			_ = ps.Close()
			return nil, fmt.Errorf("subscribe %s: %w", strings.Join(channels, " "), err)
		}
	}
	return ps, nil
}

func (n *Notifier) dial(ctx context.Context, channel string) error {
	ps, err := Subscribe(ctx, n.rdb, channel)
	if err != nil {
		return err
	}
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		_ = ps.Close()
		return fmt.Errorf("notifier closed")
	}
	n.subs[channel] = ps
	n.mu.Unlock()
	go n.fanOut(channel, ps)
	return nil
}

// fanOut wakes the waiters of every message until the subscription closes.
func (n *Notifier) fanOut(channel string, ps *redis.PubSub) {
	for m := range ps.Channel() {
		key := channel + " " + m.Payload
		n.mu.Lock()
		for ch := range n.waiters[key] {
			close(ch)
		}
		delete(n.waiters, key)
		n.mu.Unlock()
	}
}

// Close ends every subscription; waiters run to the end of their wait.
func (n *Notifier) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.closed = true
	for c, ps := range n.subs {
		_ = ps.Close()
		delete(n.subs, c)
	}
	return nil
}
