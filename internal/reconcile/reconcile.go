// Package reconcile repairs the records, dedup claims, batches and queues
// that disagree with asynq's queues: what asynq's own tools (the asynq CLI,
// asynqmon, asynq.Inspector) or a crashed producer leave behind. Every
// worker runs one; each repair is one atomic, idempotent script of
// internal/store, so any number of replicas may run at once.
//
// A pass walks a bounded slice of the namespace's keys (SCAN with a cursor
// kept between passes, on every master of a cluster), so its cost does not
// grow with the number of tasks; a full sweep takes as many passes as the
// keyspace needs. Batches left open are not found by scanning: every pass
// closes those whose producer's lease has ended (the queue's open-batches
// zset, store/batch_lease.go), for every configured instance and every
// instance the scan has seen keys of. Every pass also holds, for each
// paused batch, the tasks that reached asynq's scheduled or retry set since
// the pause (store/pause.go). A held task keeps its asynq task hash, so the
// rule "no record stays live once asynq no longer holds its task" leaves it
// alone: asynq still holds it, wahaq only keeps it out of asynq's queues.
package reconcile

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/wahaq/wahaq/internal/metrics"
	"github.com/wahaq/wahaq/internal/store"
)

// Defaults of Config.
const (
	// DefaultInterval is how often a worker reconciles.
	DefaultInterval = 30 * time.Second
	// DefaultBatchLimit bounds the abandoned batches one pass closes per
	// instance.
	DefaultBatchLimit = 1000
	// DefaultScanCount is SCAN's COUNT hint per step.
	DefaultScanCount = 1000
	// DefaultScanSteps bounds the SCAN steps of one pass per Redis node.
	DefaultScanSteps = 50
	// DefaultResultTTL is how long a record the reconciler ends is kept.
	DefaultResultTTL = 24 * time.Hour
)

// Config configures a Reconciler.
type Config struct {
	// Redis is the client (a cluster client walks every master).
	Redis redis.UniversalClient
	// Namespace is the queue namespace. Defaults to store.DefaultNamespace.
	Namespace string
	// Instances are the instances whose queues are kept in asynq's queue
	// set. Defaults to none.
	Instances []string
	// AwaitEvents are the instances whose completed logouts await WAHA's
	// session.status events: each pass counts those whose wait is over as
	// unconfirmed (store.SweepUnconfirmed). Defaults to none.
	AwaitEvents []string
	// ResultTTL is how long ended records and done batches are kept.
	// Defaults to 24h.
	ResultTTL time.Duration
	// ScanCount is SCAN's COUNT per step. Defaults to 1000.
	ScanCount int64
	// ScanSteps bounds the SCAN steps of a pass per node. Defaults to 50.
	ScanSteps int
	// Metrics receives wahaq_reconciled_total. Defaults to unregistered
	// metrics.
	Metrics *metrics.Metrics
	// Logger logs each repair. Defaults to a disabled logger.
	Logger *zerolog.Logger
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
}

// Reconciler runs reconcile passes. It is safe for concurrent use.
type Reconciler struct {
	cfg   Config
	store *store.Store

	mu      sync.Mutex
	cursors map[string]uint64 // node address -> SCAN cursor
}

// New returns a Reconciler for cfg.
func New(cfg Config) (*Reconciler, error) {
	if cfg.Redis == nil {
		return nil, errors.New("reconcile: Redis is required")
	}
	if cfg.Namespace == "" {
		cfg.Namespace = store.DefaultNamespace
	}
	if cfg.ResultTTL <= 0 {
		cfg.ResultTTL = DefaultResultTTL
	}
	if cfg.ScanCount <= 0 {
		cfg.ScanCount = DefaultScanCount
	}
	if cfg.ScanSteps <= 0 {
		cfg.ScanSteps = DefaultScanSteps
	}
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.New(nil)
	}
	if cfg.Logger == nil {
		l := zerolog.Nop()
		cfg.Logger = &l
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Reconciler{cfg: cfg, store: store.New(cfg.Redis, store.Options{Namespace: cfg.Namespace, Now: cfg.Now}),
		cursors: map[string]uint64{}}, nil
}

// Run reconciles every interval until ctx is done. Errors are logged; the
// next pass tries again.
func (r *Reconciler) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, _, err := r.Pass(ctx); err != nil && ctx.Err() == nil {
				r.cfg.Logger.Warn().Err(err).Msg("reconcile pass failed")
			}
		}
	}
}

// Sweep runs passes until the whole keyspace has been walked once, and
// returns the repairs made. Tests use it as "one reconcile interval".
func (r *Reconciler) Sweep(ctx context.Context) ([]store.Repair, error) {
	var all []store.Repair
	for i := 0; i < 100000; i++ {
		reps, wrapped, err := r.Pass(ctx)
		all = append(all, reps...)
		if err != nil || wrapped {
			return all, err
		}
	}
	return all, errors.New("reconcile: sweep did not end")
}

