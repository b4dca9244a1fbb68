package server

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// clientOf returns the address and scheme ("http" or "https") of the client
// that sent r. Both are those of the TCP peer unless the peer is one of
// cfg.TrustedProxies; then they come from what the proxies recorded:
//
//   - The address is read from the right of the Forwarded (RFC 7239 for=)
//     or X-Forwarded-For list, since each proxy appends the peer it saw:
//     addresses that are themselves trusted proxies are skipped, and the
//     first one that is not is the client (every entry to its left was
//     written by the client and may be anything). When every entry is
//     trusted, the client is the leftmost. An entry that is not an IP
//     address where the walk reads it (garbage, "unknown", an obfuscated
//     identifier such as "_hidden") leaves the peer's address: the client
//     cannot be told, and a string that is not an address must never key
//     a limit.
//   - The scheme is the proto= of the Forwarded entry that named the
//     client, else X-Forwarded-Proto when all its values agree on http or
//     https, else that of the connection.
//
// An untrusted peer's forwarding headers are ignored entirely: anybody can
// send them.
func (s *Server) clientOf(r *http.Request) (address, scheme string) {
	scheme = "http"
	if r.TLS != nil {
		scheme = "https"
	}
	peer, ok := parsePeer(r.RemoteAddr)
	if !ok {
		// Not a TCP peer (a test's or a unix socket's RemoteAddr): as
		// before, and never trusted.
		return clientAddress(r.RemoteAddr), scheme
	}
	if !s.trusted(peer) {
		return peer.String(), scheme
	}
	client, proto := s.forwardedClient(r.Header)
	if !client.IsValid() {
		client = peer
	}
	if proto == "" {
		proto = forwardedProto(r.Header.Values("X-Forwarded-Proto"))
	}
	if proto != "" {
		scheme = proto
	}
	return client.String(), scheme
}

// clientAddress returns the host of a RemoteAddr that is not an IP address
// and port, or remoteAddr itself.
func clientAddress(remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		return remoteAddr
	}
	return host
}

