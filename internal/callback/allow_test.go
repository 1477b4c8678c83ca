package callback

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// allowEntries is one entry of every form; each is the whole list in the
// table tests below, and a want string has one mark per entry, in order:
// 'y' allowed, '.' refused as not listed, 'w' refused because the address,
// though allowed, is written in a legacy IPv4 notation.
var allowEntries = []string{
	"localhost",                // 0 name
	"localhost:17091",          // 1 name:port
	"127.0.0.1",                // 2 IP
	"127.0.0.1:17091",          // 3 IP:port
	"127.0.0.0/8",              // 4 CIDR
	"::1",                      // 5 IPv6
	"[::1]:17091",              // 6 [IPv6]:port
	"[::ffff:127.0.0.1]:17091", // 7 IPv4-mapped IPv6 with a port
	"fe80::/10",                // 8 IPv6 CIDR
	"hooks.example.com",        // 9 a public name
	"hooks.example.com:443",    // 10 a public name:port
}

// TestCheckEveryEntryFormEveryAddressForm is issue 23's S2 at enqueue
// time: "127.0.0.1:17091" allowed every port of 127.0.0.1, and
// [::ffff:127.0.0.1] passed as another address. Each URL is checked
// against each entry alone.
func TestCheckEveryEntryFormEveryAddressForm(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		url  string
		want string
	}{
		{"http://localhost:17091/hook", "yy........."},
		{"http://localhost:17093/hook", "y.........."},
		{"http://LOCALHOST.:17091/hook", "yy........."},
		{"http://localhost/hook", "y.........."},
		{"http://127.0.0.1:17091/hook", "..yyy..y..."},
		{"http://127.0.0.1:16391/redis", "..y.y......"},
		{"http://127.0.0.1/hook", "..y.y......"},
		{"http://[::ffff:127.0.0.1]:17091/hook", "..yyy..y..."},
		{"http://[::ffff:127.0.0.1]:17093/hook", "..y.y......"},
		{"http://[::ffff:7f00:1]:17093/hook", "..y.y......"},
		{"http://[0:0:0:0:0:ffff:127.0.0.1]:16391/", "..y.y......"},
		{"http://2130706433:17091/hook", "..www..w..."},
		{"http://2130706433:16391/redis", "..w.w......"},
		{"http://0x7f000001:17093/", "..w.w......"},
		{"http://0177.0.0.1:17091/", "..www..w..."},
		{"http://127.1:17093/", "..w.w......"},
		{"http://0x7f.0.0.1:17093/", "..w.w......"},
		{"http://[::1]:17091/hook", ".....yy...."},
		{"http://[::1]:17093/hook", ".....y....."},
		{"http://[0:0::1]:17093/hook", ".....y....."},
		{"http://[fe80::1%25eth0]:17091/hook", "........y.."},
		{"https://hooks.example.com/hook", ".........yy"},
		{"https://hooks.example.com:8443/hook", ".........y."},
		{"http://hooks.example.com.evil.test/hook", "..........."},
		{"http://169.254.169.254/latest", "..........."},
		{"http://127.0.0.1:0/", "..........."},
		{"http://1.2.3.4.5/", "..........."},
	} {
		t.Run(tc.url, func(t *testing.T) {
			t.Parallel()
			require.Len(t, tc.want, len(allowEntries))
			for i, entry := range allowEntries {
				a, err := ParseAllow(entry)
				require.NoError(t, err, entry)
				err = a.Check(tc.url)
				switch tc.want[i] {
				case 'y':
					require.NoError(t, err, "entry %q", entry)
				case 'w':
					require.ErrorIs(t, err, ErrNotAllowed, "entry %q", entry)
					require.Contains(t, err.Error(), "legacy notation; write it as 127.0.0.1", "entry %q", entry)
				default:
					require.ErrorIs(t, err, ErrNotAllowed, "entry %q", entry)
					require.NotContains(t, err.Error(), "write it as", "entry %q", entry)
				}
			}
		})
	}
}

