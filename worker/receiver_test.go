package worker

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestReceiverKey(t *testing.T) {
	t.Parallel()
	cases := []struct{ url, want string }{
		{"http://n8n.example/webhook/a", "http://n8n.example:80"},
		{"https://N8N.example/webhook/b?x=1", "https://n8n.example:443"},
		{"http://127.0.0.1:5678/webhook-waiting/1", "http://127.0.0.1:5678"},
		{"http://[::1]:5678/x", "http://::1:5678"},
	}
	for _, tc := range cases {
		require.Equal(t, tc.want, receiverKey(tc.url), tc.url)
	}
}

// TestReceiverBreakerAndInFlight: ReceiverFailures failures in a row open a
// receiver (its deliveries wait about ReceiverOpen, no attempt); a success
// in between resets the count; at most ReceiverInFlight run at once.
func TestReceiverBreakerAndInFlight(t *testing.T) {
	t.Parallel()
	var rs receivers
	now := time.Now()

	r := rs.get("http://a:80", now)
	require.Same(t, r, rs.get("http://a:80", now), "one receiver per key")
	for range ReceiverFailures - 1 {
		done, _, ok := r.acquire()
		require.True(t, ok)
		done(true)
	}
	done, _, ok := r.acquire()
	require.True(t, ok)
	done(false) // a success resets the run of failures
	for range ReceiverFailures - 1 {
		done, _, ok := r.acquire()
		require.True(t, ok, "still closed")
		done(true)
	}
	done, _, ok = r.acquire()
	require.True(t, ok)
	done(true)
	_, wait, ok := r.acquire()
	require.False(t, ok, "open after ReceiverFailures failures in a row")
	require.Greater(t, wait, ReceiverOpen/2)
	require.LessOrEqual(t, wait, ReceiverOpen)

	other := rs.get("http://b:80", now)
	var dones []func(bool)
	for range ReceiverInFlight {
		done, _, ok := other.acquire()
		require.True(t, ok)
		dones = append(dones, done)
	}
	_, wait, ok = other.acquire()
	require.False(t, ok, "busy: ReceiverInFlight in flight")
	require.Equal(t, receiverBusyWait, wait)
	dones[0](false)
	done, _, ok = other.acquire()
	require.True(t, ok, "a slot of its own freed")
	done(false)
}