// trusted reports whether a (normalised) is one of the trusted proxies.
func (s *Server) trusted(a netip.Addr) bool {
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// forwardedClient returns the client that the forwarding headers name, with
// the proto= of its Forwarded entry, or an invalid address when they name
// none that can be believed.
//
// Which header wins when both are present: neither on its own. The common
// proxies (nginx, ingress-nginx, Envoy, AWS load balancers, Caddy) maintain
// only X-Forwarded-For and pass a client's Forwarded header through
// untouched, and a few (HAProxy's option forwarded) do the reverse; so
// preferring either header would let a client behind the other kind of
// proxy name any address it likes and escape its limits. When both are
// present the client is believed only if both name the same address; when
// they differ, one of them was written by the client, there is no telling
// which, and the peer's address is used. A client gains nothing by sending
// the other header: it then shares the proxy's address with everyone else
// who did, which no honest client does.
func (s *Server) forwardedClient(h http.Header) (client netip.Addr, proto string) {
	fwd, fwdProto, fwdPresent := s.fromForwarded(h.Values("Forwarded"))
	xff, xffPresent := s.fromXForwardedFor(h.Values("X-Forwarded-For"))
	switch {
	case fwdPresent && xffPresent:
		if fwd.IsValid() && fwd == xff {
			return fwd, fwdProto
		}
		return netip.Addr{}, ""
	case fwdPresent:
		return fwd, fwdProto
	case xffPresent:
		return xff, ""
	}
	return netip.Addr{}, ""
}

// fromXForwardedFor walks the X-Forwarded-For list (every header line, in
// order, each a comma-separated list) from the right and returns the
// client it names, invalid when the entry read is not an address. present
// is false when the list is empty.
func (s *Server) fromXForwardedFor(values []string) (client netip.Addr, present bool) {
	var entries []string
	for _, v := range values {
		for e := range strings.SplitSeq(v, ",") {
			// Empty list elements are allowed and mean nothing (RFC 9110
			// section 5.6.1).
			if e = strings.TrimSpace(e); e != "" {
				entries = append(entries, e)
			}
		}
	}
	if len(entries) == 0 {
		return netip.Addr{}, false
	}
	for i := len(entries) - 1; ; i-- {
		a, ok := parseNode(entries[i])
		if !ok {
			return netip.Addr{}, true
		}
		if i == 0 || !s.trusted(a) {
			return a, true
		}
	}
}

// fromForwarded walks the Forwarded elements from the right and returns
// the client that the for= of the element read names, with that element's
// proto=; invalid when the element does not parse, has no for=, or its
// for= is not an IP address. present is false when there are no elements.
func (s *Server) fromForwarded(values []string) (client netip.Addr, proto string, present bool) {
	elements := parseForwarded(values)
	if len(elements) == 0 {
		return netip.Addr{}, "", false
	}
	for i := len(elements) - 1; ; i-- {
		el := elements[i]
		if el.bad || !el.hasFor {
			return netip.Addr{}, "", true
		}
		a, ok := parseNode(el.forNode)
		if !ok {
			return netip.Addr{}, "", true
		}
		if i == 0 || !s.trusted(a) {
			return a, schemeName(el.proto), true
		}
	}
}

// forwardedProto returns the scheme of X-Forwarded-Proto when every value
// of it is the same http or https, and "" otherwise: proxies usually set
// the header rather than append to it, and a list that disagrees cannot
// say which of its values came from the proxy facing the client.
func forwardedProto(values []string) string {
	scheme := ""
	for _, v := range values {
		for e := range strings.SplitSeq(v, ",") {
			if e = strings.TrimSpace(e); e == "" {
				continue
			}
			name := schemeName(e)
			if name == "" || (scheme != "" && name != scheme) {
				return ""
			}
			scheme = name
		}
	}
	return scheme
}

// schemeName returns "http" or "https" for those names in any case, and ""
// for anything else.
func schemeName(s string) string {
	switch s = strings.ToLower(s); s {
	case "http", "https":
		return s
	}
	return ""
}

// parsePeer returns the IP address of a RemoteAddr, normalised.
func parsePeer(remoteAddr string) (netip.Addr, bool) {
	if ap, err := netip.ParseAddrPort(remoteAddr); err == nil {
		return normalise(ap.Addr()), true
	}
	if a, err := netip.ParseAddr(remoteAddr); err == nil {
		return normalise(a), true
	}
	return netip.Addr{}, false
}

// parseNode parses one entry of X-Forwarded-For or the value of a for=
// parameter: an IPv4 or IPv6 address, the latter with or without brackets,
// either with or without a port (IPv6 with a port only in brackets, where
// it is unambiguous). Names, "unknown" and obfuscated identifiers are not
// addresses.
func parseNode(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return normalise(a), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return normalise(ap.Addr()), true
	}
	if inner, ok := strings.CutPrefix(s, "["); ok {
		if inner, ok = strings.CutSuffix(inner, "]"); ok {
			if a, err := netip.ParseAddr(inner); err == nil && a.Is6() {
				return normalise(a), true
			}
		}
	}
	return netip.Addr{}, false
}

// normalise returns a in the form that limits key on: an IPv4-mapped IPv6
// address as IPv4, without an IPv6 zone, so that one client has one
// address however it arrived.
func normalise(a netip.Addr) netip.Addr {
	return a.Unmap().WithZone("")
}

// normalisePrefixes returns ps in the form trusted compares against: IPv4-
// mapped prefixes as IPv4 (normalise unmaps the addresses they would have
// to contain) and host bits cleared. A mapped prefix wider than the mapped
// range is dropped, as it could never contain a normalised address.
func normalisePrefixes(ps []netip.Prefix) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(ps))
	for _, p := range ps {
		if !p.IsValid() {
			continue
		}
		if a := p.Addr(); a.Is4In6() {
			if p.Bits() < 96 {
				continue
			}
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		out = append(out, p.Masked())
	}
	return out
}

