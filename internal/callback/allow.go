// Package callback holds what completion callbacks need on both sides of
// Redis: the allow-list of destinations (serve refuses other URLs, the
// worker checks every connection), Standard Webhooks signing, and the HTTP
// client that delivers.
package callback

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
)

// ErrNotAllowed marks a callback URL, or a connection, outside the
// allow-list (WAHAQ_CALLBACK_ALLOW).
var ErrNotAllowed = errors.New("callback destination not allowed")

// MaxURLLength bounds a callback URL.
const MaxURLLength = 2048

// Allow is the list of destinations a callback may reach
// (WAHAQ_CALLBACK_ALLOW): host names (any port), host:port pairs, and CIDRs
// (or single IP addresses). The zero value allows nothing.
type Allow struct {
	hosts    map[string]bool // lower-case host name -> any port
	hostPort map[string]bool // lower-case "host:port"
	prefixes []netip.Prefix
}

// ParseAllow parses a comma-separated allow-list, e.g.
// "n8n.internal,hooks.example.com:443,10.0.0.0/8,127.0.0.1".
func ParseAllow(s string) (*Allow, error) {
	a := &Allow{hosts: map[string]bool{}, hostPort: map[string]bool{}}
	for _, e := range strings.Split(s, ",") {
		e = strings.ToLower(strings.TrimSpace(e))
		if e == "" {
			continue
		}
		if p, err := netip.ParsePrefix(e); err == nil {
			a.prefixes = append(a.prefixes, p.Masked())
			continue
		}
		if ip, err := netip.ParseAddr(strings.Trim(e, "[]")); err == nil {
			a.prefixes = append(a.prefixes, netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen()))
			continue
		}
		if h, p, err := net.SplitHostPort(e); err == nil {
			if ip, err := netip.ParseAddr(h); err == nil {
				// An IP with a port: the port is not checked for IPs.
				a.prefixes = append(a.prefixes, netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen()))
				continue
			}
			if !validHost(h) || p == "" {
				return nil, fmt.Errorf("callback allow-list entry %q is not a host, host:port or CIDR", e)
			}
			a.hostPort[h+":"+p] = true
			continue
		}
		if !validHost(e) {
			return nil, fmt.Errorf("callback allow-list entry %q is not a host, host:port or CIDR", e)
		}
		a.hosts[e] = true
	}
	return a, nil
}

func validHost(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for _, c := range h {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return false
		}
	}
	return true
}

// Empty reports whether the list allows nothing.
func (a *Allow) Empty() bool {
	return a == nil || len(a.hosts) == 0 && len(a.hostPort) == 0 && len(a.prefixes) == 0
}

// byName reports whether host:port is allowed by a host entry.
func (a *Allow) byName(host, port string) bool {
	host = strings.ToLower(host)
	return a.hosts[host] || a.hostPort[host+":"+port]
}

// ipAllowed reports whether ip is in one of the CIDRs.
func (a *Allow) ipAllowed(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range a.prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// Check validates a callback URL: http or https, no user info, no fragment,
// and a host the list allows by name (host or host:port entry) or an IP
// literal inside one of its CIDRs. Host names that only resolve into a CIDR
// are refused here, so what serve accepts is decided without DNS; the worker
// checks the address of every connection again (Dialer).
func (a *Allow) Check(raw string) error {
	if len(raw) > MaxURLLength {
		return fmt.Errorf("%w: callback_url is longer than %d bytes", ErrNotAllowed, MaxURLLength)
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return fmt.Errorf("%w: callback_url %q is not an absolute http(s) URL", ErrNotAllowed, clip(raw))
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%w: callback_url scheme %q is not http or https", ErrNotAllowed, clip(u.Scheme))
	}
	if u.User != nil {
		return fmt.Errorf("%w: callback_url must not carry a user name or password", ErrNotAllowed)
	}
	if u.Fragment != "" {
		return fmt.Errorf("%w: callback_url must not carry a fragment", ErrNotAllowed)
	}
	if a.Empty() {
		return fmt.Errorf("%w: completion callbacks are off: WAHAQ_CALLBACK_ALLOW names no destination", ErrNotAllowed)
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if a.ipAllowed(ip) || a.byName(host, port) {
			return nil
		}
	} else if a.byName(host, port) {
		return nil
	}
	return fmt.Errorf("%w: callback_url host %q is not in WAHAQ_CALLBACK_ALLOW", ErrNotAllowed, clip(u.Host))
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
