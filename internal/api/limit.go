package api

import (
	"math"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Attempt limits: a client address may present 10 wrong tokens at once,
// then one every 6 s (10 a minute). A person mistyping a token never meets
// them; a guesser gets ~14,000 tries a day instead of thousands a second
// (300 in 1.1 s before, issue 23, M3).
const (
	DefaultAttemptBurst = 10
	DefaultAttemptEvery = 6 * time.Second
	// maxTrackedClients bounds the addresses remembered; past it the ones
	// that have their whole burst back are forgotten first.
	maxTrackedClients = 100_000
)

// AttemptLimiter limits wrong bearer tokens per client address, for the
// API (/v1) and the console's sign-in alike (`wahaq serve` gives both the
// same one, so they share a budget). Each wrong token takes one attempt
// from the address's bucket; with none left, every request of that address
// needing a token is refused with 429 and Retry-After, without the token
// being checked (so a guesser learns nothing), until the bucket refills.
// A right token takes nothing. The address is the connection's peer, IPv6
// by /64 (one host holds a whole /64); X-Forwarded-For is not trusted, so
// behind a proxy every client shares the proxy's budget. The state is in
// memory, per process. A nil *AttemptLimiter limits nothing.
type AttemptLimiter struct {
	mu      sync.Mutex
	clients map[netip.Prefix]*attempts
	burst   float64
	every   time.Duration
	now     func() time.Time
	refused *prometheus.CounterVec
}

type attempts struct {
	left float64
	at   time.Time
}

// NewAttemptLimiter returns a limiter with the default limits. refused,
// when not nil, counts refusals by surface ("api", "console") and reason
// ("invalid": a wrong token, "limited": refused by the limit), as
// metrics.Metrics.AuthRefused does.
func NewAttemptLimiter(refused *prometheus.CounterVec) *AttemptLimiter {
	return &AttemptLimiter{clients: map[netip.Prefix]*attempts{}, burst: DefaultAttemptBurst,
		every: DefaultAttemptEvery, now: time.Now, refused: refused}
}

// clientPrefix is the address r came from: /32 for IPv4, /64 for IPv6.
func clientPrefix(r *http.Request) netip.Prefix {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Prefix{}
	}
	ip = ip.WithZone("").Unmap()
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	p, _ := ip.Prefix(bits)
	return p
}

// refill brings a's attempts up to now; l.mu is held.
func (l *AttemptLimiter) refill(a *attempts, now time.Time) {
	a.left = math.Min(l.burst, a.left+now.Sub(a.at).Seconds()/l.every.Seconds())
	a.at = now
}

// Allow reports whether r's address has attempts left. When it has none,
// it counts the refusal on surface and returns how long until one is back.
func (l *AttemptLimiter) Allow(r *http.Request, surface string) (time.Duration, bool) {
	if l == nil {
		return 0, true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	a := l.clients[clientPrefix(r)]
	if a == nil {
		return 0, true
	}
	now := l.now()
	l.refill(a, now)
	if a.left >= 1 {
		return 0, true
	}
	l.count(surface, "limited")
	return time.Duration((1 - a.left) * float64(l.every)), false
}

// Failed takes one attempt from r's address, for a wrong token on surface.
func (l *AttemptLimiter) Failed(r *http.Request, surface string) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.count(surface, "invalid")
	now := l.now()
	key := clientPrefix(r)
	a := l.clients[key]
	if a == nil {
		if len(l.clients) >= maxTrackedClients {
			l.forgetRested(now)
		}
		a = &attempts{left: l.burst, at: now}
		l.clients[key] = a
	}
	l.refill(a, now)
	a.left = math.Max(0, a.left-1)
}

// forgetRested drops the addresses whose bucket is full again, or every
// address if none is: memory stays bounded whatever the number of
// addresses (a flood from many addresses then restarts their budgets).
func (l *AttemptLimiter) forgetRested(now time.Time) {
	for k, a := range l.clients {
		l.refill(a, now)
		if a.left >= l.burst {
			delete(l.clients, k)
		}
	}
	if len(l.clients) >= maxTrackedClients {
		clear(l.clients)
	}
}

func (l *AttemptLimiter) count(surface, reason string) {
	if l.refused != nil {
		l.refused.WithLabelValues(surface, reason).Inc()
	}
}

// retryAfterSeconds is d in whole seconds, at least 1, for Retry-After.
func retryAfterSeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}
