package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Idempotency keys (the IETF Idempotency-Key header, and the CLI's
// --idempotency-key) live in one hash each, outside every queue, and each
// scope (an API token) keeps the list of its live keys:
//
//	wahaq:<namespace>:idem:{<scope>}:<sha256 of the key>   hash
//	wahaq:<namespace>:idem:{<scope>}                        zset: key names, score = end (unix ms)
//
// The hash has fields fp (fingerprint of the request), then, once answered,
// status, hdr (JSON headers) and body. Both keys share the hash tag of the
// scope, so the reserve script is valid on Redis Cluster. The scope is
// never the token nor a plain hash of it (the API keys it with a server
// secret: issue 23, M6). The zset bounds a scope's live keys (M7).
func (s *Store) idemKey(scope, key string) string {
	h := sha256.Sum256([]byte(key))
	return s.idemScopeKey(scope) + ":" + hex.EncodeToString(h[:16])
}

// idemScopeKey is the zset of a scope's live idempotency keys.
func (s *Store) idemScopeKey(scope string) string {
	return "wahaq:" + s.ns + ":idem:{" + scope + "}"
}

// Replies of Reserve.
const (
	// IdemReserved: the key is new and now reserved by the caller, who must
	// Save an answer or Release it.
	IdemReserved = iota
	// IdemMismatch: the key was used with another request.
	IdemMismatch
	// IdemInProgress: the first request with this key is still running.
	IdemInProgress
	// IdemAnswered: the first request's answer is returned.
	IdemAnswered
	// IdemFull: the key is new and the scope already holds its limit of
	// live keys; nothing was reserved.
	IdemFull
)

// reserveScript reserves an idempotency key or returns what it holds.
//
// KEYS[1] the key's hash, KEYS[2] the scope's zset of live keys.
// ARGV[1] fingerprint, ARGV[2] reservation TTL (s), ARGV[3] now (unix ms),
// ARGV[4] the scope's limit of live keys, ARGV[5] how long a key is kept
// once answered (ms). Returns {IdemReserved}, {IdemMismatch},
// {IdemInProgress}, {IdemAnswered, status, headers, body} or {IdemFull}.
var reserveScript = redis.NewScript(`
local fp = redis.call('HGET', KEYS[1], 'fp')
if not fp then
  local now = tonumber(ARGV[3])
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[4]) then return {4} end
  redis.call('HSET', KEYS[1], 'fp', ARGV[1])
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[5]), KEYS[1])
  redis.call('PEXPIRE', KEYS[2], ARGV[5])
  return {0}
end
if fp ~= ARGV[1] then return {1} end
local v = redis.call('HMGET', KEYS[1], 'status', 'hdr', 'body')
if not v[1] then return {2} end
return {3, v[1], v[2], v[3]}
`)

// Answer is a stored first answer.
type Answer struct {
	Status  int
	Headers []byte // JSON object
	Body    []byte
}

// Reserve claims key in scope for a request with fingerprint fp, for at
// most hold; see the Idem* codes. The answer is set for IdemAnswered. A
// scope holds at most limit keys at once, each counted for keep (the time
// an answer is kept) from its reservation.
func (s *Store) Reserve(ctx context.Context, scope, key, fp string, hold, keep time.Duration, limit int) (int, *Answer, error) {
	v, err := reserveScript.Run(ctx, s.rdb, []string{s.idemKey(scope, key), s.idemScopeKey(scope)},
		fp, ttlSeconds(hold), s.now().UnixMilli(), limit, keep.Milliseconds()).Slice()
	if err != nil || len(v) == 0 {
		return 0, nil, fmt.Errorf("idempotency key: %w", err)
	}
	code, _ := v[0].(int64)
	if code != IdemAnswered {
		return int(code), nil, nil
	}
	if len(v) < 4 {
		return 0, nil, fmt.Errorf("idempotency key: unexpected reply %v", v)
	}
	st, _ := v[1].(string)
	n, _ := strconv.Atoi(st)
	h, _ := v[2].(string)
	b, _ := v[3].(string)
	return IdemAnswered, &Answer{Status: n, Headers: []byte(h), Body: []byte(b)}, nil
}

// SaveAnswer stores the answer of a reserved key, kept for ttl.
func (s *Store) SaveAnswer(ctx context.Context, scope, key string, a Answer, ttl time.Duration) error {
	k := s.idemKey(scope, key)
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, k, "status", a.Status, "hdr", a.Headers, "body", a.Body)
		p.Expire(ctx, k, ttl)
		return nil
	})
	if err != nil {
		return fmt.Errorf("idempotency key: save answer: %w", err)
	}
	return nil
}

// ReleaseKey forgets a reserved key whose request failed or was refused
// without effect, so a retry runs again and the key does not count
// against the scope's limit.
func (s *Store) ReleaseKey(ctx context.Context, scope, key string) error {
	k := s.idemKey(scope, key)
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, k)
		p.ZRem(ctx, s.idemScopeKey(scope), k)
		return nil
	})
	return err
}