// forwardedElement is one element of a Forwarded header: what a proxy
// recorded about the request it received.
type forwardedElement struct {
	// forNode is the value of for=, unquoted.
	forNode string
	hasFor  bool
	// proto is the value of proto=, unquoted.
	proto string
	// bad is set when the element does not parse: a pair that is not
	// name=value, an unterminated quoted string, a parameter given twice.
	bad bool
}

// parseForwarded splits the lines of a Forwarded header into its elements
// (RFC 7239 section 4), left to right. It is lenient in one way: an
// unquoted value may hold ':' and brackets, as a proxy configured with
// "for=$remote_addr" writes IPv6 addresses that way. An element that does
// not parse is kept, marked bad, so that the walk from the right stops on
// it; an unterminated quoted string makes the rest of its line one bad
// element.
func parseForwarded(values []string) []forwardedElement {
	var out []forwardedElement
	for _, v := range values {
		out = appendForwardedLine(out, v)
	}
	return out
}

// appendForwardedLine appends the elements of one header line to out.
func appendForwardedLine(out []forwardedElement, v string) []forwardedElement {
	var el forwardedElement
	empty := true
	var seen map[string]bool
	flush := func() {
		if !empty {
			out = append(out, el)
		}
		el, empty, seen = forwardedElement{}, true, nil
	}
	// fail marks the element bad and skips to its end.
	fail := func(i int) int {
		el.bad, empty = true, false
		return skipElement(v, i)
	}
	i := 0
	for {
		i = skipSpace(v, i)
		if i == len(v) {
			flush()
			return out
		}
		switch v[i] {
		case ',':
			flush()
			i++
			continue
		case ';':
			i++
			continue
		}
		start := i
		for i < len(v) && isTokenChar(v[i]) {
			i++
		}
		name := strings.ToLower(v[start:i])
		if name == "" || i == len(v) || v[i] != '=' {
			i = fail(i)
			continue
		}
		i++
		var value string
		if i < len(v) && v[i] == '"' {
			var ok bool
			value, i, ok = quotedString(v, i)
			if !ok {
				el.bad, empty = true, false
				flush()
				return out
			}
		} else {
			start := i
			for i < len(v) && !strings.ContainsRune(",;\" \t", rune(v[i])) {
				i++
			}
			value = v[start:i]
			if value == "" {
				i = fail(i)
				continue
			}
		}
		if seen[name] {
			// "Each parameter MUST NOT occur more than once per
			// forwarded-element" (RFC 7239 section 4).
			i = fail(i)
			continue
		}
		if seen == nil {
			seen = map[string]bool{}
		}
		seen[name] = true
		empty = false
		switch name {
		case "for":
			el.forNode, el.hasFor = value, true
		case "proto":
			el.proto = value
		}
		i = skipSpace(v, i)
		if i < len(v) && v[i] != ',' && v[i] != ';' {
			i = fail(i)
		}
	}
}

// quotedString reads the quoted-string that starts at v[i] == '"' and
// returns its content with escapes resolved and the index after its closing
// quote; ok is false when it is not closed.
func quotedString(v string, i int) (value string, next int, ok bool) {
	var b strings.Builder
	for i++; i < len(v); i++ {
		switch c := v[i]; c {
		case '"':
			return b.String(), i + 1, true
		case '\\':
			if i++; i == len(v) {
				return "", i, false
			}
			b.WriteByte(v[i])
		default:
			b.WriteByte(c)
		}
	}
	return "", i, false
}

// skipElement returns the index of the next ',' at or after i that is not
// inside a quoted string, or len(v).
func skipElement(v string, i int) int {
	for i < len(v) {
		switch v[i] {
		case ',':
			return i
		case '"':
			_, next, ok := quotedString(v, i)
			if !ok {
				return len(v)
			}
			i = next
		default:
			i++
		}
	}
	return i
}

// skipSpace returns the index of the first byte at or after i that is not
// a space or tab.
func skipSpace(v string, i int) int {
	for i < len(v) && (v[i] == ' ' || v[i] == '\t') {
		i++
	}
	return i
}

// isTokenChar reports whether c may appear in an HTTP token (RFC 9110
// section 5.6.2).
func isTokenChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}
