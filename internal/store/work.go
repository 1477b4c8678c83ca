package store

import (
	"context"
	"errors"
	"math"

	"github.com/redis/go-redis/v9"
)

// WorkMarker is what wahaq announces on a queue's gate channel (Keys.Gate)
// after it adds tasks to the queue: pending ones a worker may take now, or
// scheduled ones that fall due later. Workers keep a view of their queues
// from it (worker/queueview.go) and answer asynq's polls of a queue they
// know holds nothing without a round trip; the announcement makes them look
// again. ParseGate does not take it for a gate state, so a worker that does
// not know it ignores it.
const WorkMarker = "w"

// AnnounceWork announces WorkMarker on the gate channel of each of the
// instances, in one round trip. It is called after the write it announces
// has returned, so a worker that hears it finds the tasks. A server without
// shard channels (miniredis) gets a plain PUBLISH, as notifyLua does. An
// announcement is a hint: workers also look again on their own within
// their recheck interval, so a lost one delays a pickup, never loses it.
func (s *Store) AnnounceWork(ctx context.Context, instances ...string) error {
	if len(instances) == 0 {
		return nil
	}
	pub := func(shard bool) error {
		pipe := s.rdb.Pipeline()
		for _, in := range instances {
			if shard {
				pipe.SPublish(ctx, s.Keys(in).Gate(), WorkMarker)
			} else {
				pipe.Publish(ctx, s.Keys(in).Gate(), WorkMarker)
			}
		}
		_, err := pipe.Exec(ctx)
		return err
	}
	err := pub(true)
	if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) && redis.HasErrorPrefix(err, "ERR unknown command") {
		err = pub(false)
	}
	return err
}

// announce is AnnounceWork for the paths that have written already: their
// write stands whatever happens to its announcement, a hint that the
// workers' own recheck makes up for.
func (s *Store) announce(ctx context.Context, instances ...string) {
	_ = s.AnnounceWork(ctx, instances...)
}

// QueueLook is what one read of a queue's asynq lists tells a worker:
// whether tasks are pending, and when the earliest scheduled or retrying
// task falls due.
type QueueLook struct {
	// Pending is the length of the pending list.
	Pending int64
	// Due is the earliest process time among the scheduled and retrying
	// tasks, in asynq's unit (Unix seconds; asynq's forwarder moves a task
	// once the clock's Unix second reaches it); zero when there are none.
	Due int64
}

// LookQueues reads, for each instance, its queue's pending length and the
// earliest scored entry of its scheduled and retry sets: three reads per
// queue, all in one pipeline (on a Cluster, one per node). It writes
// nothing. A queue whose reads failed gets ok false.
func (s *Store) LookQueues(ctx context.Context, instances []string) (looks []QueueLook, ok []bool, err error) {
	pipe := s.rdb.Pipeline()
	type cmds struct {
		llen       *redis.IntCmd
		sched, ret *redis.ZSliceCmd
	}
	cs := make([]cmds, len(instances))
	for i, in := range instances {
		k := s.Keys(in)
		cs[i] = cmds{llen: pipe.LLen(ctx, k.Pending()),
			sched: pipe.ZRangeWithScores(ctx, k.Scheduled(), 0, 0), ret: pipe.ZRangeWithScores(ctx, k.Retry(), 0, 0)}
	}
	_, err = pipe.Exec(ctx)
	looks, ok = make([]QueueLook, len(instances)), make([]bool, len(instances))
	for i, c := range cs {
		if c.llen.Err() != nil || c.sched.Err() != nil || c.ret.Err() != nil {
			continue
		}
		l := QueueLook{Pending: c.llen.Val()}
		for _, z := range append(c.sched.Val(), c.ret.Val()...) {
			d := int64(math.Ceil(z.Score))
			if l.Due == 0 || d < l.Due {
				l.Due = d
			}
		}
		looks[i], ok[i] = l, true
	}
	return looks, ok, err
}
