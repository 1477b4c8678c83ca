package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/base"
	"github.com/wahaq/wahaq/internal/redistest"
	"github.com/wahaq/wahaq/internal/store"
)

// TestGate: the start script that takes the last slot closes the queue's
// gate (asynq's paused key, so asynq's dequeue skips the queue), one that
// finds the cap full keeps it closed, Finish and ReleaseSlots open it, its
// expiry follows the earliest slot lease (renewed by RenewSlots), and an
// operator's pause is never set, extended or lifted.
func TestGate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := redistest.Client(t)

	tests := []struct {
		name string
		// operator writes an operator's pause (asynq's own value, a Unix
		// time) before anything runs.
		operator bool
	}{
		{name: "wahaq's gate"},
		{name: "operator's pause", operator: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ns := redistest.Namespace(t)
			st := store.New(rdb, store.Options{Namespace: ns})
			k := st.Keys("default")
			const opValue = "1764600000"
			said := listen(t, rdb, k.Gate())
			if tc.operator {
				require.NoError(t, rdb.Set(ctx, k.Paused(), opValue, 0).Err())
			}
			paused := func() (string, time.Duration) {
				v, err := rdb.Get(ctx, k.Paused()).Result()
				if err != nil {
					return "", 0
				}
				ttl, err := rdb.PTTL(ctx, k.Paused()).Result()
				require.NoError(t, err)
				return v, ttl
			}
			pl := func(i int) base.Payload {
				return base.Payload{Instance: "default", Session: fmt.Sprintf("s%d", i), MaxRetries: 10}
			}
			const lease = time.Minute
			for i := 0; i < 2; i++ {
				ok, err := st.Start(ctx, fmt.Sprint(i), pl(i), 1, 3, lease)
				require.NoError(t, err)
				require.True(t, ok)
			}
			v, _ := paused()
			if tc.operator {
				require.Equal(t, opValue, v)
			} else {
				require.Empty(t, v, "two of three slots taken: the gate stays open")
			}

			ok, err := st.Start(ctx, "2", pl(2), 1, 3, lease)
			require.NoError(t, err)
			require.True(t, ok)
			v, ttl := paused()
			if tc.operator {
				require.Equal(t, opValue, v)
				require.Equal(t, time.Duration(-1), ttl, "an operator's pause gets no expiry")
			} else {
				require.Equal(t, store.GateMarker, v, "the last slot closes the gate")
				require.Greater(t, ttl, lease-10*time.Second)
				require.LessOrEqual(t, ttl, lease)
			}

			// Renewing the leases extends the gate with them.
			n, err := st.RenewSlots(ctx, "default", []string{"0", "1", "2", "gone"}, 2*lease)
			require.NoError(t, err)
			require.Equal(t, 3, n, "the unknown id is not renewed")
			v, ttl = paused()
			if !tc.operator {
				require.Equal(t, store.GateMarker, v)
				require.Greater(t, ttl, lease)
			} else {
				require.Equal(t, time.Duration(-1), ttl)
			}

			// The cap is full: nothing changes, the gate stays closed.
			ok, err = st.Start(ctx, "3", pl(3), 1, 3, lease)
			require.NoError(t, err)
			require.False(t, ok)

			require.NoError(t, st.Finish(ctx, "0", pl(0), store.Finish{State: store.StateCompleted, Outcome: "logged_out", ResultTTL: time.Hour}))
			v, _ = paused()
			if tc.operator {
				require.Equal(t, opValue, v, "Finish never lifts an operator's pause")
			} else {
				require.Empty(t, v, "a freed slot opens the gate")
			}

			ok, err = st.Start(ctx, "3", pl(3), 1, 3, lease)
			require.NoError(t, err)
			require.True(t, ok)
			n, err = st.ReleaseSlots(ctx, "default", []string{"1", "2", "3"})
			require.NoError(t, err)
			require.Equal(t, 3, n)
			v, _ = paused()
			if tc.operator {
				require.Equal(t, opValue, v)
			} else {
				require.Empty(t, v, "released slots open the gate")
			}
			require.Zero(t, rdb.ZCard(ctx, k.Slots()).Val())

			// Each closing and opening was announced once, in order; a
			// renewal and a start that finds the gate closed say nothing,
			// and an operator's pause is never announced.
			msgs := said()
			if tc.operator {
				require.Empty(t, msgs)
				return
			}
			require.Len(t, msgs, 4, "%q", msgs)
			for i, m := range msgs {
				closed, until, ok := store.ParseGate(m)
				require.True(t, ok, m)
				require.Equal(t, i%2 == 0, closed, "%q", msgs)
				if closed {
					require.WithinDuration(t, time.Now().Add(lease), until, lease/2, m)
				}
			}
		})
	}
}

