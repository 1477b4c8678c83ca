package store

import (
	"context"
	"time"
)

// Filled is what FillBatch (or one FillChunk) did.
type Filled struct {
	// Total is how many tasks were created.
	Total int64
	// Requested is how many sessions were named.
	Requested int
	// Deduplicated is how many named sessions already had a live task of
	// another batch (or none) or were named twice.
	Deduplicated int
	// InBatch is how many named sessions already had a live task in this
	// batch (FillChunk: named again, or enqueued by an earlier run of the
	// same discovery). FillBatch counts them as Deduplicated.
	InBatch int
}

// FillBatch adds one logout per session to an open batch (CreateBatch),
// sessions named twice counting once, then closes it. Names must be
// validated already. maxRetries and timeout go into the new tasks; ttl is
// how long the batch is kept once done.
//
// On an error the batch stays open (the caller closes it, CloseInterrupted,
// or the reconciler does once the lease ends) and Filled counts what the
// calls that answered created.
func (s *Store) FillBatch(ctx context.Context, instance, id string, sessions []string, at time.Time, maxRetries int,
	timeout, ttl time.Duration) (Filled, error) {
	return s.FillBatchTraced(ctx, instance, id, sessions, at, maxRetries, timeout, ttl, "")
}

// FillBatchTraced is FillBatch whose new tasks carry traceParent (a W3C
// traceparent, "" for none) in their payload and record, so each task's
// attempts are children of the span that filled the batch: one trace per
// batch request.
func (s *Store) FillBatchTraced(ctx context.Context, instance, id string, sessions []string, at time.Time, maxRetries int,
	timeout, ttl time.Duration, traceParent string) (Filled, error) {
	seen := make(map[string]struct{}, len(sessions))
	uniq := make([]string, 0, len(sessions))
	for _, sess := range sessions {
		if _, dup := seen[sess]; dup {
			continue
		}
		seen[sess] = struct{}{}
		uniq = append(uniq, sess)
	}
	f, err := s.fill(ctx, instance, id, uniq, at, maxRetries, timeout, false, traceParent)
	f.Requested = len(sessions)
	f.Deduplicated += len(sessions) - len(uniq) + f.InBatch
	if err != nil {
		return f, err
	}
	if err := s.CloseBatch(ctx, instance, id, int64(f.Deduplicated), "", ttl); err != nil {
		return f, err
	}
	return f, nil
}

// FillChunk adds one logout per session to an open batch and leaves it
// open, for a producer that fills a batch piece by piece (the worker's
// discovery, which closes it with CloseDiscovery). Each call renews the
// producer's lease on the batch. Names must be validated already; a session
// whose live task is of this batch already is counted in InBatch and
// nothing is created for it, so running a piece again is harmless.
// traceParent (a W3C traceparent, "" for none) goes into the new tasks, as
// with FillBatchTraced.
func (s *Store) FillChunk(ctx context.Context, instance, id string, sessions []string, at time.Time, maxRetries int,
	timeout time.Duration, traceParent string) (Filled, error) {
	return s.fill(ctx, instance, id, sessions, at, maxRetries, timeout, true, traceParent)
}

func (s *Store) fill(ctx context.Context, instance, id string, sessions []string, at time.Time, maxRetries int,
	timeout time.Duration, listed bool, traceParent string) (Filled, error) {
	ts := make([]NewTask, len(sessions))
	for i, sess := range sessions {
		ts[i] = NewTask{Instance: instance, Session: sess, BatchID: id, MaxRetries: maxRetries, ProcessAt: at, Timeout: timeout,
			Listed: listed, TraceParent: traceParent}
	}
	res, err := s.Enqueue(ctx, ts)
	f := Filled{Requested: len(sessions)}
	for _, r := range res {
		switch {
		case r.ID == "":
		case r.InBatch:
			f.InBatch++
		case r.Deduplicated:
			f.Deduplicated++
		default:
			f.Total++
		}
	}
	return f, err
}
