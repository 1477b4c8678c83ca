package bench

import (
	"context"
	"time"
)

// ---- 7. Redis cost per logout ----

// RedisCostSide is one contender's Redis cost per performed logout.
type RedisCostSide struct {
	CPUMicros float64 // used_cpu_user+used_cpu_sys delta per logout, µs
	Commands  float64 // INFO commandstats calls per logout (inner calls of scripts included)
	Scripts   float64 // EVALSHA+EVAL per logout
	Took      time.Duration
}

// RedisCostFigures compare wahaq's Redis cost with both peers'.
type RedisCostFigures struct {
	N, Concurrency        int
	Wahaq, Bare, Features RedisCostSide
}

// RedisCost processes N logouts per contender at the scenario concurrency on
// a private redis-server, resetting its counters after the enqueue and
// reading them when the batch is done, so the figures hold the processing
// alone.
func RedisCost(ctx context.Context, e *env) (RedisCostFigures, error) {
	f := RedisCostFigures{N: e.sizes.ThroughputN, Concurrency: e.sizes.Concurrency}
	own, err := startOwnRedis()
	if err != nil {
		return f, err
	}
	defer own.close()
	fake, err := newFake(0)
	if err != nil {
		return f, err
	}
	defer fake.Close()
	ns := e.ns(ScenarioRedisCost)
	for _, side := range []struct {
		who contender
		out *RedisCostSide
	}{{contBare, &f.Bare}, {contFeatures, &f.Features}, {contWahaq, &f.Wahaq}} {
		var before redisStats
		took, err := processRun(ctx, own.rdb, fake, ns, side.who, f.N, f.Concurrency, func() error {
			if err := own.reset(ctx); err != nil {
				return err
			}
			var err error
			before, err = own.stats(ctx)
			return err
		})
		if err != nil {
			return f, err
		}
		after, err := own.stats(ctx)
		if err != nil {
			return f, err
		}
		d := statsDelta(before, after)
		n := float64(f.N)
		*side.out = RedisCostSide{CPUMicros: d.CPU * 1e6 / n, Commands: float64(d.total()) / n, Scripts: float64(d.scripts()) / n, Took: took}
		e.logf("rediscost: %s %.1f µs CPU, %.1f commands, %.1f scripts per logout", side.who, side.out.CPUMicros, side.out.Commands, side.out.Scripts)
		// where it goes, for whoever looks into this row: calls and µs per
		// logout of the busiest commands (a script's µs include its inner calls)
		e.logf("rediscost: %s per logout: %s", side.who, d.perCall(f.N, 16))
		if err := own.rdb.FlushAll(ctx).Err(); err != nil { // our own server: nothing else lives there
			return f, err
		}
	}
	return f, nil
}
