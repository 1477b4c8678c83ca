package console

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/wahaq/wahaq/internal/base"
	"github.com/wahaq/wahaq/tasks"
)

// The console reads through tasks.Inspector and tasks.Producer (the public
// API) and through asynq's Inspector for queue figures, never through the
// store's keys, so the engine may move inside wahaq without breaking it.
// What the public API lacks today (a lookup by session) is
// found by reading asynq's queues, bounded by scanLimit, and is marked as
// such in the package documentation.

// scanLimit bounds how many asynq tasks one lookup reads per queue state.
const scanLimit = 20_000

// scanPage is the page size of asynq listings.
const scanPage = 1000

// CircuitState is the state of a WAHA server's circuit breaker.
type CircuitState string

// Circuit states. CircuitUnknown is what the console shows when the state
// cannot be read (Redis failed, or the server is not one of the
// Inspector's instances).
const (
	CircuitClosed   CircuitState = "closed"
	CircuitOpen     CircuitState = "open"
	CircuitHalfOpen CircuitState = "half-open"
	CircuitUnknown  CircuitState = "unknown"
)

// ServerFigures is one WAHA server's row of the overview.
type ServerFigures struct {
	Name string
	// Counts are asynq's tasks of the server's queue by wahaq state
	// (scheduled, pending, active, retrying).
	Counts map[tasks.State]int
	// Active is how many tasks a worker holds now: calling WAHA, or for a
	// moment waiting for the cap. Cap is the server's concurrency cap.
	Active, Cap int
	// Rate is the configured rate limit in logouts per second; 0: none.
	Rate float64
	// AttemptsPerMin is the observed rate of finished attempts over the last
	// minute; negative while unknown (fewer than two samples).
	AttemptsPerMin float64
	Circuit        CircuitState
	// CircuitNote says how many workers hold the breaker open or
	// half-open ("on 2 workers"); "" when closed or unknown.
	CircuitNote string
	DeadLetters int64
	// OldestPending is the age of the oldest pending task (asynq's latency).
	OldestPending time.Duration
	// Err says what could not be read, if anything.
	Err string
	// Checkable is true when the console offers the server's preflight;
	// Check is the last one run from this process, nil before any.
	Checkable bool
	Check     *checkView
}

// source reads the figures the pages show.
type source struct {
	insp    *tasks.Inspector
	prod    *tasks.Producer
	aq      *asynq.Inspector
	rdb     redis.UniversalClient
	ns      string
	servers []Server
	circuit func(ctx context.Context, instance string) CircuitState
	now     func() time.Time
	mu      sync.Mutex
	samples map[string][]sample // instance -> processed counters, oldest first
}

// sample is asynq's processed-total counter of a queue at a time.
type sample struct {
	at        time.Time
	processed int
}

func (s *source) queue(instance string) string { return s.ns + ":" + instance }

// overview reads every server's figures.
func (s *source) overview(ctx context.Context) []ServerFigures {
	out := make([]ServerFigures, 0, len(s.servers))
	var circuits map[string]tasks.Circuit
	if s.circuit == nil {
		// Every server's in one round trip; on an error each reads unknown.
		circuits, _ = s.insp.Circuits(ctx, "")
	}
	for _, srv := range s.servers {
		f := ServerFigures{Name: srv.Name, Cap: srv.Cap, Rate: srv.Rate, Counts: map[tasks.State]int{},
			AttemptsPerMin: -1, Circuit: CircuitUnknown}
		if s.circuit != nil {
			f.Circuit = s.circuit(ctx, srv.Name)
		} else if c, ok := circuits[srv.Name]; ok {
			f.Circuit, f.CircuitNote = circuitFigures(c)
		}
		info, err := s.aq.GetQueueInfo(s.queue(srv.Name))
		switch {
		case errors.Is(err, asynq.ErrQueueNotFound):
			// Nothing was ever enqueued for this server: all zero.
		case err != nil:
			f.Err = "queue figures unavailable"
		default:
			f.Counts[tasks.StateScheduled] = info.Scheduled
			f.Counts[tasks.StatePending] = info.Pending
			f.Counts[tasks.StateActive] = info.Active
			f.Counts[tasks.StateRetrying] = info.Retry
			f.Active = info.Active
			f.OldestPending = info.Latency
			f.AttemptsPerMin = s.rate(srv.Name, info.ProcessedTotal)
		}
		if p, err := s.insp.DeadLetters(ctx, srv.Name, 0, 0); err == nil {
			f.DeadLetters = p.Total
		} else {
			f.Err = "dead letters unavailable"
		}
		out = append(out, f)
	}
	return out
}

// circuitFigures is the state and note the overview shows for c.
func circuitFigures(c tasks.Circuit) (CircuitState, string) {
	n := 0
	st := CircuitUnknown
	switch c.State {
	case tasks.CircuitClosed:
		return CircuitClosed, ""
	case tasks.CircuitOpen:
		st, n = CircuitOpen, c.Open
	case tasks.CircuitHalfOpen:
		st, n = CircuitHalfOpen, c.HalfOpen
	}
	switch {
	case n == 1:
		return st, "on 1 worker"
	case n > 1:
		return st, fmt.Sprintf("on %d workers", n)
	}
	return st, ""
}

