package bench

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/wahaq/wahaq/tasks"
	"github.com/wahaq/wahaq/wahaclient/wahafake"
	"github.com/wahaq/wahaq/worker"
)

// Helpers shared by the scenarios.

func sessionNames(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = prefix + "-" + strconv.Itoa(i+1)
	}
	return out
}

func producer(rdb redis.UniversalClient, ns string, instances ...string) (*tasks.Producer, error) {
	return tasks.NewProducer(tasks.Config{Redis: rdb, Namespace: ns, Instances: instances})
}

func newWorker(rdb redis.UniversalClient, ns, wahaURL string, concurrency, capacity int) (*worker.Worker, error) {
	return worker.New(worker.Config{
		Redis: rdb, Namespace: ns,
		Instances:   []worker.Instance{{Name: "default", BaseURL: wahaURL, Concurrency: capacity}},
		Concurrency: concurrency,
		Registerer:  prometheus.NewRegistry(),
	})
}

// waitBatch polls a batch every interval until it is done.
func waitBatch(ctx context.Context, insp *tasks.Inspector, id string, interval time.Duration, timeout time.Duration) (*tasks.Batch, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		b, err := insp.Batch(ctx, id)
		if err == nil && b.Done {
			return b, nil
		}
		if err != nil && !errors.Is(err, tasks.ErrNotFound) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			if b != nil {
				return nil, fmt.Errorf("batch %s not done after %s: %v", id, timeout, b.Counts)
			}
			return nil, ctx.Err()
		case <-time.After(interval):
		}
	}
}

func newFake(latency time.Duration) (*wahafake.Server, error) {
	return wahafake.New(wahafake.Options{LogoutLatency: latency})
}

// inspector reads back what producer(rdb, ns) enqueued.
func inspector(rdb redis.UniversalClient, ns string, instances ...string) *tasks.Inspector {
	insp, err := tasks.NewInspector(tasks.Config{Redis: rdb, Namespace: ns, Instances: instances})
	if err != nil {
		panic(err) // only a nil client fails, and rdb is not nil
	}
	return insp
}
