package worker_test

import (
	"context"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
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

// Mount the worker's handler in an asynq server of your own (your queues,
// your middleware) instead of Start: the worker's fast path stays with its
// own server, so your server's asynq completes each task itself. The queue
// of a WAHA server is what Producer.Queue names.
func ExampleWorker_Handler() {
	opt, err := redis.ParseURL(redistest.MustURL())
	if err != nil {
		panic(err)
	}
	rdb := redis.NewClient(opt)
	ns := fmt.Sprintf("example%d", time.Now().UnixNano())
	defer func() { redistest.Cleanup(rdb, ns); _ = rdb.Close() }()
	waha, err := wahafake.New(wahafake.Options{Sessions: 1})
	if err != nil {
		panic(err)
	}
	defer func() { _ = waha.Close() }()
	w, err := worker.New(worker.Config{Redis: rdb, Namespace: ns,
		Instances: []worker.Instance{{Name: "default", BaseURL: waha.URL()}}})
	if err != nil {
		panic(err)
	}

	ctx := context.Background()
	cfg := tasks.Config{Redis: rdb, Namespace: ns}
	p, err := tasks.NewProducer(cfg)
	if err != nil {
		panic(err)
	}
	srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{Concurrency: 4,
		Queues: map[string]int{p.Queue("default"): 1}, TaskCheckInterval: 10 * time.Millisecond, LogLevel: asynq.WarnLevel})
	if err := srv.Start(w.Handler()); err != nil {
		panic(err)
	}
	defer srv.Shutdown()
	insp, err := tasks.NewInspector(cfg)
	if err != nil {
		panic(err)
	}
	defer func() { _ = insp.Close() }()
	task, err := p.Enqueue(ctx, tasks.LogoutRequest{Session: "session-0001"})
	if err != nil {
		panic(err)
	}
	t, err := insp.WaitTask(ctx, task.ID, 30*time.Second)
	if err != nil {
		panic(err)
	}
	fmt.Println(t.State, *t.Outcome)
	// Output:
	// completed logged_out
}
