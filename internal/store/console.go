package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// The operator console's sessions live in one hash outside every queue:
//
//	wahaq:<namespace>:console:sessions   field <session id> = its end (unix ms)
//
// A signed cookie alone could not be ended before its expiry: sign-out only
// asked the browser to forget it, and a copy kept working (issue 23, M2).
// The cookie now names a session id, and a session is live only while its
// field is here and its end is ahead. One key, so every command is valid on
// Redis Cluster; the hash expires with its last session.
func (s *Store) consoleSessionsKey() string { return "wahaq:" + s.ns + ":console:sessions" }

// MaxConsoleSessions bounds the sessions kept: past it, opening one ends
// the one closest to its end. A person signs in a few times a day; the
// bound only stops a token holder from growing the hash without end.
const MaxConsoleSessions = 10_000

// openSessionScript records a session, pruning ended ones.
//
// KEYS[1] the sessions hash. ARGV[1] session id, ARGV[2] its end (unix ms),
// ARGV[3] now (unix ms), ARGV[4] MaxConsoleSessions. Returns the number of
// sessions it ended to make room.
var openSessionScript = redis.NewScript(`
local n = redis.call('HLEN', KEYS[1])
local now = tonumber(ARGV[3])
local evicted = 0
if n >= 64 then
  local all = redis.call('HGETALL', KEYS[1])
  local oldest, oldestEnd = nil, nil
  for i = 1, #all, 2 do
    local e = tonumber(all[i + 1]) or 0
    if e <= now then
      redis.call('HDEL', KEYS[1], all[i])
      n = n - 1
    elseif oldestEnd == nil or e < oldestEnd then
      oldest, oldestEnd = all[i], e
    end
  end
  if n >= tonumber(ARGV[4]) and oldest then
    redis.call('HDEL', KEYS[1], oldest)
    evicted = 1
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local ttl = tonumber(ARGV[2]) - now
if ttl > redis.call('PTTL', KEYS[1]) then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return evicted
`)

// OpenConsoleSession records session id, live until end.
func (s *Store) OpenConsoleSession(ctx context.Context, id string, end time.Time) error {
	err := openSessionScript.Run(ctx, s.rdb, []string{s.consoleSessionsKey()},
		id, end.UnixMilli(), s.now().UnixMilli(), MaxConsoleSessions).Err()
	if err != nil {
		return fmt.Errorf("console session: open: %w", err)
	}
	return nil
}

// ConsoleSessionLive reports whether session id is recorded and not past
// its end.
func (s *Store) ConsoleSessionLive(ctx context.Context, id string) (bool, error) {
	v, err := s.rdb.HGet(ctx, s.consoleSessionsKey(), id).Result()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("console session: %w", err)
	}
	end, err := strconv.ParseInt(v, 10, 64)
	return err == nil && s.now().UnixMilli() < end, nil
}

// EndConsoleSession ends session id (sign-out).
func (s *Store) EndConsoleSession(ctx context.Context, id string) error {
	if err := s.rdb.HDel(ctx, s.consoleSessionsKey(), id).Err(); err != nil {
		return fmt.Errorf("console session: end: %w", err)
	}
	return nil
}

// endAllSessionsScript ends every session and says how many were live.
//
// KEYS[1] the sessions hash. ARGV[1] now (unix ms).
var endAllSessionsScript = redis.NewScript(`
local all = redis.call('HGETALL', KEYS[1])
local live = 0
for i = 2, #all, 2 do
  if (tonumber(all[i]) or 0) > tonumber(ARGV[1]) then live = live + 1 end
end
redis.call('DEL', KEYS[1])
return live
`)

// EndConsoleSessions ends every console session and returns how many were
// live.
func (s *Store) EndConsoleSessions(ctx context.Context) (int, error) {
	n, err := endAllSessionsScript.Run(ctx, s.rdb, []string{s.consoleSessionsKey()}, s.now().UnixMilli()).Int()
	if err != nil {
		return 0, fmt.Errorf("console session: end all: %w", err)
	}
	return n, nil
}
