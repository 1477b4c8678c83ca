package tasks_test

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wahaq/wahaq/internal/redistest"
	"github.com/wahaq/wahaq/tasks"
)

// exampleRedis returns a client for the test Redis and a namespace of its
// own. In your service: redis.NewClient(&redis.Options{Addr: ...}) and the
// default namespace.
func exampleRedis() (*redis.Client, string, func()) {
	opt, err := redis.ParseURL(redistest.MustURL())
	if err != nil {
		panic(err)
	}
	rdb := redis.NewClient(opt)
	ns := fmt.Sprintf("example%d", time.Now().UnixNano())
	return rdb, ns, func() { redistest.Cleanup(rdb, ns); _ = rdb.Close() }
}

// Enqueue a logout now, another in 30 minutes, and read them back.
func ExampleProducer_Enqueue() {
	rdb, ns, done := exampleRedis()
	defer done()
	ctx := context.Background()

	p, err := tasks.NewProducer(tasks.Config{Redis: rdb, Namespace: ns, Instances: []string{"default"}})
	if err != nil {
		panic(err)
	}
	now, err := p.Enqueue(ctx, tasks.LogoutRequest{Session: "sales-bot"})
	if err != nil {
		panic(err)
	}
	again, err := p.Enqueue(ctx, tasks.LogoutRequest{Session: "sales-bot"})
	if err != nil {
		panic(err)
	}
	later, err := p.Enqueue(ctx, tasks.LogoutRequest{Session: "support-bot", When: tasks.When{In: 30 * time.Minute}})
	if err != nil {
		panic(err)
	}

	insp, err := tasks.NewInspector(tasks.Config{Redis: rdb, Namespace: ns})
	if err != nil {
		panic(err)
	}
	t, err := insp.Task(ctx, now.ID)
	if err != nil {
		panic(err)
	}
	fmt.Println(t.Session, t.State, t.MaxRetries)
	fmt.Println("deduplicated:", again.Deduplicated, again.ID == now.ID)
	fmt.Println(later.Session, later.State)

	_, err = p.Enqueue(ctx, tasks.LogoutRequest{Session: "bad name!"})
	fmt.Println(err)
	// Output:
	// sales-bot pending 10
	// deduplicated: true true
	// support-bot scheduled
	// invalid input: session name "bad name!" is not valid: WAHA allows letters, digits, '_' and '-', at most 54 characters
}

// Tear down many sessions as one batch and follow it.
func ExampleProducer_EnqueueBatch() {
	rdb, ns, done := exampleRedis()
	defer done()
	ctx := context.Background()

	p, err := tasks.NewProducer(tasks.Config{Redis: rdb, Namespace: ns})
	if err != nil {
		panic(err)
	}
	info, err := p.EnqueueBatch(ctx, tasks.BatchRequest{Sessions: []string{"bot-1", "bot-2", "bot-3", "bot-2"}})
	if err != nil {
		panic(err)
	}
	fmt.Println("total", info.Total, "deduplicated", info.Deduplicated)

	insp, err := tasks.NewInspector(tasks.Config{Redis: rdb, Namespace: ns})
	if err != nil {
		panic(err)
	}
	b, err := insp.Batch(ctx, info.BatchID)
	if err != nil {
		panic(err)
	}
	fmt.Println("pending", b.Counts[tasks.StatePending], "done", b.Done)
	// Output:
	// total 3 deduplicated 1
	// pending 3 done false
}