// listen subscribes to channel and returns a function that returns every
// message received until then: it publishes a marker of its own and reads
// up to it, so nothing said before the call can still be on its way.
func listen(t *testing.T, rdb *redis.Client, channel string) func() []string {
	t.Helper()
	ctx := context.Background()
	ps := rdb.SSubscribe(ctx, channel)
	t.Cleanup(func() { _ = ps.Close() })
	_, err := ps.Receive(ctx)
	require.NoError(t, err)
	return func() []string {
		const end = "end of test"
		require.NoError(t, rdb.SPublish(ctx, channel, end).Err())
		var out []string
		timeout := time.After(10 * time.Second)
		for {
			select {
			case m := <-ps.Channel():
				if m.Payload == end {
					return out
				}
				out = append(out, m.Payload)
			case <-timeout:
				t.Fatalf("no end marker on %s; got %q", channel, out)
			}
		}
	}
}

// TestParseGate reads the gate channel's messages.
func TestParseGate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		msg    string
		closed bool
		until  int64
		ok     bool
	}{
		{msg: "0", ok: true},
		{msg: "1:1764600000123", closed: true, until: 1764600000123, ok: true},
		{msg: "1:", ok: false},
		{msg: "1:x", ok: false},
		{msg: "2", ok: false},
		{msg: "", ok: false},
	}
	for _, tc := range tests {
		closed, until, ok := store.ParseGate(tc.msg)
		require.Equal(t, tc.ok, ok, tc.msg)
		require.Equal(t, tc.closed, closed, tc.msg)
		if tc.until != 0 {
			require.Equal(t, tc.until, until.UnixMilli(), tc.msg)
		}
	}
}

// TestGateExpiresWithTheLease: a worker that dies holding the last slot
// cannot keep its queue closed beyond the slot's lease: the gate's expiry
// is the lease's end, and once the lease is over another task takes the slot
// (a clock moved forward stands for the wait, so no timing is assumed).
func TestGateExpiresWithTheLease(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := redistest.Client(t)
	ns := redistest.Namespace(t)
	st := store.New(rdb, store.Options{Namespace: ns})
	k := st.Keys("default")
	const lease = time.Minute
	ok, err := st.Start(ctx, "a", base.Payload{Instance: "default", Session: "a", MaxRetries: 1}, 1, 1, lease)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, store.GateMarker, rdb.Get(ctx, k.Paused()).Val())
	ttl := rdb.PTTL(ctx, k.Paused()).Val()
	require.Greater(t, ttl, time.Duration(0))
	require.LessOrEqual(t, ttl, lease, "the gate ends with the lease")

	later := store.New(rdb, store.Options{Namespace: ns, Now: func() time.Time { return time.Now().Add(2 * lease) }})
	ok, err = later.Start(ctx, "b", base.Payload{Instance: "default", Session: "b", MaxRetries: 1}, 1, 1, lease)
	require.NoError(t, err)
	require.True(t, ok, "the dead worker's lease is over: another task takes the slot")
	require.EqualValues(t, 1, rdb.ZCard(ctx, k.Slots()).Val())
}
