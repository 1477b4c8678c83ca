package tasks_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/redistest"
	"github.com/wahaq/wahaq/internal/store"
	"github.com/wahaq/wahaq/tasks"
)

// errBlip is the Redis failure the hook below injects.
var errBlip = errors.New("injected: connection reset")

// failHook fails, while on is set, every command (alone or in a pipeline)
// whose name is in names.
type failHook struct {
	on    atomic.Bool
	names []string
}

func (h *failHook) hit(cmd redis.Cmder) bool {
	if !h.on.Load() {
		return false
	}
	for _, n := range h.names {
		if strings.EqualFold(cmd.Name(), n) {
			return true
		}
	}
	return false
}

func (h *failHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *failHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if h.hit(cmd) {
			cmd.SetErr(errBlip)
			return errBlip
		}
		return next(ctx, cmd)
	}
}

func (h *failHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			if h.hit(c) {
				for _, c := range cmds {
					c.SetErr(errBlip)
				}
				return errBlip
			}
		}
		return next(ctx, cmds)
	}
}

// A Redis blip while the dead letters are filtered by outcome is an error:
// it used to read as "no dead letter has this outcome", so
// `dlq requeue --all --outcome X` requeued nothing and reported success.
func TestRequeueByOutcomeReportsRedisErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := redistest.Client(t)
	ns := redistest.Namespace(t)
	hook := &failHook{names: []string{"hget"}}
	rdb.AddHook(hook)
	cfg := tasks.Config{Redis: rdb, Namespace: ns}
	insp, err := tasks.NewInspector(cfg)
	require.NoError(t, err)
	id := "0f8fad5b-d9cb-469f-a165-70867728950e"
	k := store.KeysFor(ns, "default")
	require.NoError(t, rdb.HSet(ctx, k.Record(id), "state", "dead", "outcome", "auth_failed", "session", "s1", "max", 3).Err())
	require.NoError(t, rdb.ZAdd(ctx, k.DeadLetters(), redis.Z{Score: 1, Member: id}).Err())

	hook.on.Store(true)
	sel := tasks.Selection{All: true, Outcome: tasks.OutcomeAuthFailed}
	res, err := insp.Requeue(ctx, sel)
	require.ErrorIs(t, err, errBlip)
	require.Empty(t, res)
	_, err = insp.Purge(ctx, sel)
	require.ErrorIs(t, err, errBlip)

	hook.on.Store(false)
	n, err := insp.Purge(ctx, sel)
	require.NoError(t, err)
	require.Equal(t, 1, n, "without the blip the dead letter is found")
}

// A discovery whose task cannot be enqueued closes its batch with the
// error: it used to stay "discovering" for ever, with nothing left to fill
// it.
func TestEnqueueDiscoveryFailureClosesBatch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := redistest.Client(t)
	ns := redistest.Namespace(t)
	hook := &failHook{names: []string{"evalsha", "eval"}}
	rdb.AddHook(hook)
	p, err := tasks.NewProducer(tasks.Config{Redis: rdb, Namespace: ns})
	require.NoError(t, err)
	hook.on.Store(true)
	_, err = p.EnqueueDiscovery(ctx, tasks.DiscoveryRequest{})
	require.ErrorIs(t, err, errBlip)
	hook.on.Store(false)

	keys, err := rdb.Keys(ctx, store.KeysFor(ns, "default").Batch("*")).Result()
	require.NoError(t, err)
	require.Len(t, keys, 1)
	insp, err := tasks.NewInspector(tasks.Config{Redis: rdb, Namespace: ns})
	require.NoError(t, err)
	b, err := insp.Batch(ctx, keys[0][strings.LastIndex(keys[0], ":")+1:])
	require.NoError(t, err)
	require.False(t, b.Discovering)
	require.True(t, b.Done)
	require.Contains(t, b.Error, "discovery could not be enqueued")
}
