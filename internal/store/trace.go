package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/wahaq/wahaq/internal/base"
)

// traceScript writes the trace id into a task's record, if the record
// exists: the task may already be done and its record expired, and a stub
// record must not be created.
//
// KEYS[1] record. ARGV[1] trace id.
var traceScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'trace', ARGV[1]) end
return 1
`)

// keepTraces writes the trace ids of the created tasks of ts that were
// enqueued in a trace. It is a separate round trip, paid only when tracing
// is on, so the enqueue script (and untraced enqueues) stay as they are.
func (s *Store) keepTraces(ctx context.Context, ts []NewTask, out []Enqueued) error {
	var calls []scriptCall
	for i := range ts {
		id := base.TraceID(ts[i].TraceParent)
		if id == "" || out[i].Deduplicated {
			continue
		}
		calls = append(calls, scriptCall{keys: []string{s.Keys(ts[i].Instance).Record(out[i].ID)}, args: []any{id}})
	}
	if len(calls) == 0 {
		return nil
	}
	if _, err := s.runPipelined(ctx, traceScript, calls); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("enqueue: keep trace ids: %w", err)
	}
	return nil
}
