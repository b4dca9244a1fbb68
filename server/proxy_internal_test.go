package server

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"reflect"
	"testing"
)

// TestClientOf reads the client's address and scheme as a server behind
// proxies in 10.0.0.0/8, 192.0.2.1 and 2001:db8:ffff::/48 does.
func TestClientOf(t *testing.T) {
	t.Parallel()
	s := &Server{cfg: Config{TrustedProxies: []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("192.0.2.1/32"),
		netip.MustParsePrefix("2001:db8:ffff::/48"),
	}}.withDefaults()}

	const proxy = "10.0.0.1:4711" // a trusted peer
	type header = [2]string
	xff := func(v string) header { return header{"X-Forwarded-For", v} }
	fwd := func(v string) header { return header{"Forwarded", v} }
	xfp := func(v string) header { return header{"X-Forwarded-Proto", v} }
	tests := []struct {
		name       string
		peer       string
		tls        bool
		headers    []header
		wantAddr   string
		wantScheme string
	}{
		// The peer itself.
		{"untrusted peer", "203.0.113.9:1234", false, nil, "203.0.113.9", "http"},
		{"untrusted peer over TLS", "203.0.113.9:1234", true, nil, "203.0.113.9", "https"},
		{"untrusted IPv6 peer", "[2001:db8::9]:443", false, nil, "2001:db8::9", "http"},
		{"untrusted peer with a zone", "[fe80::9%eth0]:443", false, nil, "fe80::9", "http"},
		{"untrusted IPv4-mapped peer", "[::ffff:203.0.113.9]:1234", false, nil, "203.0.113.9", "http"},
		{"peer that is not an address", "@", false, nil, "@", "http"},
		{"trusted peer without headers", proxy, false, nil, "10.0.0.1", "http"},

		// Spoofed headers from an untrusted peer are ignored entirely.
		{"untrusted peer spoofs X-Forwarded-For", "203.0.113.9:1234", false,
			[]header{xff("198.51.100.1"), xfp("https")}, "203.0.113.9", "http"},
		{"untrusted peer spoofs Forwarded", "203.0.113.9:1234", false,
			[]header{fwd("for=198.51.100.1;proto=https")}, "203.0.113.9", "http"},
		{"untrusted peer spoofs a trusted address", "203.0.113.9:1234", false,
			[]header{xff("10.0.0.7")}, "203.0.113.9", "http"},
		{"untrusted peer over TLS claims http", "203.0.113.9:1234", true,
			[]header{xfp("http")}, "203.0.113.9", "https"},

		// X-Forwarded-For.
		{"xff one hop", proxy, false, []header{xff("198.51.100.1")}, "198.51.100.1", "http"},
		{"xff several trusted hops", proxy, false,
			[]header{xff("198.51.100.1, 10.0.0.2, 192.0.2.1")}, "198.51.100.1", "http"},
		{"xff client-written entries on the left", proxy, false,
			[]header{xff("6.6.6.6, 10.0.0.9, 198.51.100.1, 10.0.0.2")}, "198.51.100.1", "http"},
		{"xff over several lines", proxy, false,
			[]header{xff("6.6.6.6"), xff("198.51.100.1, 10.0.0.2"), xff("10.0.0.3")}, "198.51.100.1", "http"},
		{"xff every entry trusted takes the leftmost", proxy, false,
			[]header{xff("10.0.0.5, 192.0.2.1, 10.0.0.2")}, "10.0.0.5", "http"},
		{"xff garbage where read", proxy, false, []header{xff("198.51.100.1, nonsense")}, "10.0.0.1", "http"},
		{"xff garbage behind trusted hops", proxy, false, []header{xff("nonsense, 10.0.0.2")}, "10.0.0.1", "http"},
		{"xff garbage left of the client", proxy, false,
			[]header{xff("nonsense, <script>, 198.51.100.1")}, "198.51.100.1", "http"},
		{"xff unknown", proxy, false, []header{xff("unknown")}, "10.0.0.1", "http"},
		{"xff host name", proxy, false, []header{xff("client.example.com")}, "10.0.0.1", "http"},
		{"xff bad port", proxy, false, []header{xff("198.51.100.1:99999")}, "10.0.0.1", "http"},
		{"xff empty", proxy, false, []header{xff("")}, "10.0.0.1", "http"},
		{"xff only commas", proxy, false, []header{xff(" , ,")}, "10.0.0.1", "http"},
		{"xff empty elements", proxy, false, []header{xff(",198.51.100.1,, 10.0.0.2,")}, "198.51.100.1", "http"},
		{"xff IPv4 with port", proxy, false, []header{xff("198.51.100.1:4711")}, "198.51.100.1", "http"},
		{"xff IPv6", proxy, false, []header{xff("2001:db8::1")}, "2001:db8::1", "http"},
		{"xff IPv6 in brackets", proxy, false, []header{xff("[2001:db8::1]")}, "2001:db8::1", "http"},
		{"xff IPv6 with port", proxy, false, []header{xff("[2001:db8::1]:4711")}, "2001:db8::1", "http"},
		{"xff IPv6 not normalised", proxy, false, []header{xff("2001:DB8:0::0:1")}, "2001:db8::1", "http"},
		{"xff IPv6 with zone", proxy, false, []header{xff("fe80::1%eth0")}, "fe80::1", "http"},
		{"xff IPv4 in brackets", proxy, false, []header{xff("[198.51.100.1]")}, "10.0.0.1", "http"},
		{"xff IPv4-mapped", proxy, false, []header{xff("::ffff:198.51.100.1")}, "198.51.100.1", "http"},
		{"xff IPv4-mapped trusted hop is skipped", proxy, false,
			[]header{xff("198.51.100.1, ::ffff:10.0.0.2")}, "198.51.100.1", "http"},
		{"xff trusted IPv6 hops", "[2001:db8:ffff::1]:443", false,
			[]header{xff("2001:db8::1, [2001:db8:ffff::2]:80")}, "2001:db8::1", "http"},
		{"xff through an IPv4-mapped trusted peer", "[::ffff:10.0.0.1]:80", false,
			[]header{xff("198.51.100.1")}, "198.51.100.1", "http"},

		// Forwarded.
		{"forwarded one hop", proxy, false, []header{fwd("for=198.51.100.1")}, "198.51.100.1", "http"},
		{"forwarded with proto", proxy, false,
			[]header{fwd("for=198.51.100.1;proto=https;by=10.0.0.1;host=api.example.com")}, "198.51.100.1", "https"},
		{"forwarded names and proto in any case", proxy, false,
			[]header{fwd("For=198.51.100.1; PROTO=HTTPS")}, "198.51.100.1", "https"},
		{"forwarded quoted IPv4", proxy, false, []header{fwd(`for="198.51.100.1"`)}, "198.51.100.1", "http"},
		{"forwarded quoted IPv6 with port", proxy, false,
			[]header{fwd(`for="[2001:db8::1]:4711"`)}, "2001:db8::1", "http"},
		{"forwarded quoted IPv6 without port", proxy, false,
			[]header{fwd(`for="[2001:db8::1]"`)}, "2001:db8::1", "http"},
		{"forwarded unquoted IPv6 in brackets", proxy, false,
			[]header{fwd("for=[2001:db8::1]")}, "2001:db8::1", "http"},
		{"forwarded unquoted bare IPv6", proxy, false, []header{fwd("for=2001:db8::1")}, "2001:db8::1", "http"},
		{"forwarded escaped quoted string", proxy, false,
			[]header{fwd(`for="198.51.100.\1"`)}, "198.51.100.1", "http"},
		{"forwarded several trusted hops", proxy, false,
			[]header{fwd(`for=198.51.100.1;proto=https, for="[2001:db8:ffff::2]", for=10.0.0.2;proto=http`)},
			"198.51.100.1", "https"},
		{"forwarded over several lines", proxy, false,
			[]header{fwd("for=6.6.6.6"), fwd("for=198.51.100.1;proto=https"), fwd("for=10.0.0.2")}, "198.51.100.1", "https"},
		{"forwarded every element trusted takes the leftmost", proxy, false,
			[]header{fwd("for=10.0.0.5;proto=https, for=10.0.0.2")}, "10.0.0.5", "https"},
		{"forwarded obfuscated", proxy, false, []header{fwd("for=_hidden")}, "10.0.0.1", "http"},
		{"forwarded obfuscated with port", proxy, false, []header{fwd(`for="_hidden:_port"`)}, "10.0.0.1", "http"},
		{"forwarded unknown", proxy, false, []header{fwd("for=unknown;proto=https")}, "10.0.0.1", "http"},
		{"forwarded unknown behind trusted hops", proxy, false,
			[]header{fwd("for=unknown, for=10.0.0.2")}, "10.0.0.1", "http"},
		{"forwarded obfuscated left of the client", proxy, false,
			[]header{fwd("for=_hidden, for=198.51.100.1")}, "198.51.100.1", "http"},
		{"forwarded without for", proxy, false, []header{fwd("proto=https;by=10.0.0.1")}, "10.0.0.1", "http"},
		{"forwarded for given twice", proxy, false,
			[]header{fwd("for=198.51.100.1;for=198.51.100.2")}, "10.0.0.1", "http"},
		{"forwarded unterminated quote", proxy, false, []header{fwd(`for="198.51.100.1`)}, "10.0.0.1", "http"},
		{"forwarded unterminated quote swallows the line", proxy, false,
			[]header{fwd(`for="6.6.6.6, for=198.51.100.1`)}, "10.0.0.1", "http"},
		{"forwarded unterminated quote on an earlier line", proxy, false,
			[]header{fwd(`for="6.6.6.6`), fwd("for=198.51.100.1")}, "198.51.100.1", "http"},
		{"forwarded comma inside quotes", proxy, false,
			[]header{fwd(`for="198.51.100.1, 10.0.0.2"`)}, "10.0.0.1", "http"},
		{"forwarded pair without value", proxy, false, []header{fwd("for=")}, "10.0.0.1", "http"},
		{"forwarded pair without name", proxy, false, []header{fwd("=198.51.100.1")}, "10.0.0.1", "http"},
		{"forwarded not pairs", proxy, false, []header{fwd("198.51.100.1")}, "10.0.0.1", "http"},
		{"forwarded junk after the value", proxy, false, []header{fwd(`for="198.51.100.1"x`)}, "10.0.0.1", "http"},
		{"forwarded bad element left of the client", proxy, false,
			[]header{fwd(`for;x, for=198.51.100.1`)}, "198.51.100.1", "http"},
		{"forwarded empty", proxy, false, []header{fwd(" ")}, "10.0.0.1", "http"},

		// Both headers: believed only when they agree.
		{"both agree", proxy, false,
			[]header{fwd("for=198.51.100.1;proto=https"), xff("198.51.100.1")}, "198.51.100.1", "https"},
		{"both agree through trusted hops", proxy, false,
			[]header{fwd(`for="[2001:db8::1]:4711", for=10.0.0.2`), xff("2001:db8::1, 10.0.0.2")}, "2001:db8::1", "http"},
		{"client's Forwarded passed through by an X-Forwarded-For proxy", proxy, false,
			[]header{fwd("for=6.6.6.6"), xff("198.51.100.1")}, "10.0.0.1", "http"},
		{"client's X-Forwarded-For passed through by a Forwarded proxy", proxy, false,
			[]header{fwd("for=198.51.100.1"), xff("6.6.6.6")}, "10.0.0.1", "http"},
		{"both, Forwarded garbage", proxy, false,
			[]header{fwd("for=nonsense"), xff("198.51.100.1")}, "10.0.0.1", "http"},
		{"both, X-Forwarded-For garbage", proxy, false,
			[]header{fwd("for=198.51.100.1"), xff("nonsense")}, "10.0.0.1", "http"},

		// X-Forwarded-Proto.
		{"xfp https", proxy, false, []header{xff("198.51.100.1"), xfp("https")}, "198.51.100.1", "https"},
		{"xfp in capitals", proxy, false, []header{xfp("HTTPS")}, "10.0.0.1", "https"},
		{"xfp http over TLS", proxy, true, []header{xfp("http")}, "10.0.0.1", "http"},
		{"xfp repeated", proxy, false, []header{xfp("https, https"), xfp("https")}, "10.0.0.1", "https"},
		{"xfp disagreeing", proxy, true, []header{xfp("http, https")}, "10.0.0.1", "https"},
		{"xfp not a scheme", proxy, false, []header{xfp("ftp")}, "10.0.0.1", "http"},
		{"xfp garbage", proxy, false, []header{xfp("https; rm -rf")}, "10.0.0.1", "http"},
		{"xfp with garbage addresses", proxy, false, []header{xff("nonsense"), xfp("https")}, "10.0.0.1", "https"},
		{"forwarded proto wins over xfp", proxy, false,
			[]header{fwd("for=198.51.100.1;proto=http"), xfp("https")}, "198.51.100.1", "http"},
		{"xfp when the Forwarded element has no proto", proxy, false,
			[]header{fwd("for=198.51.100.1"), xfp("https")}, "198.51.100.1", "https"},
		{"forwarded proto not a scheme", proxy, false,
			[]header{fwd("for=198.51.100.1;proto=gopher"), xfp("https")}, "198.51.100.1", "https"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest(http.MethodGet, "/graphql", nil)
			r.RemoteAddr = tt.peer
			if tt.tls {
				r.TLS = &tls.ConnectionState{}
			}
			for _, h := range tt.headers {
				r.Header.Add(h[0], h[1])
			}
			addr, scheme := s.clientOf(r)
			if addr != tt.wantAddr || scheme != tt.wantScheme {
				t.Errorf("clientOf(peer %s, %q) = %s, %s, want %s, %s", tt.peer, tt.headers, addr, scheme, tt.wantAddr, tt.wantScheme)
			}
		})
	}
}