// TestConnectEveryEntryFormEveryAddress is S2 and M8 at delivery time:
// the worker checks the address and port it dials, after DNS. A name
// entry reaches a public address by itself, a loopback, private,
// link-local or other special one only when an IP or CIDR entry allows
// it ("localhost" alone reached 127.0.0.1).
func TestConnectEveryEntryFormEveryAddress(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		host, address string // as the URL names the host; the address dialed
		want          string
	}{
		{"localhost", "127.0.0.1:17091", "..yyy..y..."},
		{"localhost", "127.0.0.1:17093", "..y.y......"},
		{"localhost", "[::ffff:127.0.0.1]:17093", "..y.y......"},
		{"localhost", "[::1]:17091", ".....yy...."},
		{"LocalHost.", "[::1]:17093", ".....y....."},
		{"127.0.0.1", "127.0.0.1:16391", "..y.y......"},
		{"2130706433", "127.0.0.1:16391", "..y.y......"},
		{"[::ffff:127.0.0.1]", "[::ffff:127.0.0.1]:17091", "..yyy..y..."},
		{"hooks.example.com", "93.184.216.34:443", ".........yy"},
		{"hooks.example.com", "93.184.216.34:8443", ".........y."},
		{"hooks.example.com", "[2606:4700::1]:443", ".........yy"},
		{"hooks.example.com", "127.0.0.1:443", "..y.y......"},
		{"hooks.example.com", "10.1.2.3:443", "..........."},
		{"hooks.example.com", "192.168.1.1:443", "..........."},
		{"hooks.example.com", "100.64.0.1:443", "..........."},
		{"hooks.example.com", "169.254.169.254:443", "..........."},
		{"hooks.example.com", "0.0.0.0:443", "..........."},
		{"hooks.example.com", "[::]:443", "..........."},
		{"hooks.example.com", "[fd00::1]:443", "..........."},
		{"hooks.example.com", "[64:ff9b::a01:203]:443", "..........."},
		{"hooks.example.com", "[2002:a01:203::1]:443", "..........."},
		{"hooks.example.com", "[fe80::1%eth0]:443", "........y.."},
		{"evil.example", "93.184.216.34:443", "..........."},
	} {
		t.Run(tc.host+"->"+tc.address, func(t *testing.T) {
			t.Parallel()
			require.Len(t, tc.want, len(allowEntries))
			for i, entry := range allowEntries {
				a, err := ParseAllow(entry)
				require.NoError(t, err, entry)
				err = a.connectAllowed(tc.host, tc.address)
				if tc.want[i] == 'y' {
					require.NoError(t, err, "entry %q", entry)
				} else {
					require.ErrorIs(t, err, ErrNotAllowed, "entry %q", entry)
				}
			}
		})
	}
}

// TestParseAllowRefuses: entries that do not say one thing are refused
// when the setting is read, with the entry in the error.
func TestParseAllowRefuses(t *testing.T) {
	t.Parallel()
	for _, entry := range []string{
		"2130706433", "0x7f000001", "127.1", "127.0.0.1:0", "127.0.0.1:65536", "localhost:http",
		"10.0.0.0/8:80", "10.0.0.0/33", "a b", "a:b:c", "[localhost]", "1.2.3.4.5", "[::1]:",
	} {
		t.Run(entry, func(t *testing.T) {
			t.Parallel()
			_, err := ParseAllow("localhost," + entry)
			require.Error(t, err)
			require.Contains(t, err.Error(), fmt.Sprintf("%q", entry))
		})
	}
}

// TestDeliveryRefusesOtherPorts: with "127.0.0.1:<A>" listed, the client
// delivers to A and refuses, before connecting, B on the same address,
// however B's address is written. B (standing in for the Redis of the
// report) sees no request.
func TestDeliveryRefusesOtherPorts(t *testing.T) {
	t.Parallel()
	var hitsA, hitsB atomic.Int32
	srvA := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { hitsA.Add(1) }))
	defer srvA.Close()
	srvB := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { hitsB.Add(1) }))
	defer srvB.Close()
	_, portA, _ := net.SplitHostPort(srvA.Listener.Addr().String())
	_, portB, _ := net.SplitHostPort(srvB.Listener.Addr().String())

	a, err := ParseAllow("127.0.0.1:" + portA)
	require.NoError(t, err)
	c := NewHTTPClient(a)
	s, err := ParseSecret("whsec_" + strings.Repeat("QUJD", 8))
	require.NoError(t, err)
	send := func(u string) (int, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return Send(ctx, c, s, Delivery{ID: "msg_1", URL: u, Body: []byte(`{}`), Now: time.Now()})
	}

	code, err := send("http://127.0.0.1:" + portA + "/hook")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code)
	require.EqualValues(t, 1, hitsA.Load())

	for _, u := range []string{
		"http://127.0.0.1:" + portB + "/redis",
		"http://[::ffff:127.0.0.1]:" + portB + "/redis",
		"http://localhost:" + portB + "/redis",
		"http://localhost:" + portA + "/hook", // a name, not listed
	} {
		_, err := send(u)
		require.ErrorIs(t, err, ErrNotAllowed, u)
		require.False(t, errors.Is(err, ErrRedirect), u)
	}
	require.Zero(t, hitsB.Load(), "a refused port got a request")
	require.EqualValues(t, 1, hitsA.Load())
}
