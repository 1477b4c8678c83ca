package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/redistest"
)

// TestE2EServersCloseIdleAndSlowConnections runs `wahaq serve` and `wahaq
// worker` as processes with short HTTP limits (set as an environment
// variable and as a flag) and checks, on real sockets, that both close
// keep-alive connections left idle and connections that send nothing, and
// that serve cuts off a body sent a byte at a time, with and without a
// token.
func TestE2EServersCloseIdleAndSlowConnections(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binaries")
	}
	wahaqBin, _ := binaries(t)
	redisURL, ns := redistest.URL(t), redistest.Namespace(t)
	apiAddr, metricsAddr := freeAddr(t), freeAddr(t)
	const token = "limits-e2e-token"
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(),
		"REDIS_URL=" + redisURL, "WAHAQ_NAMESPACE=" + ns, "WAHA_BASE_URL=http://127.0.0.1:9",
		"WAHAQ_API_TOKENS=" + token, "WAHAQ_SHUTDOWN_GRACE=2s",
		"WAHAQ_HTTP_READ_HEADER_TIMEOUT=300ms", "WAHAQ_HTTP_READ_TIMEOUT=1s", "WAHAQ_HTTP_IDLE_TIMEOUT=500ms"}
	serve := start(t, "serve", env, wahaqBin, "serve", "--addr", apiAddr, "--http-write-timeout", "2s")
	worker := start(t, "worker", env, wahaqBin, "worker", "--metrics-addr", metricsAddr)
	waitHTTP(t, "http://"+apiAddr+"/healthz", http.StatusOK, 15*time.Second)
	waitHTTP(t, "http://"+metricsAddr+"/healthz", http.StatusOK, 15*time.Second)

	dial := func(addr string) net.Conn {
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	// closed reads c until the server closes it, or 30 s (a bound for a
	// server that never does, not a timing assertion).
	closed := func(c net.Conn) bool {
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		_, err := io.Copy(io.Discard, c)
		ne, ok := err.(net.Error)
		return !(ok && ne.Timeout())
	}

	for _, addr := range []string{apiAddr, metricsAddr} {
		var conns []net.Conn
		for range 10 {
			c := dial(addr)
			_, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
			require.NoError(t, err)
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, resp.StatusCode)
			_ = resp.Body.Close()
			conns = append(conns, c, dial(addr)) // idle after a request; silent from the start
		}
		for i, c := range conns {
			require.True(t, closed(c), "%s: connection %d stayed open", addr, i)
		}
	}
	// No worker from here on: the queue count below must not see a task
	// taken by it.
	worker.stop(t, 10*time.Second)

	for _, auth := range []string{"Authorization: Bearer " + token + "\r\n", "", "Authorization: Bearer wrong\r\n"} {
		c := dial(apiAddr)
		_, err := io.WriteString(c, "POST /v1/logouts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10000\r\n"+auth+"\r\n{\"session\":\"")
		require.NoError(t, err)
		done := make(chan bool, 1)
		go func() { done <- closed(c) }()
		sent := 0
	send:
		for ; sent < 200; sent++ { // 20 s at most, against a 1 s read timeout
			select {
			case ok := <-done:
				require.True(t, ok)
				break send
			case <-time.After(100 * time.Millisecond):
			}
			if _, err := c.Write([]byte("a")); err != nil {
				break
			}
		}
		require.Less(t, sent, 200, "serve read a slow body (%q) for ever", auth)
		t.Logf("slow body with %q: closed after %d bytes", strings.TrimSpace(auth), sent)
	}
	// The slow, authorised body never completed: nothing was enqueued. A
	// whole request afterwards is, which shows the count can see one.
	rdb := redistest.Client(t)
	queued := func() int {
		info, err := asynq.NewInspectorFromRedisClient(rdb).GetQueueInfo(ns + ":default")
		if err != nil {
			return 0 // no queue yet
		}
		return info.Pending + info.Scheduled
	}
	require.Zero(t, queued())
	req, err := http.NewRequest("POST", "http://"+apiAddr+"/v1/logouts", strings.NewReader(`{"session":"after-slow"}`))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	require.Equal(t, 1, queued())
	serve.stop(t, 10*time.Second)
}
