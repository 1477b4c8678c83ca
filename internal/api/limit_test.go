package api

import (
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
)

// TestWrongTokensLimitedPerAddress is issue 23's M3 at /v1: 300 wrong tokens
// in 1.1 s were each only a 401 and a log line. An address gets
// DefaultAttemptBurst wrong tokens, then 429 with Retry-After for every
// request needing a token (the right one too: a guesser must learn
// nothing), one more attempt every DefaultAttemptEvery; other addresses
// are not touched, and the metric counts both kinds of refusal.
func TestWrongTokensLimitedPerAddress(t *testing.T) {
	t.Parallel()
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wahaq_auth_refused_total"}, []string{"surface", "reason"})
	l := NewAttemptLimiter(refused)
	var mu sync.Mutex
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	l.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	e := newEnv(t, func(c *Config) { c.Limiter = l })
	get := func(addr, auth string) *http.Response {
		r := e.req("GET", "/v1/dlq", "")
		r.RemoteAddr = addr
		if auth == "" {
			r.Header.Del("Authorization")
		} else {
			r.Header.Set("Authorization", auth)
		}
		return e.serve(r).Result()
	}
	const guesser, other, guesser6 = "198.51.100.7:40000", "198.51.100.8:40000", "[2001:db8:1:2::1]:40000"

	for i := range DefaultAttemptBurst {
		require.Equal(t, http.StatusUnauthorized, get(guesser, "Bearer guess-"+strconv.Itoa(i)).StatusCode, "attempt %d", i)
	}
	for _, auth := range []string{"Bearer guess-x", "Bearer " + tokenA, ""} {
		resp := get(guesser, auth)
		require.Equal(t, http.StatusTooManyRequests, resp.StatusCode, "%q", auth)
		require.Equal(t, "6", resp.Header.Get("Retry-After"))
	}
	require.Equal(t, http.StatusOK, get(other, "Bearer "+tokenA).StatusCode, "another address is not limited")
	require.Equal(t, http.StatusUnauthorized, get(other, "").StatusCode, "no token is not an attempt")

	mu.Lock()
	now = now.Add(DefaultAttemptEvery)
	mu.Unlock()
	require.Equal(t, http.StatusOK, get(guesser, "Bearer "+tokenA).StatusCode, "one attempt is back")
	require.Equal(t, http.StatusUnauthorized, get(guesser, "Bearer guess-y").StatusCode)
	require.Equal(t, http.StatusTooManyRequests, get(guesser, "Bearer "+tokenA).StatusCode)

	// IPv6: one /64 is one address.
	for i := range DefaultAttemptBurst {
		require.Equal(t, http.StatusUnauthorized, get(guesser6, "Bearer guess6-"+strconv.Itoa(i)).StatusCode)
	}
	require.Equal(t, http.StatusTooManyRequests, get("[2001:db8:1:2::ffff]:1", "Bearer "+tokenA).StatusCode, "same /64")
	require.Equal(t, http.StatusOK, get("[2001:db8:1:3::1]:1", "Bearer "+tokenA).StatusCode, "another /64")

	require.Equal(t, float64(2*DefaultAttemptBurst+1), counterValue(t, refused, "api", "invalid"))
	require.Equal(t, float64(5), counterValue(t, refused, "api", "limited"))
}

// TestAttemptLimiterBoundedMemory: however many addresses send a wrong
// token, the limiter remembers at most maxTrackedClients.
func TestAttemptLimiterBoundedMemory(t *testing.T) {
	t.Parallel()
	l := NewAttemptLimiter(nil)
	r, _ := http.NewRequest("GET", "/v1/dlq", nil)
	for i := range maxTrackedClients + 500 {
		r.RemoteAddr = "10." + strconv.Itoa(i>>16&0xff) + "." + strconv.Itoa(i>>8&0xff) + "." + strconv.Itoa(i&0xff) + ":1"
		l.Failed(r, "api")
	}
	require.LessOrEqual(t, len(l.clients), maxTrackedClients)
	require.NotEmpty(t, l.clients)
}

func counterValue(t *testing.T, v *prometheus.CounterVec, labels ...string) float64 {
	t.Helper()
	var m dto.Metric
	require.NoError(t, v.WithLabelValues(labels...).Write(&m))
	return m.GetCounter().GetValue()
}
