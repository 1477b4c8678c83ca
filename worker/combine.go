package worker

import (
	"context"
	"sync"

	"github.com/wahaq/wahaq/internal/base"
	"github.com/wahaq/wahaq/internal/store"
)

// finishes shares Redis round trips between handlers that record their
// attempts at the same moment: each handler's Finish joins a queue, and up
// to combineFlushers of the waiting handlers at a time send what is queued
// as one pipeline (store.FinishMany). A lone Finish goes at once, in a
// pipeline of one; under load, a round trip carries several. No goroutine
// of its own runs: a waiting handler does the sending (flat combining), so
// there is nothing to start or stop.
//
// A sender stops once its own Finish is applied and hands its role to the
// first handler still queued, so no handler returns late because it kept
// sending for others.
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
	// done is set, under finishes.mu, once reply holds the answer.
	done bool
	// lead is set, under finishes.mu, when a sender that left made this
	// request's handler a sender in its place (at most once).
	lead bool
	// wake is signalled when the request is made a sender and when it is
	// done: at most twice, so its room for two never blocks a sender.
	wake chan struct{}
}

// finish applies f to task id as store.FinishSettled does, possibly in a
// round trip shared with other handlers' Finishes. ctx bounds the round
// trips this handler sends, its own and others'; a queued Finish is always
// answered by the handler that sends it.
func (c *finishes) finish(ctx context.Context, id string, p base.Payload, f store.Finish) (bool, error) {
	r := &finishReq{call: store.FinishCall{ID: id, Payload: p, Finish: f}, wake: make(chan struct{}, 2)}
	c.mu.Lock()
	c.queue = append(c.queue, r)
	if c.flushers < combineFlushers {
		c.flushers++
	} else {
		c.mu.Unlock()
		<-r.wake
		c.mu.Lock()
		if !r.lead {
			// woken by its sender
			c.mu.Unlock()
			return r.reply.Settled, r.reply.Err
		}
		// a sender now, in the place of the one that left
	}
	for !r.done && len(c.queue) > 0 {
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
		c.mu.Lock()
		for i, b := range batch {
			b.reply, b.done = replies[i], true
			if b != r {
				b.wake <- struct{}{}
			}
		}
	}
	// leave: hand the role to the first queued request not made a sender
	// already, rather than send for others any longer
	handed := false
	for _, q := range c.queue {
		if !q.lead {
			q.lead, handed = true, true
			q.wake <- struct{}{}
			break
		}
	}
	if !handed {
		c.flushers--
	}
	done := r.done
	c.mu.Unlock()
	if !done {
		// another sender's pipeline carries it
		<-r.wake
	}
	return r.reply.Settled, r.reply.Err
}
