package main

import (
	"fmt"
	"os"
	"runtime/pprof"
	"strings"

	"github.com/spf13/cobra"

	"github.com/wahaq/wahaq/internal/bench"
)

func init() { register(newBenchCmd) }

func newBenchCmd() *cobra.Command {
	var asJSON, quick, child bool
	var only []string
	var cpuProfile string
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure wahaq against bare asynq on this Redis and an in-process fake WAHA",
		Long: `Measure wahaq against bare asynq, on the Redis of REDIS_URL and an in-process
fake WAHA, and print one table: for each row wahaq's figure, the baseline's
figure from the same run, and their ratio.

Scenarios (--only takes one or more, comma-separated):
  enqueue     50,000 logouts as one batch vs asynq Client.Enqueue from 16 goroutines
  throughput  20,000 logouts, zero-latency WAHA, vs a bare asynq handler
  latency     enqueue-to-completed of single logouts on an idle system, p50 and p99
  teardown    400 sessions, 250 ms per logout, cap 8, two workers: ideal/actual
  footprint   Redis bytes per retained result; peak RSS of a worker child process
  processing  20,000 logouts at concurrency 20 and 50 vs bare asynq and vs asynq
              with the same features by hand (x/rate cap, ResultWriter, Unique)
  rediscost   Redis CPU and commands per logout, on a private redis-server
  isolation   a healthy server's 1,000-session batch beside a hung server vs alone
  skew        ten servers, one with 20x the sessions, cap 4: efficiency, lateness
  waiting     script calls and dequeues per completed logout in a capped teardown
  idle        Redis commands/s of an idle worker with 1, 100 and 1,000 servers vs
              bare asynq with as many queues, on a private redis-server
  fleet       300 servers x 20 sessions, 200 ms per logout, concurrency 40:
              ideal/actual, and bare asynq with the same queues and HTTP call
  callbacks   a 400-session batch beside 40 callback receivers that never answer vs alone

Every scenario uses queues of its own and deletes its keys afterwards.
It takes about eight minutes; --quick runs a fifth of the work.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if child {
				if code := bench.ChildMain(); code != 0 {
					return fmt.Errorf("bench worker child exited with code %d", code)
				}
				return nil
			}
			for i, o := range only {
				only[i] = strings.TrimSpace(o)
				if !strings.Contains(","+strings.Join(bench.Scenarios, ",")+",", ","+only[i]+",") {
					return usagef("--only %q: the scenarios are %s", o, strings.Join(bench.Scenarios, ", "))
				}
			}
			a, err := newApp(cmd)
			if err != nil {
				return err
			}
			if err := a.ping(cmd.Context()); err != nil {
				return fmt.Errorf("%w; start Redis or point REDIS_URL at one", err)
			}
			if cpuProfile != "" {
				f, err := os.Create(cpuProfile)
				if err != nil {
					return err
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return err
				}
				defer pprof.StopCPUProfile()
			}
			sizes := bench.FullSizes()
			if quick {
				sizes = bench.QuickSizes()
			}
			rep, err := bench.Run(cmd.Context(), bench.Options{
				Redis: a.rdb, RedisURL: a.settings.RedisURL, Sizes: sizes, Only: only,
				ChildArgs: []string{"bench", "--child"}, Progress: cmd.ErrOrStderr(),
			})
			if err != nil {
				return err
			}
			if asJSON {
				return rep.WriteJSON(cmd.OutOrStdout())
			}
			return rep.WriteTable(cmd.OutOrStdout())
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	cmd.Flags().BoolVar(&quick, "quick", false, "run a fifth of the work (a first look; the figures are noisier)")
	cmd.Flags().StringSliceVar(&only, "only", nil, "run only these scenarios: "+strings.Join(bench.Scenarios, ", "))
	cmd.Flags().StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the run to this file")
	cmd.Flags().BoolVar(&child, "child", false, "run a worker child process (used by the footprint scenario)")
	_ = cmd.Flags().MarkHidden("cpuprofile")
	_ = cmd.Flags().MarkHidden("child")
	return cmd
}
