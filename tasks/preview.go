package tasks

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/wahaq/wahaq/wahaclient"
)

// SessionLister streams a WAHA server's sessions; *wahaclient.Client is
// one. Preview reads the listing through it.
type SessionLister interface {
	EachSession(ctx context.Context, all bool, fn func(wahaclient.ListEntry) error) error
}

// ErrPreviewUnavailable is returned by Preview when the Producer has no
// WAHA client for the instance (Config.WAHA).
var ErrPreviewUnavailable = errors.New("preview unavailable: no WAHA client for the instance")

// PreviewNames is how many session names a Preview lists.
const PreviewNames = 100

// previewChunk is how many listed sessions Preview checks against the live
// tasks at a time: memory holds one chunk, never the listing.
const previewChunk = 1000

// Skip reasons of a Preview besides the listing's (wahaclient.Skip*).
const (
	// SkipStatusFilter: a listed session left out by the request's status
	// filter.
	SkipStatusFilter = "status_filter"
	// SkipDuplicate: a session named again in the same request.
	SkipDuplicate = "duplicate"
)

// PreviewRequest asks what a batch would take. Sessions empty means an
// "all" batch (every session of the server, filtered by Statuses).
type PreviewRequest struct {
	// Instance is the WAHA server name. Empty means "default".
	Instance string
	// Sessions are the sessions of a batch of named sessions.
	Sessions []string
	// Statuses filters an "all" batch's sessions by status; empty means
	// every session.
	Statuses []string
}

// Preview is what a batch would take now (POST /v1/batches with "dry_run",
// `wahaq bulk --dry-run`). Nothing was enqueued and no logout was called.
type Preview struct {
	// DryRun is always true: it tells a preview from a batch.
	DryRun   bool   `json:"dry_run"`
	Instance string `json:"instance"`
	// All is true for the preview of an "all" batch.
	All bool `json:"all"`
	// Statuses is the status filter applied.
	Statuses []string `json:"status,omitempty"`
	// Listed is how many entries the server's listing held.
	Listed int64 `json:"listed"`
	// ByStatus counts the listed sessions per status, before the filter.
	ByStatus map[string]int64 `json:"by_status"`
	// Requested is how many sessions the request named (0 for "all").
	Requested int64 `json:"requested"`
	// Matched is how many sessions the batch would name: those listed that
	// pass the filter, or the named ones without repeats.
	Matched int64 `json:"matched"`
	// WouldEnqueue is how many logouts the batch would create now.
	WouldEnqueue int64 `json:"would_enqueue"`
	// AlreadyQueued is how many of Matched have a live logout (scheduled,
	// pending, active or retrying): the batch would not create them again.
	AlreadyQueued int64 `json:"already_queued"`
	// Skipped counts what was left out, per reason: the listing's entries
	// that are not sessions (not_object, no_name, bad_name, bad_status),
	// status_filter, and for named sessions duplicate.
	Skipped map[string]int64 `json:"skipped"`
	// Names are the first PreviewNames sessions the batch would create
	// logouts for, in listing (or request) order.
	Names []string `json:"names"`
	// OnServer and NotOnServer count, for named sessions, those the
	// server's listing holds and those it does not (their logouts would
	// end not_found); NotOnServerNames are the first PreviewNames of the
	// latter.
	OnServer         *int64   `json:"on_server,omitempty"`
	NotOnServer      *int64   `json:"not_on_server,omitempty"`
	NotOnServerNames []string `json:"not_on_server_names,omitempty"`
}

