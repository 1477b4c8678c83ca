package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wahaq/wahaq/internal/base"
)

// Subscriptions: URLs that receive every final task and/or done batch of
// some instances. The namespace's index (SubscriptionIndex: id -> JSON) is
// what the API lists; the finishing scripts run in one queue's slot and
// cannot read it on Redis Cluster, so each named instance's queue holds a
// copy (Keys.Subscriptions: id -> "<event>,<event>|<url>", read by
// callbackLua). Subscribe writes the index first and the copies after it,
// Unsubscribe removes the copies first: a subscription that delivers is
// always listed, so it can always be deleted.

// MaxSubscriptions bounds the subscriptions of a namespace: every one of
// them costs each final task of its instances a delivery.
const MaxSubscriptions = 100

// Subscription is one subscription as stored.
type Subscription struct {
	ID        string    `json:"id"`
	URL       string    `json:"url"`
	Events    []string  `json:"events"`
	Instances []string  `json:"instances"`
	CreatedAt time.Time `json:"created_at"`
}

// copyValue is the queue copy of s, as callbackLua reads it.
func (s Subscription) copyValue() string {
	return strings.Join(s.Events, ",") + "|" + s.URL
}

// subscribeScript adds a subscription to the index unless it holds
// MaxSubscriptions already.
//
// KEYS[1] subscription index. ARGV[1] id, ARGV[2] JSON, ARGV[3] the limit.
// Returns 1 when added, 0 when the index is full.
var subscribeScript = redis.NewScript(`
if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
`)

// Subscribe stores sub: in the index, then a copy in each of its
// instances' queues. A full index is an error wrapping
// base.ErrTooManySubscriptions.
func (s *Store) Subscribe(ctx context.Context, sub Subscription) error {
	b, err := json.Marshal(sub)
	if err != nil {
		return fmt.Errorf("subscription %s: %w", sub.ID, err)
	}
	n, err := subscribeScript.Run(ctx, s.rdb, []string{SubscriptionIndex(s.ns)}, sub.ID, b, MaxSubscriptions).Int()
	if err != nil {
		return fmt.Errorf("subscribe %s: %w", sub.ID, err)
	}
	if n == 0 {
		return fmt.Errorf("%w: there are %d subscriptions already; delete one first", base.ErrTooManySubscriptions, MaxSubscriptions)
	}
	// One command per queue: the copies live in different slots.
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, inst := range sub.Instances {
			p.HSet(ctx, s.Keys(inst).Subscriptions(), sub.ID, sub.copyValue())
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("subscribe %s: %w", sub.ID, err)
	}
	return nil
}

// Subscriptions lists the namespace's subscriptions, oldest first.
func (s *Store) Subscriptions(ctx context.Context) ([]Subscription, error) {
	m, err := s.rdb.HGetAll(ctx, SubscriptionIndex(s.ns)).Result()
	if err != nil {
		return nil, fmt.Errorf("read subscriptions: %w", err)
	}
	out := make([]Subscription, 0, len(m))
	for id, v := range m {
		var sub Subscription
		if err := json.Unmarshal([]byte(v), &sub); err != nil {
			return nil, fmt.Errorf("subscription %s: %w", id, err)
		}
		out = append(out, sub)
	}
	slices.SortFunc(out, func(a, b Subscription) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// Subscription reads one subscription, or an error wrapping
// base.ErrNotFound.
func (s *Store) Subscription(ctx context.Context, id string) (*Subscription, error) {
	v, err := s.rdb.HGet(ctx, SubscriptionIndex(s.ns), id).Result()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("subscription %s: %w", id, base.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read subscription %s: %w", id, err)
	}
	var sub Subscription
	if err := json.Unmarshal([]byte(v), &sub); err != nil {
		return nil, fmt.Errorf("subscription %s: %w", id, err)
	}
	return &sub, nil
}

// Unsubscribe deletes subscription id: its queue copies, then its index
// entry; deliveries already enqueued for it are dropped when their turn
// comes (SubscriptionLive). It returns the subscription deleted, or an
// error wrapping base.ErrNotFound.
func (s *Store) Unsubscribe(ctx context.Context, id string) (*Subscription, error) {
	sub, err := s.Subscription(ctx, id)
	if err != nil {
		return nil, err
	}
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, inst := range sub.Instances {
			p.HDel(ctx, s.Keys(inst).Subscriptions(), id)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("unsubscribe %s: %w", id, err)
	}
	if err := s.rdb.HDel(ctx, SubscriptionIndex(s.ns), id).Err(); err != nil {
		return nil, fmt.Errorf("unsubscribe %s: %w", id, err)
	}
	return sub, nil
}

// SubscriptionLive reports whether instance's queue still holds
// subscription id.
func (s *Store) SubscriptionLive(ctx context.Context, instance, id string) (bool, error) {
	ok, err := s.rdb.HExists(ctx, s.Keys(instance).Subscriptions(), id).Result()
	if err != nil {
		return false, fmt.Errorf("read subscription %s: %w", id, err)
	}
	return ok, nil
}
