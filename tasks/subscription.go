package tasks

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/wahaq/wahaq/internal/base"
	"github.com/wahaq/wahaq/internal/store"
)

// Events a subscription may name.
const (
	// EventTaskFinal: a task became completed, dead or canceled.
	EventTaskFinal = "task.final"
	// EventBatchDone: a batch became done.
	EventBatchDone = "batch.done"
)

// MaxSubscriptions is how many subscriptions one namespace may hold.
const MaxSubscriptions = 100

// Subscription is a URL that receives every final task and/or done batch of
// some instances, signed like callbacks (Standard Webhooks, the worker's
// WAHAQ_CALLBACK_SECRET), as {"type": event, "timestamp", "data": the task
// or batch JSON}.
type Subscription struct {
	// ID identifies the subscription (DELETE /v1/subscriptions/{id}).
	ID string `json:"id"`
	// URL receives the events; Config.CallbackAllow must allow it.
	URL string `json:"url"`
	// Events are EventTaskFinal and/or EventBatchDone.
	Events []string `json:"events"`
	// Instances are the WAHA servers whose tasks and batches it receives.
	Instances []string `json:"instances"`
	// CreatedAt is when it was made.
	CreatedAt time.Time `json:"created_at"`
}

// SubscriptionRequest asks for a subscription.
type SubscriptionRequest struct {
	// URL receives the events. It must be allowed by Config.CallbackAllow.
	URL string
	// Events are EventTaskFinal and/or EventBatchDone. Empty means both.
	Events []string
	// Instances are the WAHA servers whose tasks and batches it receives.
	// Empty means every instance configured now (an instance added to the
	// configuration later is not included: subscribe again).
	Instances []string
}

// Subscribe makes a subscription. Invalid input (no URL, a URL the allow
// list refuses, an unknown event or instance) wraps ErrInvalidInput; a
// namespace holding MaxSubscriptions already, ErrTooManySubscriptions.
// Deliveries start with the tasks and batches that end after it returns.
func (p *Producer) Subscribe(ctx context.Context, r SubscriptionRequest) (*Subscription, error) {
	if r.URL == "" {
		return nil, fmt.Errorf("%w: url is required", ErrInvalidInput)
	}
	if err := p.checkCallback(r.URL); err != nil {
		return nil, err
	}
	events := []string{}
	for _, e := range r.Events {
		if e != EventTaskFinal && e != EventBatchDone {
			return nil, fmt.Errorf("%w: unknown event %q: use %q or %q", ErrInvalidInput, e, EventTaskFinal, EventBatchDone)
		}
		if !slices.Contains(events, e) {
			events = append(events, e)
		}
	}
	if len(events) == 0 {
		events = []string{EventTaskFinal, EventBatchDone}
	}
	instances := []string{}
	for _, in := range r.Instances {
		name, err := p.checkInstance(in)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(instances, name) {
			instances = append(instances, name)
		}
	}
	if len(instances) == 0 {
		instances = slices.Clone(p.cfg.Instances)
	}
	s := store.Subscription{ID: base.NewID(), URL: r.URL, Events: events, Instances: instances,
		CreatedAt: time.UnixMilli(p.cfg.Now().UnixMilli()).UTC()}
	if err := p.store.Subscribe(ctx, s); err != nil {
		return nil, err
	}
	return newSubscription(s), nil
}

// Unsubscribe deletes a subscription and returns it, or ErrNotFound.
// Deliveries it had enqueued and not yet posted are dropped.
func (p *Producer) Unsubscribe(ctx context.Context, id string) (*Subscription, error) {
	if err := base.ValidateID("subscription id", id); err != nil {
		return nil, err
	}
	s, err := p.store.Unsubscribe(ctx, id)
	if err != nil {
		return nil, err
	}
	return newSubscription(*s), nil
}

// Subscriptions lists the subscriptions, oldest first.
func (i *Inspector) Subscriptions(ctx context.Context) ([]Subscription, error) {
	ss, err := i.store.Subscriptions(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Subscription, len(ss))
	for j, s := range ss {
		out[j] = *newSubscription(s)
	}
	return out, nil
}

// Subscription returns one subscription, or ErrNotFound.
func (i *Inspector) Subscription(ctx context.Context, id string) (*Subscription, error) {
	if err := base.ValidateID("subscription id", id); err != nil {
		return nil, err
	}
	s, err := i.store.Subscription(ctx, id)
	if err != nil {
		return nil, err
	}
	return newSubscription(*s), nil
}

func newSubscription(s store.Subscription) *Subscription {
	return &Subscription{ID: s.ID, URL: s.URL, Events: s.Events, Instances: s.Instances, CreatedAt: s.CreatedAt}
}
