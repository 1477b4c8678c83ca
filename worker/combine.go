package worker

import (
	"context"
	"sync"

	"github.com/wahaq/wahaq/internal/base"
	"github.com/wahaq/wahaq/internal/store"
)

// finishes shares Redis round trips between handlers that record their
// attempts at the same moment: each handler's Finish joins a queue, and up
// to combineFlushers of them at a time send what is queued as one pipeline
// (store.FinishMany), then look again, until the queue is empty. A lone
// Finish goes at once, in a pipeline of one; under load, a round trip
// carries several. No goroutine of its own runs: a waiting handler does
// the sending (flat combining), so there is nothing to start or stop.
type finishes struct {
	st       *store.Store
	mu       sync.Mutex
	queue    []*finishReq
	flushers int
}

// combineFlushers is how many pipelines may be in flight at once: two, so
// that one is built and sent while Redis runs the other.
const combineFlushers = 2

// combineMax bounds one pipeline's Finishes.
const combineMax = 32

type finishReq struct {
	call  store.FinishCall
	reply store.FinishReply
	done  chan struct{}
}

// finish applies f to task id as store.FinishSettled does, possibly in a
// round trip shared with other handlers' Finishes.
func (c *finishes) finish(ctx context.Context, id string, p base.Payload, f store.Finish) (bool, error) {
	r := &finishReq{call: store.FinishCall{ID: id, Payload: p, Finish: f}, done: make(chan struct{})}
	c.mu.Lock()
	c.queue = append(c.queue, r)
	if c.flushers < combineFlushers {
		c.flushers++
		for len(c.queue) > 0 {
			n := min(len(c.queue), combineMax)
			batch := append([]*finishReq(nil), c.queue[:n]...)
			clear(c.queue[:n])
			c.queue = c.queue[n:]
			c.mu.Unlock()
			calls := make([]store.FinishCall, len(batch))
			for i, b := range batch {
				calls[i] = b.call
			}
			replies := c.st.FinishMany(ctx, calls)
			for i, b := range batch {
				b.reply = replies[i]
				close(b.done)
			}
			c.mu.Lock()
		}
		c.flushers--
	}
	c.mu.Unlock()
	select {
	case <-r.done:
		return r.reply.Settled, r.reply.Err
	case <-ctx.Done():
		// another handler's pipeline still carries it; the caller's retry
		// applies it again, which counts once (the finish script)
		return false, ctx.Err()
	}
}
