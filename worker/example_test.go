package worker_test

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wahaq/wahaq/internal/redistest"
	"github.com/wahaq/wahaq/tasks"
	"github.com/wahaq/wahaq/wahaclient/wahafake"
	"github.com/wahaq/wahaq/worker"
)

// Run a worker against a WAHA server (here the fake one) and wait for the
// logout it performs. In your service: redis.NewClient(&redis.Options{Addr:
// ...}), the default namespace, your WAHA servers' URLs and keys, and
// w.Run(ctx) until SIGTERM.
func Example() {
	opt, err := redis.ParseURL(redistest.MustURL())
	if err != nil {
		panic(err)
	}
	rdb := redis.NewClient(opt)
	ns := fmt.Sprintf("example%d", time.Now().UnixNano())
	defer func() { redistest.Cleanup(rdb, ns); _ = rdb.Close() }()

	waha, err := wahafake.New(wahafake.Options{APIKey: "secret", Sessions: 1})
	if err != nil {
		panic(err)
	}
	defer func() {
		if err := waha.Close(); err != nil {
			panic(err)
		}
	}()

	w, err := worker.New(worker.Config{
		Redis: rdb, Namespace: ns,
		Instances: []worker.Instance{{Name: "default", BaseURL: waha.URL(), APIKey: "secret", Concurrency: 2}},
	})
	if err != nil {
		panic(err)
	}
	if err := w.Start(); err != nil {
		panic(err)
	}
	defer w.Shutdown()

	ctx := context.Background()
	cfg := tasks.Config{Redis: rdb, Namespace: ns}
	p, err := tasks.NewProducer(cfg)
	if err != nil {
		panic(err)
	}
	insp, err := tasks.NewInspector(cfg)
	if err != nil {
		panic(err)
	}
	defer func() {
		if err := insp.Close(); err != nil {
			panic(err)
		}
	}()
	task, err := p.Enqueue(ctx, tasks.LogoutRequest{Session: "session-0001"})
	if err != nil {
		panic(err)
	}
	// WaitTask answers as soon as the worker has finished the logout (or
	// after the wait with the current state); it does not poll Redis.
	t, err := insp.WaitTask(ctx, task.ID, 30*time.Second)
	if err != nil {
		panic(err)
	}
	if !t.State.Final() {
		panic("the logout did not finish within 30s: " + string(t.State))
	}
	fmt.Println(t.State, *t.Outcome, t.Result.Status, t.Result.HTTPStatus)
	// Output:
	// completed logged_out success 201
}
