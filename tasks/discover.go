package tasks

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wahaq/wahaq/internal/asynqwire"
)

// TypeDiscover is the asynq task type that lists a server's sessions and
// fills an "all" batch with their logouts. It runs in the worker because only
// the worker holds WAHA keys.
const TypeDiscover = "wahaq:discover"

// discoverRetries bounds retries of a discovery (listing sessions is cheap and
// a person is waiting for the batch).
const discoverRetries = 5

// DiscoverPayload is the payload of a discovery task.
type DiscoverPayload struct {
	// Instance is the WAHA server whose sessions are listed.
	Instance string `json:"instance"`
	// BatchID is the batch to fill.
	BatchID string `json:"batch_id"`
	// Statuses keeps only sessions in these statuses; empty keeps all.
	Statuses []string `json:"statuses,omitempty"`
	// MaxRetries is the retry limit of the logouts it enqueues, fixed when
	// the batch was requested.
	MaxRetries int `json:"max_retries"`
}

// KnownStatuses are WAHA's session statuses. Others are accepted too (newer
// servers add some) if they look like one.
var KnownStatuses = []string{"STOPPED", "STARTING", "SCAN_QR_CODE", "WORKING", "FAILED", "PASSKEY_REQUIRED", "PASSKEY_CONFIRMATION_REQUIRED"}

// NormalizeStatuses upper-cases and checks status filters.
func NormalizeStatuses(in []string) ([]string, error) {
	out := make([]string, 0, len(in))
	for _, s := range in {
		s = strings.ToUpper(strings.TrimSpace(s))
		if s == "" {
			continue
		}
		ok := len(s) <= 40
		for i := 0; ok && i < len(s); i++ {
			ok = s[i] >= 'A' && s[i] <= 'Z' || s[i] == '_'
		}
		if !ok {
			return nil, fmt.Errorf("%w: status %q is not a WAHA session status (e.g. %s)", ErrInvalidInput, s, strings.Join(KnownStatuses, ", "))
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out, nil
}

// DiscoveryRequest asks for the logout of every session of a server,
// optionally only those in some statuses.
type DiscoveryRequest struct {
	// Instance is the WAHA server name. Empty means "default".
	Instance string
	// Statuses filters sessions by status (e.g. WORKING); empty means all.
	Statuses []string
	When
}

// EnqueueDiscovery creates a batch and a task that, at the requested time,
// lists the server's sessions (GET /api/sessions?all=true) and enqueues
// their logouts into the batch.
func (p *Producer) EnqueueDiscovery(ctx context.Context, r DiscoveryRequest) (*BatchInfo, error) {
	instance, err := p.checkInstance(r.Instance)
	if err != nil {
		return nil, err
	}
	statuses, err := NormalizeStatuses(r.Statuses)
	if err != nil {
		return nil, err
	}
	at, err := r.When.resolve(p.cfg.Now())
	if err != nil {
		return nil, err
	}
	id := NewID()
	if err := p.store.CreateBatch(ctx, instance, id, at, true); err != nil {
		return nil, err
	}
	payload, _ := json.Marshal(DiscoverPayload{Instance: instance, BatchID: id, Statuses: statuses, MaxRetries: p.cfg.MaxRetries})
	if err := p.store.enqueueRaw(ctx, instance, id, TypeDiscover, payload, at, discoverRetries, p.cfg.TaskTimeout); err != nil {
		return nil, err
	}
	return &BatchInfo{BatchID: id, Discovering: true}, nil
}

// enqueueRawScript enqueues a plain asynq task (no wahaq record).
// KEYS[1] asynq task, KEYS[2] pending list or scheduled set. ARGV[1] id,
// ARGV[2] message, ARGV[3] now (ns), ARGV[4] process-at (Unix s, "0" = now).
var enqueueRawScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if ARGV[4] == '0' then
  redis.call('HSET', KEYS[1], 'msg', ARGV[2], 'state', 'pending', 'pending_since', ARGV[3])
  redis.call('LPUSH', KEYS[2], ARGV[1])
else
  redis.call('HSET', KEYS[1], 'msg', ARGV[2], 'state', 'scheduled')
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
end
return 1
`)

func (s *Store) enqueueRaw(ctx context.Context, instance, id, typ string, payload []byte, at time.Time, retry int32, timeout time.Duration) error {
	k := s.keys(instance)
	if err := s.publish(ctx, k.q); err != nil {
		return err
	}
	msg := asynqwire.Encode(asynqwire.Message{Type: typ, Payload: payload, ID: id, Queue: k.q, Retry: retry,
		TimeoutSeconds: int64(math.Ceil(timeout.Seconds()))})
	list, processAt := asynqwire.PendingKey(k.q), "0"
	if !at.IsZero() {
		list, processAt = asynqwire.ScheduledKey(k.q), strconv.FormatInt(ceilUnix(at), 10)
	}
	n, err := enqueueRawScript.Run(ctx, s.rdb, []string{asynqwire.TaskKey(k.q, id), list},
		id, msg, s.now().UnixNano(), processAt).Int()
	if err != nil {
		return fmt.Errorf("enqueue %s: %w", typ, err)
	}
	if n == 0 {
		return fmt.Errorf("enqueue %s: task id %s exists", typ, id)
	}
	return nil
}