// rate records a sample of the processed counter and returns the attempts
// per minute over the samples of the last minute, or -1 with fewer than two
// samples a second apart. It counts attempts that finished (a logout, a
// failure, a dead letter); tasks handed back for a full cap are not counted
// by asynq.
func (s *source) rate(instance string, processed int) float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	ss := append(s.samples[instance], sample{at: now, processed: processed})
	for len(ss) > 1 && now.Sub(ss[0].at) > time.Minute {
		ss = ss[1:]
	}
	if len(ss) > 120 {
		ss = ss[len(ss)-120:]
	}
	s.samples[instance] = ss
	first, last := ss[0], ss[len(ss)-1]
	span := last.at.Sub(first.at)
	if span < time.Second || last.processed < first.processed {
		return -1
	}
	return float64(last.processed-first.processed) / span.Minutes()
}

// liveTasks lists the payloads of asynq's not-final tasks of one server,
// newest pending first, at most limit per state. states picks the asynq
// lists to read.
func (s *source) liveTasks(instance string, states []tasks.State, limit int, visit func(id string, p base.Payload, st tasks.State) bool) error {
	q := s.queue(instance)
	for _, st := range states {
		var list func(string, ...asynq.ListOption) ([]*asynq.TaskInfo, error)
		switch st {
		case tasks.StatePending:
			list = s.aq.ListPendingTasks
		case tasks.StateScheduled:
			list = s.aq.ListScheduledTasks
		case tasks.StateRetrying:
			list = s.aq.ListRetryTasks
		case tasks.StateActive:
			list = s.aq.ListActiveTasks
		default:
			continue
		}
		for page := 1; (page-1)*scanPage < limit; page++ {
			infos, err := list(q, asynq.PageSize(scanPage), asynq.Page(page))
			if errors.Is(err, asynq.ErrQueueNotFound) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("list %s tasks of %s: %w", st, instance, err)
			}
			for _, ti := range infos {
				p, err := base.DecodePayload(ti.Payload)
				if err != nil {
					continue // a discovery task or a foreign one
				}
				if !visit(ti.ID, p, st) {
					return nil
				}
			}
			if len(infos) < scanPage {
				break
			}
		}
	}
	return nil
}

// batchDeadLetters returns up to limit dead letters of a batch and how many
// it has among the first scanLimit dead letters of its server.
func (s *source) batchDeadLetters(ctx context.Context, b *tasks.Batch, limit int) ([]*tasks.Task, int, error) {
	var out []*tasks.Task
	n := 0
	for off := int64(0); off >= 0 && off < scanLimit; {
		p, err := s.insp.DeadLetters(ctx, b.Instance, off, scanPage)
		if err != nil {
			return nil, 0, err
		}
		for _, t := range p.Tasks {
			if t.BatchID != nil && *t.BatchID == b.BatchID {
				n++
				if len(out) < limit {
					out = append(out, t)
				}
			}
		}
		off = p.NextOffset
	}
	return out, n, nil
}

// findSession returns the live and dead tasks of a session (every server,
// or one), newest first. Finished tasks cannot be found by session: the
// public API keeps no index of them.
func (s *source) findSession(ctx context.Context, instance, session string) ([]*tasks.Task, error) {
	var ids []string
	for _, srv := range s.servers {
		if instance != "" && srv.Name != instance {
			continue
		}
		err := s.liveTasks(srv.Name, []tasks.State{tasks.StateActive, tasks.StatePending, tasks.StateRetrying, tasks.StateScheduled}, scanLimit,
			func(tid string, p base.Payload, _ tasks.State) bool {
				if p.Session == session {
					ids = append(ids, tid)
				}
				return true
			})
		if err != nil {
			return nil, err
		}
	}
	out := make([]*tasks.Task, 0, len(ids))
	for _, id := range ids {
		if t, err := s.insp.Task(ctx, id); err == nil {
			out = append(out, t)
		}
	}
	for off := int64(0); off >= 0 && off < scanLimit; {
		p, err := s.insp.DeadLetters(ctx, instance, off, scanPage)
		if err != nil {
			return nil, err
		}
		for _, t := range p.Tasks {
			if t.Session == session {
				out = append(out, t)
			}
		}
		off = p.NextOffset
	}
	slices.SortStableFunc(out, func(a, b *tasks.Task) int { return b.EnqueuedAt.Compare(a.EnqueuedAt) })
	return out, nil
}

// deadLetters returns up to limit dead letters of a server ("" for all)
// with an outcome ("" for any), and how many match among the first
// scanLimit.
func (s *source) deadLetters(ctx context.Context, instance string, outcome tasks.Outcome, limit int) ([]*tasks.Task, int, error) {
	var out []*tasks.Task
	n := 0
	for off := int64(0); off >= 0 && off < scanLimit; {
		p, err := s.insp.DeadLetters(ctx, instance, off, scanPage)
		if err != nil {
			return nil, 0, err
		}
		if outcome == "" && off == 0 {
			n = int(p.Total)
			out = p.Tasks[:min(len(p.Tasks), limit)]
			return out, n, nil
		}
		for _, t := range p.Tasks {
			if t.Outcome != nil && *t.Outcome == outcome {
				n++
				if len(out) < limit {
					out = append(out, t)
				}
			}
		}
		off = p.NextOffset
	}
	return out, n, nil
}