// TestClientOfTrustsNobodyByDefault: without TrustedProxies every header is
// ignored, whatever the peer.
func TestClientOfTrustsNobodyByDefault(t *testing.T) {
	t.Parallel()
	s := &Server{cfg: Config{}.withDefaults()}
	for _, peer := range []string{"127.0.0.1:1234", "10.0.0.1:80", "[::1]:443"} {
		r := httptest.NewRequest(http.MethodGet, "/graphql", nil)
		r.RemoteAddr = peer
		r.Header.Set("X-Forwarded-For", "198.51.100.1")
		r.Header.Set("Forwarded", "for=198.51.100.1;proto=https")
		r.Header.Set("X-Forwarded-Proto", "https")
		want := clientAddress(peer)
		if addr, scheme := s.clientOf(r); addr != want || scheme != "http" {
			t.Errorf("clientOf(peer %s) = %s, %s, want %s, http", peer, addr, scheme, want)
		}
	}
}

func TestNormalisePrefixes(t *testing.T) {
	t.Parallel()
	got := normalisePrefixes([]netip.Prefix{
		netip.MustParsePrefix("10.1.2.3/8"),
		netip.MustParsePrefix("::ffff:192.0.2.0/120"),
		netip.MustParsePrefix("::ffff:0.0.0.0/64"), // wider than the mapped range: dropped
		{},
		netip.MustParsePrefix("2001:db8::1/128"),
	})
	want := []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("192.0.2.0/24"),
		netip.MustParsePrefix("2001:db8::1/128"),
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("normalisePrefixes = %v, want %v", got, want)
	}
}
