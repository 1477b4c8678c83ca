package bench

// The bare-asynq baseline every scenario compares wahaq with: the same
// HTTP call and payload, asynq's defaults, no wahaq machinery.

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/wahaq/wahaq/internal/base"
	"github.com/wahaq/wahaq/tasks"
	"github.com/wahaq/wahaq/wahaclient"
)

// bareQueue is the queue of a scenario's bare-asynq baseline.
func bareQueue(ns string) string { return ns + "-bare" }

func barePayload(session string) []byte {
	return base.Payload{Instance: "default", Session: session, MaxRetries: 10}.Encode()
}

// bareEnqueue enqueues one bare asynq task per session from g goroutines,
// one Client.Enqueue (one round trip) each, and returns how long it took.
func bareEnqueue(ctx context.Context, c *asynq.Client, q string, sessions []string, g int, opts ...asynq.Option) (time.Duration, error) {
	opts = append([]asynq.Option{asynq.Queue(q)}, opts...)
	var next atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for range g {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(sessions) {
					return
				}
				if _, err := c.EnqueueContext(ctx, asynq.NewTask(tasks.TypeLogout, barePayload(sessions[i])), opts...); err != nil {
					once.Do(func() { firstErr = err })
					next.Store(int64(len(sessions)))
					return
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(start), firstErr
}

// quietAsynq keeps asynq's own start/stop chatter off the terminal; it does
// not change how asynq works.
var quietAsynq = asynq.WarnLevel

// bareServer is a bare asynq server: default config, except concurrency and
// the queue (asynq's default queue would be shared with other users).
func bareServer(rdb redis.UniversalClient, q string, concurrency int) *asynq.Server {
	return asynq.NewServerFromRedisClient(rdb, asynq.Config{Concurrency: concurrency, Queues: map[string]int{q: 1}, LogLevel: quietAsynq})
}

// bareHandler makes the same HTTP call as wahaq's worker: decode the payload,
// log the session out. With writeResult it also stores the n8n-shaped result
// with asynq's ResultWriter (for tasks enqueued with asynq.Retention).
func bareHandler(client *wahaclient.Client, writeResult bool, done func()) asynq.HandlerFunc {
	return func(ctx context.Context, t *asynq.Task) error {
		p, err := base.DecodePayload(t.Payload())
		if err != nil {
			return fmt.Errorf("%v: %w", err, asynq.SkipRetry)
		}
		res, err := client.Logout(ctx, p.Session)
		if err != nil {
			return err
		}
		if writeResult {
			r := tasks.Result{Status: "success", Message: "Session logged out successfully", HTTPStatus: res.HTTPStatus}
			if res.Session != nil {
				r.SessionAfter, _ = json.Marshal(struct {
					Name   string         `json:"name"`
					Status string         `json:"status"`
					Me     *wahaclient.Me `json:"me"`
				}{res.Session.Name, res.Session.Status, res.Session.Me})
			}
			b, _ := json.Marshal(r)
			if _, err := t.ResultWriter().Write(b); err != nil {
				return err
			}
		}
		if done != nil {
			done()
		}
		return nil
	}
}
