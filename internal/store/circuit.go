package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Circuit-breaker reports. Each worker process keeps its own breaker per
// server (worker/breaker.go); so that a process without one (`wahaq serve`'s
// console) can show a server's state, a worker writes its breaker's state
// changes into the queue's zset Keys.Circuit:
//
//	o:<worker id>  its breaker is open,      score = when the open state ends (ms)
//	h:<worker id>  its breaker is half-open, score = when its trial call must have ended (ms)
//
// A closed breaker has no member. A member whose score has passed is stale,
// from a worker that died or whose breaker went half-open without a task to
// try (gobreaker changes state only when asked): it reads as closed and is
// trimmed by the next write or read. Writes happen on state changes only,
// never per task.

// circuitKeep is how long a circuit set lives after its last report.
const circuitKeep = 24 * time.Hour

// CircuitState is one worker's breaker state as reported in Redis.
type CircuitState int

// Breaker states a worker reports.
const (
	CircuitClosed CircuitState = iota
	CircuitHalfOpen
	CircuitOpen
)

// circuitMember is the member of worker's report in state st.
func circuitMember(st CircuitState, worker string) string {
	if st == CircuitOpen {
		return "o:" + worker
	}
	return "h:" + worker
}

// ReportCircuit records that worker's breaker of instance is now in state st
// until until (ignored for CircuitClosed): one MULTI that trims stale
// reports, drops the worker's previous one and adds the new one.
func (s *Store) ReportCircuit(ctx context.Context, instance, worker string, st CircuitState, until time.Time) error {
	k := s.Keys(instance).Circuit()
	now := strconv.FormatInt(s.now().UnixMilli(), 10)
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.ZRemRangeByScore(ctx, k, "-inf", now)
		p.ZRem(ctx, k, circuitMember(CircuitOpen, worker), circuitMember(CircuitHalfOpen, worker))
		if st != CircuitClosed {
			p.ZAdd(ctx, k, redis.Z{Score: float64(until.UnixMilli()), Member: circuitMember(st, worker)})
			// Stale members of dead workers are trimmed only when someone
			// writes or reads; the expiry bounds what a namespace nobody
			// uses any more keeps. Each write pushes it past every live
			// report (a report lasts seconds, a call timeout at most).
			p.PExpire(ctx, k, circuitKeep)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("report circuit state of %q: %w", instance, err)
	}
	return nil
}

// CircuitReport is how many workers report a server's breaker open or
// half-open now. Workers whose breaker is closed do not report.
type CircuitReport struct {
	Open, HalfOpen int
}

// Circuits returns the current reports of each of instances, trimming the
// stale ones: one pipeline.
func (s *Store) Circuits(ctx context.Context, instances []string) (map[string]CircuitReport, error) {
	now := strconv.FormatInt(s.now().UnixMilli(), 10)
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.StringSliceCmd, len(instances))
	for i, in := range instances {
		k := s.Keys(in).Circuit()
		pipe.ZRemRangeByScore(ctx, k, "-inf", now)
		cmds[i] = pipe.ZRangeByScore(ctx, k, &redis.ZRangeBy{Min: "(" + now, Max: "+inf"})
	}
	out := make(map[string]CircuitReport, len(instances))
	if len(instances) == 0 {
		return out, nil
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("read circuit states: %w", err)
	}
	for i, in := range instances {
		var r CircuitReport
		for _, m := range cmds[i].Val() {
			switch {
			case strings.HasPrefix(m, "o:"):
				r.Open++
			case strings.HasPrefix(m, "h:"):
				r.HalfOpen++
			}
		}
		out[in] = r
	}
	return out, nil
}
