package callback

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Secret is a Standard Webhooks signing key, written "whsec_" + base64 as
// the spec's libraries expect (WAHAQ_CALLBACK_SECRET).
type Secret struct{ key []byte }

// ParseSecret decodes "whsec_<base64>". The key must be 24 to 64 bytes,
// as the spec recommends.
func ParseSecret(s string) (Secret, error) {
	b64, ok := strings.CutPrefix(strings.TrimSpace(s), "whsec_")
	if !ok {
		return Secret{}, errors.New(`the callback secret must start with "whsec_" followed by base64 (Standard Webhooks)`)
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return Secret{}, errors.New(`the callback secret after "whsec_" is not valid base64`)
	}
	if len(key) < 24 || len(key) > 64 {
		return Secret{}, fmt.Errorf("the callback secret decodes to %d bytes; use 24 to 64 random bytes", len(key))
	}
	return Secret{key: key}, nil
}

// Set reports whether the secret holds a key.
func (s Secret) Set() bool { return len(s.key) > 0 }

// Sign returns the webhook-signature header value for a message:
// "v1," + base64(HMAC-SHA256(key, id + "." + timestamp + "." + body)).
func (s Secret) Sign(id string, ts int64, body []byte) string {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(id + "." + strconv.FormatInt(ts, 10) + "."))
	m.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// Limits of one delivery.
const (
	// RequestTimeout bounds one delivery attempt, connect to last byte.
	RequestTimeout = 15 * time.Second
	// MaxResponseBytes is how much of a receiver's answer is read (the
	// status is what counts; the rest is discarded unread).
	MaxResponseBytes = 4 << 10
)

// ErrRedirect marks a receiver that answered a redirect: callbacks do not
// follow redirects, so an allowed host cannot send one elsewhere.
var ErrRedirect = errors.New("callback receiver answered a redirect, which is not followed")

// NewHTTPClient returns the client that delivers callbacks: no proxy from
// the environment, no redirects, no cookies, a bounded timeout, and a dialer
// that checks the address and port of every connection against a (after
// DNS, so a name that resolves somewhere else is refused), after checking
// the URL against a again.
func NewHTTPClient(a *Allow) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	tr := &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			dd := *d
			dd.Control = func(_, address string, _ syscall.RawConn) error {
				return a.connectAllowed(host, address)
			}
			return dd.DialContext(ctx, network, addr)
		},
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: RequestTimeout,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       30 * time.Second,
	}
	return &http.Client{
		Transport: checked{allow: a, next: tr},
		Timeout:   RequestTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// checked checks every request's URL against the list again at delivery
// time (the list may have changed since the URL was accepted, or the
// producer had another), before the dialer checks the address.
type checked struct {
	allow *Allow
	next  *http.Transport
}

func (c checked) RoundTrip(r *http.Request) (*http.Response, error) {
	if err := c.allow.Check(r.URL.String()); err != nil {
		if r.Body != nil {
			_ = r.Body.Close()
		}
		return nil, err
	}
	return c.next.RoundTrip(r)
}

// CloseIdleConnections lets http.Client.CloseIdleConnections reach the
// transport.
func (c checked) CloseIdleConnections() { c.next.CloseIdleConnections() }

// Delivery is one signed POST.
type Delivery struct {
	// ID is the webhook-id: the same on every retry of one delivery, so
	// receivers can drop duplicates.
	ID string
	// URL is the destination; it was checked by Allow.Check.
	URL string
	// Body is the JSON posted.
	Body []byte
	// Now is the signing time.
	Now time.Time
}

// Send posts d, signed with s, and returns the receiver's status code. A
// redirect is an error wrapping ErrRedirect. The request carries only the
// Standard Webhooks headers, a content type and a user agent: none of
// wahaq's secrets.
func Send(ctx context.Context, c *http.Client, s Secret, d Delivery) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.URL, strings.NewReader(string(d.Body)))
	if err != nil {
		return 0, fmt.Errorf("callback request: %w", err)
	}
	ts := d.Now.Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "wahaq-callback/1")
	req.Header.Set("webhook-id", d.ID)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
	req.Header.Set("webhook-signature", s.Sign(d.ID, ts, d.Body))
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, MaxResponseBytes))
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		return resp.StatusCode, fmt.Errorf("%w (HTTP %d)", ErrRedirect, resp.StatusCode)
	}
	return resp.StatusCode, nil
}
