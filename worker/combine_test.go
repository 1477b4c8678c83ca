package worker

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/base"
	"github.com/wahaq/wahaq/internal/redistest"
	"github.com/wahaq/wahaq/internal/store"
)

// pipelines counts the pipelines a client sends.
type pipelines struct{ n atomic.Int64 }

func (p *pipelines) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (p *pipelines) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (p *pipelines) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		p.n.Add(1)
		return next(ctx, cmds)
	}
}

// TestFinishesShareRoundTrips: handlers finishing at once are applied,
// each with its own answer, in fewer round trips than Finishes.
func TestFinishesShareRoundTrips(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := redistest.Client(t)
	ns := redistest.Namespace(t)
	st := store.New(rdb, store.Options{Namespace: ns})
	const n = 64
	var ps []base.Payload
	var ids []string
	for i := range n {
		p := base.Payload{Instance: "default", Session: "s" + strconv.Itoa(i), MaxRetries: 3}
		res, err := st.Enqueue(ctx, []store.NewTask{{Instance: p.Instance, Session: p.Session, MaxRetries: 3}})
		require.NoError(t, err)
		ok, err := st.Start(ctx, res[0].ID, p, 1, 0, time.Minute)
		require.NoError(t, err)
		require.True(t, ok)
		ps, ids = append(ps, p), append(ids, res[0].ID)
	}
	counted := &pipelines{}
	rdb.AddHook(counted)
	c := &finishes{st: st}
	var wg sync.WaitGroup
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			state := store.StateCompleted
			if i%2 == 1 {
				state = store.StateDead
			}
			// each Finish five times (a Finish applied again counts once),
			// so that senders leave and hand their role on under load
			for range 5 {
				if _, err := c.finish(ctx, ids[i], ps[i], store.Finish{State: state, Outcome: "logged_out", ResultTTL: time.Hour}); err != nil {
					errs[i] = err
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	k := st.Keys("default")
	for i := range n {
		require.NoError(t, errs[i])
		want := "completed"
		if i%2 == 1 {
			want = "dead"
		}
		require.Equal(t, want, rdb.HGet(ctx, k.Record(ids[i]), "state").Val(), "task %d", i)
	}
	require.Less(t, counted.n.Load(), int64(5*n), "pipelines for %d Finishes", 5*n)
	require.Empty(t, c.queue)
	require.Zero(t, c.flushers)
}
