package tasks

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/wahaq/wahaq/internal/base"
	"github.com/wahaq/wahaq/internal/store"
	"github.com/wahaq/wahaq/wahaclient"
)

// discoverTimeout is asynq's timeout of one discovery attempt: a listing of
// hundreds of thousands of sessions is read while their logouts are
// enqueued, which takes minutes, not a logout's seconds. A server that stops
// sending is caught sooner by the client's per-read timeout.
const discoverTimeout = 30 * time.Minute

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
		if !wahaclient.LooksLikeStatus(s) {
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
	// CallbackURL, when set, is posted the batch once it is done.
	CallbackURL string
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
	if err := p.checkCallback(r.CallbackURL); err != nil {
		return nil, err
	}
	at, err := r.When.resolve(p.cfg.Now())
	if err != nil {
		return nil, err
	}
	id := base.NewID()
	ctx, span, tp := startEnqueueBatch(ctx, "wahaq.enqueue_discovery", instance, id, 0)
	info, err := p.enqueueDiscovery(ctx, instance, id, r, statuses, at, tp)
	endSpan(span, err)
	return info, err
}

func (p *Producer) enqueueDiscovery(ctx context.Context, instance, id string, r DiscoveryRequest, statuses []string, at time.Time, tp string) (*BatchInfo, error) {
	if err := p.createBatch(ctx, instance, id, at, true, r.CallbackURL); err != nil {
		return nil, err
	}
	payload, err := json.Marshal(base.DiscoverPayload{Instance: instance, BatchID: id, Statuses: statuses, MaxRetries: p.cfg.MaxRetries,
		TraceParent: tp, Retries: base.DefaultDiscoverRetries})
	if err == nil {
		err = p.store.EnqueueRaw(ctx, instance, id, base.TypeDiscover, payload, at, store.AsynqMaxRetry, max(p.cfg.TaskTimeout, discoverTimeout))
	}
	if err != nil {
		// Close the batch with the error, or it would read "discovering"
		// for ever with nothing left to fill it.
		_ = p.store.CloseBatch(context.WithoutCancel(ctx), instance, id, 0, "discovery could not be enqueued: "+err.Error(), p.cfg.ResultTTL)
		return nil, err
	}
	return &BatchInfo{BatchID: id, Discovering: true}, nil
}
