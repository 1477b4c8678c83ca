// Package schedule runs the recurring teardowns of the instances file. Every
// wahaq replica (worker or serve) runs it; each tick is claimed in Redis, so
// it is enqueued exactly once however many replicas run.
package schedule

import (
	"context"
	"time"

	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/wahaq/wahaq/internal/config"
	"github.com/wahaq/wahaq/internal/store"
	"github.com/wahaq/wahaq/tasks"
)

// tracerName names the spans the runner starts.
const tracerName = "github.com/wahaq/wahaq/internal/schedule"

// Runner enqueues scheduled teardowns.
type Runner struct {
	producer  *tasks.Producer
	claims    *store.Store
	schedules []config.Schedule
	log       zerolog.Logger
	// Interval is how often the runner looks for due ticks. Default 1s.
	Interval time.Duration
	now      func() time.Time
}

// New returns a Runner that enqueues with p and claims ticks in claims (the
// same Redis and namespace as p). now may be nil (time.Now).
func New(p *tasks.Producer, claims *store.Store, schedules []config.Schedule, log zerolog.Logger, now func() time.Time) *Runner {
	if now == nil {
		now = time.Now
	}
	return &Runner{producer: p, claims: claims, schedules: schedules, log: log, Interval: time.Second, now: now}
}

// Run checks for due ticks until ctx is done. Ticks that fell due while no
// replica ran are not caught up: a teardown hours late could surprise more
// than a missed one, and the next tick comes.
func (r *Runner) Run(ctx context.Context) {
	if len(r.schedules) == 0 {
		return
	}
	last := r.now()
	t := time.NewTicker(r.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			now := r.now()
			r.Check(ctx, last, now)
			last = now
		}
	}
}

// Check enqueues every tick in (from, to] of every schedule that no other
// replica has claimed, and returns how many it enqueued.
func (r *Runner) Check(ctx context.Context, from, to time.Time) int {
	n := 0
	for _, sc := range r.schedules {
		// Next returns the zero time for a cron that never fires (30 February).
		for tick := sc.Spec.Next(from.In(sc.Location)); !tick.IsZero() && !tick.After(to); tick = sc.Spec.Next(tick) {
			if r.fire(ctx, sc, tick) {
				n++
			}
		}
	}
	return n
}

func (r *Runner) fire(ctx context.Context, sc config.Schedule, tick time.Time) bool {
	log := r.log.With().Str("schedule", sc.Name).Str("instance", sc.Instance).Time("tick", tick).Logger()
	ok, err := r.claims.ClaimTick(ctx, sc.Instance, sc.Name, tick)
	if err != nil {
		log.Error().Err(err).Msg("cannot claim schedule tick")
		return false
	}
	if !ok {
		return false // another replica has it
	}
	// A tick has no request to join: it is the root of its trace, and the
	// batch request below (and so every logout of the batch) its child.
	ctx, span := otel.Tracer(tracerName).Start(ctx, "wahaq.schedule", trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(attribute.String("schedule", sc.Name), attribute.String("instance", sc.Instance),
			attribute.String("tick", tick.UTC().Format(time.RFC3339))))
	defer span.End()
	var info *tasks.BatchInfo
	if len(sc.Sessions) > 0 {
		info, err = r.producer.EnqueueBatch(ctx, tasks.BatchRequest{Instance: sc.Instance, Sessions: sc.Sessions})
	} else {
		info, err = r.producer.EnqueueDiscovery(ctx, tasks.DiscoveryRequest{Instance: sc.Instance, Statuses: sc.Statuses})
	}
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
		log.Error().Err(err).Msg("scheduled teardown could not be enqueued")
		return false
	}
	span.SetAttributes(attribute.String("batch_id", info.BatchID))
	log.Info().Str("batch_id", info.BatchID).Msg("scheduled teardown enqueued")
	return true
}