// Preview lists the server's sessions now (streaming: memory does not grow
// with the listing), applies the status filter and the dedup against live
// tasks, and answers what the batch would take. It enqueues nothing, calls
// no logout and writes nothing to Redis. It returns ErrInvalidInput for a
// bad request, ErrPreviewUnavailable without a WAHA client for the
// instance, and WAHA's error (a *wahaclient.APIError) when the listing
// fails.
func (p *Producer) Preview(ctx context.Context, r PreviewRequest) (*Preview, error) {
	instance, err := p.checkInstance(r.Instance)
	if err != nil {
		return nil, err
	}
	statuses, err := NormalizeStatuses(r.Statuses)
	if err != nil {
		return nil, err
	}
	if len(r.Sessions) > 0 && len(statuses) > 0 {
		return nil, fmt.Errorf("%w: a status filter applies to \"all\" only, not to named sessions", ErrInvalidInput)
	}
	if len(r.Sessions) > p.cfg.MaxBatch {
		return nil, fmt.Errorf("%w: the batch names %d sessions; at most %d are allowed", ErrInvalidInput, len(r.Sessions), p.cfg.MaxBatch)
	}
	for i, s := range r.Sessions {
		if err := ValidateSessionName(s); err != nil {
			return nil, fmt.Errorf("sessions[%d]: %w", i, err)
		}
	}
	lister := p.cfg.WAHA[instance]
	if lister == nil {
		return nil, fmt.Errorf("%w %q", ErrPreviewUnavailable, instance)
	}
	if len(statuses) == 0 {
		statuses = nil
	}
	pv := &Preview{DryRun: true, Instance: instance, All: len(r.Sessions) == 0, Statuses: statuses,
		ByStatus: map[string]int64{}, Skipped: map[string]int64{}, Names: []string{}}
	chunk := make([]string, 0, previewChunk)
	flush := func() error {
		live, err := p.store.LiveSessions(ctx, instance, chunk)
		if err != nil {
			return err
		}
		for i, l := range live {
			if l {
				pv.AlreadyQueued++
				continue
			}
			pv.WouldEnqueue++
			if len(pv.Names) < PreviewNames {
				pv.Names = append(pv.Names, chunk[i])
			}
		}
		chunk = chunk[:0]
		return nil
	}
	if pv.All {
		err = lister.EachSession(ctx, true, func(e wahaclient.ListEntry) error {
			pv.Listed++
			if e.Skip != "" {
				pv.Skipped[e.Skip]++
				return nil
			}
			pv.ByStatus[e.Session.Status]++
			if len(statuses) > 0 && !slices.Contains(statuses, e.Session.Status) {
				pv.Skipped[SkipStatusFilter]++
				return nil
			}
			pv.Matched++
			chunk = append(chunk, e.Session.Name)
			if len(chunk) == previewChunk {
				return flush()
			}
			return nil
		})
		if err == nil {
			err = flush()
		}
		if err != nil {
			return nil, err
		}
		return pv, nil
	}
	// Named sessions: the request bounds what is held (MaxBatch names).
	pv.Requested = int64(len(r.Sessions))
	named := make(map[string]bool, len(r.Sessions)) // name -> seen in the listing
	for _, s := range r.Sessions {
		if _, dup := named[s]; dup {
			pv.Skipped[SkipDuplicate]++
			continue
		}
		named[s] = false
		pv.Matched++
		chunk = append(chunk, s)
		if len(chunk) == previewChunk {
			if err := flush(); err != nil {
				return nil, err
			}
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	var on int64
	err = lister.EachSession(ctx, true, func(e wahaclient.ListEntry) error {
		pv.Listed++
		if e.Skip != "" {
			pv.Skipped[e.Skip]++
			return nil
		}
		pv.ByStatus[e.Session.Status]++
		if seen, ok := named[e.Session.Name]; ok && !seen {
			named[e.Session.Name] = true
			on++
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	off := pv.Matched - on
	pv.OnServer, pv.NotOnServer = &on, &off
	for _, s := range r.Sessions {
		if len(pv.NotOnServerNames) == PreviewNames {
			break
		}
		if seen, ok := named[s]; ok && !seen {
			pv.NotOnServerNames = append(pv.NotOnServerNames, s)
			named[s] = true // listed once
		}
	}
	return pv, nil
}
