package store

import (
	"context"
	"time"
)

// Filled is what FillBatch did.
type Filled struct {
	// Total is how many tasks were created.
	Total int64
	// Requested is how many sessions were named.
	Requested int
	// Deduplicated is how many named sessions already had a live task or
	// were named twice.
	Deduplicated int
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
	ts := make([]NewTask, 0, len(sessions))
	for _, sess := range sessions {
		if _, dup := seen[sess]; dup {
			continue
		}
		seen[sess] = struct{}{}
		ts = append(ts, NewTask{Instance: instance, Session: sess, BatchID: id, MaxRetries: maxRetries,
			ProcessAt: at, Timeout: timeout, TraceParent: traceParent})
	}
	res, err := s.Enqueue(ctx, ts)
	f := Filled{Requested: len(sessions), Deduplicated: len(sessions) - len(ts)}
	for _, r := range res {
		switch {
		case r.ID == "":
		case r.Deduplicated:
			f.Deduplicated++
		default:
			f.Total++
		}
	}
	if err != nil {
		return f, err
	}
	if err := s.CloseBatch(ctx, instance, id, int64(f.Deduplicated), "", ttl); err != nil {
		return f, err
	}
	return f, nil
}
