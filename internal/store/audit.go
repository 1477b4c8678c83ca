package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// The audit log (internal/audit) is one Redis stream per namespace, outside
// every queue:
//
//	wahaq:<namespace>:audit   entries (stream; id = <time ms>-<seq>, field "e" = the entry's JSON)
//
// A stream because its ids are times, so a time filter is an id range and
// paging is XREVRANGE from the last id seen, and because one XTRIM bounds
// it by age (MINID) and another by count (MAXLEN). Only single-key commands
// touch it, so it is valid on Redis Cluster wherever it lands.

// AuditKey is the audit log's stream.
func (s *Store) AuditKey() string { return "wahaq:" + s.ns + ":audit" }

// auditAppendScript appends one entry and trims the log by age and count in
// the same step, so the log is never longer or older than its bounds.
//
// KEYS[1] the audit stream. ARGV[1] now (Unix ms, the store's clock),
// ARGV[2] max age (ms; 0: no bound), ARGV[3] max entries (0: no bound),
// ARGV[4] the entry's JSON.
// Returns the new entry's id.
//
// The id is <now>-*, never below the stream's last id (a caller whose clock
// lags another's would otherwise be refused by XADD): such an entry takes
// the last id's time.
var auditAppendScript = redis.NewScript(`
local ms = tonumber(ARGV[1])
local top = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if top[1] then
  local tms = tonumber(string.match(top[1][1], '^(%d+)'))
  if tms > ms then ms = tms end
end
local id = redis.call('XADD', KEYS[1], string.format('%d-*', ms), 'e', ARGV[4])
local age = tonumber(ARGV[2])
if age > 0 then
  redis.call('XTRIM', KEYS[1], 'MINID', string.format('%d', tonumber(ARGV[1]) - age))
end
local n = tonumber(ARGV[3])
if n > 0 then redis.call('XTRIM', KEYS[1], 'MAXLEN', n) end
return id
`)

// AuditAppend appends an entry (its JSON) to the audit log and drops
// entries older than maxAge or beyond the newest maxLen (0: no bound).
// It returns the entry's id.
func (s *Store) AuditAppend(ctx context.Context, entry []byte, maxAge time.Duration, maxLen int64) (string, error) {
	id, err := auditAppendScript.Run(ctx, s.rdb, []string{s.AuditKey()},
		s.now().UnixMilli(), maxAge.Milliseconds(), maxLen, entry).Text()
	if err != nil {
		return "", fmt.Errorf("audit append: %w", err)
	}
	return id, nil
}

// AuditEntry is one stored audit entry: its id and its JSON.
type AuditEntry struct {
	ID   string
	JSON []byte
}

// AuditBefore returns up to count entries, newest first, with ids below
// before ("" or "+": from the newest) and not below from ("" or "-": down to
// the oldest). Both bounds are stream ids ("<ms>" or "<ms>-<seq>"); before
// is exclusive, from inclusive.
func (s *Store) AuditBefore(ctx context.Context, before, from string, count int64) ([]AuditEntry, error) {
	end := "+"
	if before != "" && before != "+" {
		end = "(" + before
	}
	start := "-"
	if from != "" {
		start = from
	}
	msgs, err := s.rdb.XRevRangeN(ctx, s.AuditKey(), end, start, count).Result()
	if err != nil {
		return nil, fmt.Errorf("audit read: %w", err)
	}
	out := make([]AuditEntry, 0, len(msgs))
	for _, m := range msgs {
		v, _ := m.Values["e"].(string)
		out = append(out, AuditEntry{ID: m.ID, JSON: []byte(v)})
	}
	return out, nil
}

// AuditSpan returns how many entries the audit log holds and the time of
// its oldest one (zero when it is empty).
func (s *Store) AuditSpan(ctx context.Context) (int64, time.Time, error) {
	pipe := s.rdb.Pipeline()
	n := pipe.XLen(ctx, s.AuditKey())
	first := pipe.XRangeN(ctx, s.AuditKey(), "-", "+", 1)
	if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
		return 0, time.Time{}, fmt.Errorf("audit span: %w", err)
	}
	var oldest time.Time
	if ms := first.Val(); len(ms) > 0 {
		oldest = AuditIDTime(ms[0].ID)
	}
	return n.Val(), oldest, nil
}

// AuditIDTime is the time of an audit entry's id (zero for a malformed id).
func AuditIDTime(id string) time.Time {
	ms, _, _ := strings.Cut(id, "-")
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.UnixMilli(n).UTC()
}
