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
	"strconv"
	"strings"
)

// ErrNotAllowed marks a callback URL, or a connection, outside the
// allow-list (WAHAQ_CALLBACK_ALLOW).
var ErrNotAllowed = errors.New("callback destination not allowed")

// MaxURLLength bounds a callback URL.
const MaxURLLength = 2048

// Allow is the list of destinations a callback may reach
// (WAHAQ_CALLBACK_ALLOW). Each entry means exactly what it says:
//
//   - an IP (127.0.0.1, ::1, [::1]) or a CIDR (10.0.0.0/8): any port of
//     those addresses;
//   - IP:port ([::1]:8080 for IPv6): that port of that address only;
//   - a host name (n8n.internal): any port of a URL naming that host;
//   - name:port: that port only.
//
// A listed name reaches a public address by itself; a loopback, private,
// link-local or otherwise special address it resolves to must also be
// allowed by an IP or CIDR entry (with its port), so that a name, or
// whoever controls its DNS, cannot lead a delivery into the local network
// (issue 23, M8). Addresses are compared in one spelling: IPv4-mapped IPv6
// (::ffff:127.0.0.1) as IPv4, zones dropped, and the legacy IPv4 notations
// (2130706433, 0x7f.1, 0177.0.0.1) read as a C resolver reads them.
// The zero value allows nothing.
type Allow struct {
	names map[string]ports // lower-case host name without a trailing dot
	ips   []ipRule
}

// ports is the ports an entry allows: nil for any.
type ports map[uint16]bool

func (p ports) allows(port uint16) bool { return p == nil || p[port] }

// ipRule is an IP or CIDR entry: port 0 allows any port.
type ipRule struct {
	prefix netip.Prefix
	port   uint16
}

// ParseAllow parses a comma-separated allow-list, e.g.
// "n8n.internal,hooks.example.com:443,10.0.0.0/8,127.0.0.1:5678".
func ParseAllow(s string) (*Allow, error) {
	a := &Allow{names: map[string]ports{}}
	for _, e := range strings.Split(s, ",") {
		e = strings.ToLower(strings.TrimSpace(e))
		if e == "" {
			continue
		}
		if err := a.add(e); err != nil {
			return nil, fmt.Errorf("callback allow-list entry %q %w", e, err)
		}
	}
	return a, nil
}

var errEntry = errors.New("is not a host name, name:port, IP, IP:port ([IPv6]:port) or CIDR")

// add parses one entry (lower case, trimmed).
func (a *Allow) add(e string) error {
	if strings.Contains(e, "/") {
		p, err := netip.ParsePrefix(e)
		if err != nil {
			return errEntry
		}
		a.ips = append(a.ips, ipRule{prefix: normPrefix(p)})
		return nil
	}
	host, port := e, uint16(0)
	if h, p, err := net.SplitHostPort(e); err == nil {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return fmt.Errorf("has port %q; a port is 1 to 65535", p)
		}
		host, port = h, uint16(n)
	} else if strings.HasPrefix(e, "[") && strings.HasSuffix(e, "]") {
		host = e[1 : len(e)-1]
	}
	ip, kind := parseHost(host)
	if strings.HasPrefix(e, "[") && kind != hostIP {
		return errEntry // brackets hold an IPv6 address
	}
	switch kind {
	case hostIP:
		a.ips = append(a.ips, ipRule{prefix: netip.PrefixFrom(ip, ip.BitLen()), port: port})
	case hostLegacyIP:
		return fmt.Errorf("is an IPv4 address in a legacy notation; write it as %s", ip)
	case hostName:
		host = strings.TrimSuffix(host, ".")
		if port == 0 {
			a.names[host] = nil
			return nil
		}
		if p, ok := a.names[host]; ok && p == nil {
			return nil // already any port
		}
		if a.names[host] == nil {
			a.names[host] = ports{}
		}
		a.names[host][port] = true
	default:
		return errEntry
	}
	return nil
}

// hostKind is what a URL's or an entry's host is.
type hostKind int

const (
	hostInvalid  hostKind = iota
	hostName              // a DNS name
	hostIP                // an IP in a standard spelling
	hostLegacyIP          // an IPv4 in inet_aton's notations (2130706433, 0x7f.1, 0177.0.0.1)
)

// parseHost classifies host (lower case, brackets removed) and, for an IP,
// returns it normalised (see normAddr). A name whose last label is a
// number is an IPv4 address in a legacy notation, as the WHATWG URL
// standard and C resolvers read it, never a name.
func parseHost(host string) (netip.Addr, hostKind) {
	if ip, err := netip.ParseAddr(host); err == nil {
		return normAddr(ip), hostIP
	}
	trimmed := strings.TrimSuffix(host, ".")
	last := trimmed[strings.LastIndexByte(trimmed, '.')+1:]
	if last != "" && (isDigits(last) || strings.HasPrefix(last, "0x")) {
		if ip, ok := parseLegacyIPv4(trimmed); ok {
			return ip, hostLegacyIP
		}
		return netip.Addr{}, hostInvalid
	}
	if !validHost(trimmed) {
		return netip.Addr{}, hostInvalid
	}
	return netip.Addr{}, hostName
}

func isDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