// Pass runs one bounded pass and returns its repairs, and whether every
// node's SCAN reached the end of the keyspace in it.
func (r *Reconciler) Pass(ctx context.Context) ([]store.Repair, bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	nodes, err := r.nodes(ctx)
	if err != nil {
		return nil, false, err
	}
	var found []store.ScannedKey
	wrapped := true
	for addr, node := range nodes {
		cur := r.cursors[addr]
		for step := 0; step < r.cfg.ScanSteps; step++ {
			keys, next, err := r.store.Scan(ctx, node, cur, r.cfg.ScanCount)
			if err != nil {
				return nil, false, err
			}
			found = append(found, keys...)
			cur = next
			if cur == 0 {
				break
			}
		}
		r.cursors[addr] = cur
		if cur != 0 {
			wrapped = false
		}
	}
	reps, err := r.repair(ctx, found)
	for _, inst := range r.cfg.Instances {
		ok, qerr := r.store.RegisterQueue(ctx, inst)
		if qerr != nil {
			err = errors.Join(err, qerr)
		} else if ok {
			reps = append(reps, store.Repair{Kind: store.RepairQueue, Instance: inst})
		}
	}
	for _, inst := range r.cfg.AwaitEvents {
		if _, serr := r.store.SweepUnconfirmed(ctx, inst); serr != nil {
			err = errors.Join(err, serr)
		}
	}
	for _, rep := range reps {
		r.cfg.Metrics.Reconciled.WithLabelValues(rep.Instance, rep.Kind).Inc()
		ev := r.cfg.Logger.Warn().Str("instance", rep.Instance).Str("kind", rep.Kind)
		switch rep.Kind {
		case store.RepairClaim:
			ev = ev.Str("session", rep.ID)
		case store.RepairBatch:
			ev = ev.Str("batch_id", rep.ID)
		case store.RepairQueue:
		default:
			ev = ev.Str("task_id", rep.ID)
		}
		ev.Msg("reconciled a divergence from asynq's queues")
	}
	return reps, wrapped, err
}

// repair runs the repairs of the keys found, grouped by instance and kind.
func (r *Reconciler) repair(ctx context.Context, found []store.ScannedKey) ([]store.Repair, error) {
	type group struct{ records, claims []string }
	// every configured instance is looked at for abandoned batches, and so
	// is any other instance the scan finds keys of
	groups := map[string]*group{}
	for _, inst := range r.cfg.Instances {
		groups[inst] = &group{}
	}
	for _, k := range found {
		g := groups[k.Instance]
		if g == nil {
			g = &group{}
			groups[k.Instance] = g
		}
		switch k.Kind {
		case store.KeyRecord:
			g.records = append(g.records, k.Name)
		case store.KeyDedup:
			g.claims = append(g.claims, k.Name)
		}
	}
	var out []store.Repair
	var errs error
	for inst, g := range groups {
		// Tasks first: their repairs release claims and move batches.
		reps, err := r.store.ReconcileTasks(ctx, inst, g.records, r.cfg.ResultTTL)
		out, errs = append(out, reps...), errors.Join(errs, err)
		reps, err = r.store.ReleaseStaleClaims(ctx, inst, g.claims)
		out, errs = append(out, reps...), errors.Join(errs, err)
		// one mechanism for batches left open: the producer's lease
		// (store/batch_lease.go)
		reps, err = r.store.CloseAbandonedBatches(ctx, inst, DefaultBatchLimit, r.cfg.ResultTTL)
		out, errs = append(out, reps...), errors.Join(errs, err)
		// a paused batch's tasks that reached asynq's retry or scheduled
		// set after the pause (an attempt in flight that failed, a task
		// handed back) are held; not a divergence, so not a repair
		_, err = r.store.HoldPausedBatches(ctx, inst)
		errs = errors.Join(errs, err)
	}
	if errs != nil {
		return out, fmt.Errorf("reconcile: %w", errs)
	}
	return out, nil
}

// nodes are the Redis nodes to walk, by address: every master of a
// cluster, or the one server.
func (r *Reconciler) nodes(ctx context.Context) (map[string]redis.Cmdable, error) {
	cc, ok := r.cfg.Redis.(*redis.ClusterClient)
	if !ok {
		return map[string]redis.Cmdable{"": r.cfg.Redis}, nil
	}
	var mu sync.Mutex
	out := map[string]redis.Cmdable{}
	err := cc.ForEachMaster(ctx, func(_ context.Context, c *redis.Client) error {
		mu.Lock()
		out[c.Options().Addr] = c
		mu.Unlock()
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reconcile: list masters: %w", err)
	}
	return out, nil
}
