package store

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/wahaq/wahaq/internal/asynqcompat"
)

// liveScript answers, for each session of a chunk, whether it has a live
// logout: the dedup rule of the enqueue script (its claim names a task that
// asynq still holds, neither archived nor completed), read only, for a
// batch's preview (issue 21). A claim of a task asynq no longer holds is
// one the enqueue script takes over.
//
// KEYS: the sessions' dedup keys (Keys.Dedup), one queue.
// ARGV[1] asynq task key prefix.
// Returns one 1 (live) or 0 per key, in order.
var liveScript = redis.NewScript(asynqcompat.TaskLua + `
local out = {}
for i, key in ipairs(KEYS) do
  out[i] = 0
  local id = redis.call('GET', key)
  if id and asynq_live(asynq_state(ARGV[1] .. id)) then out[i] = 1 end
end
return out
`)

// LiveSessions reports, for each of sessions of instance, whether a logout
// of it is scheduled, pending, active or retrying: an enqueue would return
// that task instead of creating one. It writes nothing. Callers send
// chunks (the preview sends 1,000 at a time).
func (s *Store) LiveSessions(ctx context.Context, instance string, sessions []string) ([]bool, error) {
	if len(sessions) == 0 {
		return nil, nil
	}
	k := s.Keys(instance)
	keys := make([]string, len(sessions))
	for i, sess := range sessions {
		keys[i] = k.Dedup(sess)
	}
	v, err := liveScript.Run(ctx, s.rdb, keys, k.AsynqTaskPrefix()).Int64Slice()
	if err != nil {
		return nil, fmt.Errorf("live sessions of %s: %w", instance, err)
	}
	if len(v) != len(sessions) {
		return nil, fmt.Errorf("live sessions of %s: unexpected reply of %d entries", instance, len(v))
	}
	out := make([]bool, len(v))
	for i, n := range v {
		out[i] = n == 1
	}
	return out, nil
}
