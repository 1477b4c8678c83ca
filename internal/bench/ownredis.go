package bench

// Server-wide Redis counters (INFO cpu, INFO commandstats) count every
// client's work, and resetting them needs CONFIG RESETSTAT, which a shared
// Redis must not be given. The scenarios that read them start a
// redis-server of their own, used by nothing else, and stop it afterwards.

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
	"github.com/wahaq/wahaq/internal/redistest"
)

// ownRedis is a private redis-server and a client of it.
type ownRedis struct {
	srv *redistest.Server
	rdb *redis.Client
}

func startOwnRedis() (*ownRedis, error) {
	srv, err := redistest.Launch(redistest.ServerConfig{Name: "bench redis-server"})
	if err != nil {
		return nil, fmt.Errorf("starting a private redis-server for server-wide counters: %w", err)
	}
	return &ownRedis{srv: srv, rdb: redis.NewClient(&redis.Options{Addr: srv.Addr, PoolSize: 200})}, nil
}

func (o *ownRedis) close() {
	_ = o.rdb.Close()
	o.srv.Kill()
	_ = os.RemoveAll(o.srv.Dir) // a temporary directory Launch made for it
}

// redisStats are the counters read from INFO.
type redisStats struct {
	CPU      float64          // used_cpu_user + used_cpu_sys, seconds
	Commands map[string]int64 // calls per command (lower case)
	Micros   map[string]int64 // CPU µs per command (commandstats usec; a script's includes its inner calls)
}

func (s redisStats) total() int64 {
	var t int64
	for _, n := range s.Commands {
		t += n
	}
	return t
}

// scripts counts script calls: EVALSHA, EVAL and their read-only forms.
func (s redisStats) scripts() int64 {
	return s.Commands["evalsha"] + s.Commands["eval"] + s.Commands["evalsha_ro"] + s.Commands["eval_ro"] + s.Commands["fcall"]
}

// dequeues counts asynq's dequeues (RPOPLPUSH or LMOVE inside its script).
func (s redisStats) dequeues() int64 { return s.Commands["rpoplpush"] + s.Commands["lmove"] }

// top names the n most called commands with their calls, busiest first.
func (s redisStats) top(n int) string {
	return joinEach(s.ranked(s.Commands, n), func(k string) string { return fmt.Sprintf("%s=%d", k, s.Commands[k]) })
}

// ranked returns the commands called at all, highest in by first, at most n.
func (s redisStats) ranked(by map[string]int64, n int) []string {
	names := make([]string, 0, len(s.Commands))
	for k, v := range s.Commands {
		if v > 0 {
			names = append(names, k)
		}
	}
	sort.Slice(names, func(i, j int) bool { return by[names[i]] > by[names[j]] })
	return names[:min(n, len(names))]
}

// joinEach formats names with f, space-separated.
func joinEach(names []string, f func(string) string) string {
	out := make([]string, len(names))
	for i, k := range names {
		out[i] = f(k)
	}
	return strings.Join(out, " ")
}

func (o *ownRedis) reset(ctx context.Context) error {
	return o.rdb.ConfigResetStat(ctx).Err()
}

// stats reads the counters. Commands counts the calls inside scripts too,
// as Redis does; INFO's own call is not counted until it returns.
func (o *ownRedis) stats(ctx context.Context) (redisStats, error) {
	s := redisStats{Commands: map[string]int64{}, Micros: map[string]int64{}}
	info, err := o.rdb.Info(ctx, "cpu", "commandstats").Result()
	if err != nil {
		return s, err
	}
	for _, line := range strings.Split(info, "\n") {
		line = strings.TrimSpace(line)
		if v, ok := strings.CutPrefix(line, "used_cpu_user:"); ok {
			x, _ := strconv.ParseFloat(v, 64)
			s.CPU += x
		} else if v, ok := strings.CutPrefix(line, "used_cpu_sys:"); ok {
			x, _ := strconv.ParseFloat(v, 64)
			s.CPU += x
		} else if rest, ok := strings.CutPrefix(line, "cmdstat_"); ok {
			name, fields, _ := strings.Cut(rest, ":")
			for _, kv := range strings.Split(fields, ",") {
				if v, ok := strings.CutPrefix(kv, "calls="); ok {
					n, _ := strconv.ParseInt(v, 10, 64)
					s.Commands[strings.ToLower(name)] = n
				} else if v, ok := strings.CutPrefix(kv, "usec="); ok {
					n, _ := strconv.ParseInt(v, 10, 64)
					s.Micros[strings.ToLower(name)] = n
				}
			}
		}
	}
	return s, nil
}

// delta returns after - before, without INFO's own calls.
func statsDelta(before, after redisStats) redisStats {
	d := redisStats{CPU: after.CPU - before.CPU, Commands: map[string]int64{}, Micros: map[string]int64{}}
	for k, v := range after.Commands {
		d.Commands[k] = v - before.Commands[k]
	}
	for k, v := range after.Micros {
		d.Micros[k] = v - before.Micros[k]
	}
	d.Commands["info"] = 0
	d.Commands["config|resetstat"] = 0
	return d
}

// perCall names the n commands that took the most CPU with their calls and
// µs per unit of work (units of them), costliest first.
func (s redisStats) perCall(units, n int) string {
	u := float64(units)
	return joinEach(s.ranked(s.Micros, n), func(k string) string {
		return fmt.Sprintf("%s=%.2f/%.1fµs", k, float64(s.Commands[k])/u, float64(s.Micros[k])/u)
	})
}
