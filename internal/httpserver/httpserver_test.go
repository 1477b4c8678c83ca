package httpserver

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Short limits, so the tests wait little; the behaviour is the defaults'.
var testLimits = Limits{
	ReadHeaderTimeout: 300 * time.Millisecond,
	ReadTimeout:       time.Second,
	WriteTimeout:      time.Second,
	IdleTimeout:       500 * time.Millisecond,
	MaxHeaderBytes:    4 << 10,
}

// testToken guards the handler as the API's bearer check does: without it
// the answer is 401 before the body is read.
const testToken = "Bearer t0k3n"

func handler(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != testToken {
		http.Error(w, "no", http.StatusUnauthorized)
		return
	}
	if r.URL.Path == "/wait" {
		if r.URL.Query().Get("extend") == "1" {
			if err := ExtendWrite(w, 10*time.Second); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
		}
		time.Sleep(3 * testLimits.WriteTimeout)
		_, _ = io.WriteString(w, "waited")
		return
	}
	n, err := io.Copy(io.Discard, r.Body)
	if err != nil {
		return
	}
	fmt.Fprintf(w, "read %d", n)
}

// start serves handler on a loopback listener with testLimits.
func start(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := New(http.HandlerFunc(handler), testLimits)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// closedByServer reads conn until the server closes it, or 30 s pass (a
// bound for a broken server, not a timing assertion). It reports whether
// the server closed it.
func closedByServer(conn net.Conn) bool {
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	_, err := io.Copy(io.Discard, conn)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return false
	}
	return true // EOF or reset: the server closed it
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	s := New(http.NotFoundHandler(), Limits{})
	require.Equal(t, DefaultReadHeaderTimeout, s.ReadHeaderTimeout)
	require.Equal(t, DefaultReadTimeout, s.ReadTimeout)
	require.Equal(t, DefaultWriteTimeout, s.WriteTimeout)
	require.Equal(t, DefaultIdleTimeout, s.IdleTimeout)
	require.Equal(t, DefaultMaxHeaderBytes, s.MaxHeaderBytes)
	require.NoError(t, Limits{}.Check())
	require.Error(t, Limits{IdleTimeout: -time.Second}.Check())
	require.Error(t, Limits{MaxHeaderBytes: -1}.Check())
	require.ErrorContains(t, Limits{ReadHeaderTimeout: time.Minute, ReadTimeout: time.Second}.Check(), "longer than the read timeout")
}

// TestIdleConnectionsAreClosed: keep-alive connections idle after a request,
// and connections that never send one, are closed by the server.
func TestIdleConnectionsAreClosed(t *testing.T) {
	t.Parallel()
	addr := start(t)
	const n = 20
	conns := make([]net.Conn, 0, 2*n)
	for range n {
		c := dial(t, addr)
		_, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nAuthorization: "+testToken+"\r\n\r\n")
		require.NoError(t, err)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.NoError(t, resp.Body.Close())
		require.False(t, resp.Close, "the server keeps the connection alive")
		conns = append(conns, c)
	}
	for range n {
		conns = append(conns, dial(t, addr)) // silent from the start
	}
	for i, c := range conns {
		require.True(t, closedByServer(c), "connection %d stayed open", i)
	}
}

// TestSlowBodiesAreCut: a body sent one byte at a time is cut off by the
// read timeout, with or without a valid token (without one, the answer is
// 401 and the server stops reading anyway).
func TestSlowBodiesAreCut(t *testing.T) {
	t.Parallel()
	addr := start(t)
	for _, auth := range []string{testToken, ""} {
		c := dial(t, addr)
		hdr := "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n"
		if auth != "" {
			hdr += "Authorization: " + auth + "\r\n"
		}
		_, err := io.WriteString(c, hdr+"\r\n")
		require.NoError(t, err)
		closed := make(chan bool, 1)
		go func() { closed <- closedByServer(c) }()
		// At most 200 bytes, 100 ms apart (20 s): far beyond the 1 s read
		// timeout, so a server that does not cut the body is caught.
		sent := 0
	send:
		for ; sent < 200; sent++ {
			select {
			case ok := <-closed:
				require.True(t, ok)
				break send
			case <-time.After(100 * time.Millisecond):
			}
			if _, err := c.Write([]byte("x")); err != nil {
				break
			}
		}
		require.Less(t, sent, 200, "auth %q: the server read a slow body for ever", auth)
	}
}

func TestHeadersAreBounded(t *testing.T) {
	t.Parallel()
	addr := start(t)
	c := dial(t, addr)
	_, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("a", 64<<10)+"\r\n\r\n")
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusRequestHeaderFieldsTooLarge, resp.StatusCode)
	_ = resp.Body.Close()
}

// TestExtendWrite: a handler that waits past WriteTimeout loses its answer,
// unless it extended its deadline with ExtendWrite.
func TestExtendWrite(t *testing.T) {
	t.Parallel()
	addr := start(t)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	get := func(extend string) (*http.Response, error) {
		req, err := http.NewRequest("GET", "http://"+addr+"/wait?extend="+extend, nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", testToken)
		return client.Do(req)
	}
	resp, err := get("1")
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, "waited", string(body))

	resp, err = get("0")
	if err == nil {
		_, err = io.ReadAll(resp.Body)
		_ = resp.Body.Close()
	}
	require.Error(t, err, "the write timeout cut the answer off")
}

func TestExtendWriteWithoutDeadlines(t *testing.T) {
	t.Parallel()
	// A writer that cannot set deadlines says so instead of panicking.
	require.Error(t, ExtendWrite(struct{ http.ResponseWriter }{}, time.Second))
}
