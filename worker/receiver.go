package worker

import (
	"errors"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"
)

// Per-receiver limits of callback deliveries. A receiver is a scheme, host
// and port: every URL of one n8n is one receiver. Its breaker, like the
// servers' (breaker.go), is per worker process.
const (
	// ReceiverFailures is how many failed attempts in a row (network
	// errors, timeouts, 408, 429, 5xx) open a receiver's breaker.
	ReceiverFailures = 3
	// ReceiverOpen is how long an open breaker keeps deliveries from its
	// receiver; they wait in the delivery set, spending no attempt, and one
	// trial (half-open) then decides.
	ReceiverOpen = 30 * time.Second
	// ReceiverInFlight is how many deliveries one worker process posts to
	// one receiver at once: a slow receiver holds at most this many of the
	// CallbackConcurrency delivery slots, never all of them.
	ReceiverInFlight = 4
	// receiverBusyWait is how long a delivery waits when its receiver
	// already has ReceiverInFlight in flight.
	receiverBusyWait = time.Second
	// receiversKept bounds the receivers remembered; idle, closed ones are
	// forgotten beyond it.
	receiversKept = 1024
)

// errReceiverFailed tells a receiver's breaker that an attempt failed in a
// way that counts against it.
var errReceiverFailed = errors.New("callback receiver failed")

// receiver is one callback receiver's breaker and in-flight count.
type receiver struct {
	cb        *gobreaker.TwoStepCircuitBreaker[struct{}]
	inFlight  atomic.Int32
	openUntil atomic.Int64 // Unix ns, while open
	lastUsed  atomic.Int64 // Unix ns
}

// receivers are the receivers one worker process delivers to.
type receivers struct {
	mu sync.Mutex
	m  map[string]*receiver
}

// receiverKey is the receiver of a callback URL: scheme, host and port.
func receiverKey(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	return strings.ToLower(u.Scheme + "://" + u.Hostname() + ":" + port)
}

// get returns the receiver of key, creating it.
func (rs *receivers) get(key string, now time.Time) *receiver {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.m == nil {
		rs.m = map[string]*receiver{}
	}
	r := rs.m[key]
	if r == nil {
		if len(rs.m) >= receiversKept {
			rs.prune(now)
		}
		r = &receiver{}
		r.cb = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
			Name:        key,
			MaxRequests: 1,
			Timeout:     ReceiverOpen,
			ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= ReceiverFailures },
			IsSuccessful: func(err error) bool {
				return !errors.Is(err, errReceiverFailed)
			},
			OnStateChange: func(_ string, _, to gobreaker.State) {
				if to == gobreaker.StateOpen {
					r.openUntil.Store(time.Now().Add(ReceiverOpen).UnixNano())
				}
			},
		})
		rs.m[key] = r
	}
	r.lastUsed.Store(now.UnixNano())
	return r
}

// prune forgets receivers idle for a minute with nothing in flight and a
// closed breaker; called with rs.mu held.
func (rs *receivers) prune(now time.Time) {
	for k, r := range rs.m {
		if r.inFlight.Load() == 0 && r.cb.State() == gobreaker.StateClosed &&
			now.Sub(time.Unix(0, r.lastUsed.Load())) > time.Minute {
			delete(rs.m, k)
		}
	}
}

// acquire admits one delivery to r: its done reports the attempt (failed
// counts against the breaker). When r is open or busy, acquire returns
// ok false and how long to wait before trying again.
func (r *receiver) acquire() (done func(failed bool), wait time.Duration, ok bool) {
	if r.inFlight.Add(1) > ReceiverInFlight {
		r.inFlight.Add(-1)
		return nil, receiverBusyWait, false
	}
	report, err := r.cb.Allow()
	if err != nil {
		r.inFlight.Add(-1)
		wait := time.Until(time.Unix(0, r.openUntil.Load()))
		if wait < receiverBusyWait {
			// half-open with its one trial in flight
			wait = receiverBusyWait
		}
		return nil, wait, false
	}
	return func(failed bool) {
		r.inFlight.Add(-1)
		if failed {
			report(errReceiverFailed)
		} else {
			report(nil)
		}
	}, 0, true
}