// parseLegacyIPv4 reads s as inet_aton does: one to four parts separated by
// dots, each decimal, octal (leading 0) or hexadecimal (0x), the last part
// filling the bytes the others left.
func parseLegacyIPv4(s string) (netip.Addr, bool) {
	parts := strings.Split(s, ".")
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	var vals []uint64
	for _, p := range parts {
		base := 10
		switch {
		case strings.HasPrefix(p, "0x"):
			p, base = p[2:], 16
			if p == "" {
				p = "0" // "0x" is 0, as inet_aton reads it
			}
		case len(p) > 1 && p[0] == '0':
			p, base = p[1:], 8
		}
		v, err := strconv.ParseUint(p, base, 32)
		if err != nil {
			return netip.Addr{}, false
		}
		vals = append(vals, v)
	}
	var n uint64
	for i, v := range vals[:len(vals)-1] {
		if v > 0xff {
			return netip.Addr{}, false
		}
		n |= v << (24 - 8*i)
	}
	last := vals[len(vals)-1]
	if last >= 1<<(8*(5-len(vals))) {
		return netip.Addr{}, false
	}
	n |= last
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}), true
}

// normAddr is ip in the spelling the list compares: IPv4-mapped IPv6 as
// IPv4, no zone.
func normAddr(ip netip.Addr) netip.Addr {
	return ip.WithZone("").Unmap()
}

// normPrefix is p masked, an IPv4-mapped IPv6 prefix (::ffff:10.0.0.0/104)
// as the IPv4 prefix it covers.
func normPrefix(p netip.Prefix) netip.Prefix {
	if ip := p.Addr(); ip.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(ip.Unmap(), p.Bits()-96)
	}
	return p.Masked()
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
	return a == nil || len(a.names) == 0 && len(a.ips) == 0
}

// ipAllowed reports whether an IP or CIDR entry allows ip:port.
func (a *Allow) ipAllowed(ip netip.Addr, port uint16) bool {
	ip = normAddr(ip)
	for _, r := range a.ips {
		if r.prefix.Contains(ip) && (r.port == 0 || r.port == port) {
			return true
		}
	}
	return false
}

// nameAllowed reports whether a name entry allows name:port.
func (a *Allow) nameAllowed(name string, port uint16) bool {
	p, ok := a.names[strings.TrimSuffix(strings.ToLower(name), ".")]
	return ok && p.allows(port)
}

// Check validates a callback URL: http or https, no user info, no fragment,
// and a destination the list allows: a host name by a name entry (with its
// port), an IP literal by an IP or CIDR entry (with its port). An IP in a
// legacy notation is refused even when allowed: what it means depends on
// the resolver. Host names are not resolved here, so what serve accepts is
// decided without DNS; the worker checks the address and port of every
// connection again (NewHTTPClient).
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
	p := u.Port()
	if p == "" {
		p = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil || n == 0 {
		return fmt.Errorf("%w: callback_url port %q is not 1 to 65535", ErrNotAllowed, clip(p))
	}
	port := uint16(n)
	host := strings.ToLower(u.Hostname())
	ip, kind := parseHost(host)
	switch kind {
	case hostName:
		if a.nameAllowed(host, port) {
			return nil
		}
	case hostIP:
		if a.ipAllowed(ip, port) {
			return nil
		}
		return fmt.Errorf("%w: callback_url address %s port %d is not in WAHAQ_CALLBACK_ALLOW", ErrNotAllowed, ip, port)
	case hostLegacyIP:
		if a.ipAllowed(ip, port) {
			return fmt.Errorf("%w: callback_url host %q is an IPv4 address in a legacy notation; write it as %s", ErrNotAllowed, clip(host), ip)
		}
		return fmt.Errorf("%w: callback_url address %s (written %q) port %d is not in WAHAQ_CALLBACK_ALLOW", ErrNotAllowed, ip, clip(host), port)
	default:
		return fmt.Errorf("%w: callback_url host %q is not a host name or an IP address", ErrNotAllowed, clip(host))
	}
	return fmt.Errorf("%w: callback_url host %q port %d is not in WAHAQ_CALLBACK_ALLOW", ErrNotAllowed, clip(host), port)
}

// connectAllowed decides one connection of a delivery to the URL host
// (as the URL names it) at address (the IP and port dialed, after DNS): an
// IP or CIDR entry allowing the address and port; or a name entry allowing
// the host and port, and then only a public address (see public).
func (a *Allow) connectAllowed(host, address string) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: %s", ErrNotAllowed, address)
	}
	ip, port := normAddr(ap.Addr()), ap.Port()
	if a.ipAllowed(ip, port) {
		return nil
	}
	host = strings.ToLower(strings.Trim(host, "[]"))
	if _, kind := parseHost(host); kind == hostName && a.nameAllowed(host, port) && public(ip) {
		return nil
	}
	return fmt.Errorf("%w: connection to %s", ErrNotAllowed, netip.AddrPortFrom(ip, port))
}

// special are ranges that are not the public internet beyond what
// netip's predicates name: shared (CGNAT), "this network", IETF protocol
// assignments, benchmarking, reserved, NAT64 and 6to4 (both embed an IPv4
// that may be private), discard-only, documentation, deprecated
// site-local.
var special = func() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range []string{
		"0.0.0.0/8", "100.64.0.0/10", "192.0.0.0/24", "192.0.2.0/24", "198.18.0.0/15",
		"198.51.100.0/24", "203.0.113.0/24", "240.0.0.0/4",
		"64:ff9b::/96", "64:ff9b:1::/48", "100::/64", "2001:db8::/32", "2002::/16", "fec0::/10",
	} {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}()

// public reports whether ip is on the public internet: not loopback,
// private, link-local (169.254.169.254 is the cloud metadata service),
// unspecified, multicast or one of the special ranges.
func public(ip netip.Addr) bool {
	ip = normAddr(ip)
	if !ip.IsGlobalUnicast() || ip.IsPrivate() {
		return false
	}
	for _, p := range special {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
