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
// --idempotency-key) live in one hash each, outside every queue:
//
//	wahaq:<namespace>:idem:<scope>:<sha256 of the key>
//
// with fields fp (fingerprint of the request), then, once answered, status,
// hdr (JSON headers) and body. Only single-key commands touch it, so it is
// valid on Redis Cluster wherever it lands.
func (s *Store) idemKey(scope, key string) string {
	h := sha256.Sum256([]byte(key))
	return "wahaq:" + s.ns + ":idem:" + scope + ":" + hex.EncodeToString(h[:16])
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
)

// reserveScript reserves an idempotency key or returns what it holds.
//
// KEYS[1] the key's hash. ARGV[1] fingerprint, ARGV[2] reservation TTL (s).
// Returns {IdemReserved}, {IdemMismatch}, {IdemInProgress} or
// {IdemAnswered, status, headers, body}.
var reserveScript = redis.NewScript(`
local fp = redis.call('HGET', KEYS[1], 'fp')
if not fp then
  redis.call('HSET', KEYS[1], 'fp', ARGV[1])
  redis.call('EXPIRE', KEYS[1], ARGV[2])
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
// most hold; see the Idem* codes. The answer is set for IdemAnswered.
func (s *Store) Reserve(ctx context.Context, scope, key, fp string, hold time.Duration) (int, *Answer, error) {
	v, err := reserveScript.Run(ctx, s.rdb, []string{s.idemKey(scope, key)}, fp, ttlSeconds(hold)).Slice()
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

// ReleaseKey forgets a reserved key whose request failed without effect,
// so a retry runs again.
func (s *Store) ReleaseKey(ctx context.Context, scope, key string) error {
	return s.rdb.Del(ctx, s.idemKey(scope, key)).Err()
}
