package server_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"regexp"
	"strings"
	"testing"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/graph"
	"github.com/obsqra/obsqra/server"
)

// bodyOfSize returns a valid GraphQL request body of exactly n bytes.
func bodyOfSize(t *testing.T, n int) []byte {
	t.Helper()
	const head, tail = `{"query":"{ __typename }","pad":"`, `"}`
	if n < len(head)+len(tail) {
		t.Fatalf("bodyOfSize(%d) is too small", n)
	}
	return []byte(head + strings.Repeat("x", n-len(head)-len(tail)) + tail)
}

func TestBodyLimit(t *testing.T) {
	t.Parallel()
	const tooLarge = `{"errors":[{"message":"request body too large (limit 1048576 bytes)","extensions":{"code":"PAYLOAD_TOO_LARGE"}}]}` + "\n"
	tests := []struct {
		name       string
		size       int
		chunked    bool // no Content-Length: only the reader can tell
		wantStatus int
	}{
		{name: "normal body", size: 200, wantStatus: http.StatusOK},
		{name: "exactly the limit", size: server.DefaultMaxBodyBytes, wantStatus: http.StatusOK},
		{name: "one byte over", size: server.DefaultMaxBodyBytes + 1, wantStatus: http.StatusRequestEntityTooLarge},
		{name: "chunked, exactly the limit", size: server.DefaultMaxBodyBytes, chunked: true, wantStatus: http.StatusOK},
		{name: "chunked, one byte over", size: server.DefaultMaxBodyBytes + 1, chunked: true, wantStatus: http.StatusRequestEntityTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			var body io.Reader = bytes.NewReader(bodyOfSize(t, tt.size))
			if tt.chunked {
				body = struct{ io.Reader }{body} // hides the length from NewRequest
			}
			req := httptest.NewRequest(http.MethodPost, "/graphql", body)
			req.Header.Set("Content-Type", "application/json")
			if tt.chunked && req.ContentLength != -1 {
				t.Fatalf("ContentLength = %d, want -1 (unknown)", req.ContentLength)
			}

			rec := b.serve(req)

			if rec.Code != tt.wantStatus {
				t.Fatalf("POST %d bytes = %d %.200s, want %d", tt.size, rec.Code, rec.Body, tt.wantStatus)
			}
			if tt.wantStatus == http.StatusRequestEntityTooLarge {
				if rec.Body.String() != tooLarge {
					t.Errorf("body = %s, want %s", rec.Body, tooLarge)
				}
				if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
					t.Errorf("Content-Type = %q, want application/json", ct)
				}
				return
			}
			if res := decodeResult(t, rec); len(res.Errors) != 0 || string(res.Data) != `{"__typename":"Query"}` {
				t.Errorf("response = %s, want the query's data", rec.Body)
			}
		})
	}
}

func TestBodyLimitConfigured(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *server.Config) { c.MaxBodyBytes = 100 })
	req := httptest.NewRequest(http.MethodPost, "/graphql", bytes.NewReader(bodyOfSize(t, 101)))
	req.Header.Set("Content-Type", "application/json")
	rec := b.serve(req)
	if rec.Code != http.StatusRequestEntityTooLarge || !strings.Contains(rec.Body.String(), "(limit 100 bytes)") {
		t.Errorf("POST 101 bytes with a 100-byte limit = %d %s, want 413 naming the limit", rec.Code, rec.Body)
	}
}

func TestAuthentication(t *testing.T) {
	t.Parallel()
	const meQuery = `{ me { email } }`
	tests := []struct {
		name          string
		authorization string // "" sends no header
		wantMe        string // JSON of data.me when there is no error
		wantMessage   string // the UNAUTHENTICATED message, when one is expected
	}{
		{name: "valid token", authorization: "Bearer " + goodToken, wantMe: `{"email":"ada@example.com"}`},
		{name: "scheme is case-insensitive", authorization: "bearer " + goodToken, wantMe: `{"email":"ada@example.com"}`},
		{name: "no header is anonymous", wantMe: `null`},
		{name: "invalid token", authorization: "Bearer stale-token", wantMessage: "access token expired"},
		{name: "not bearer", authorization: "Basic YWRhOnB3", wantMessage: "the Authorization header must be Bearer followed by an access token"},
		{name: "bearer without token", authorization: "Bearer ", wantMessage: "the Authorization header must be Bearer followed by an access token"},
		{name: "bare token", authorization: goodToken, wantMessage: "the Authorization header must be Bearer followed by an access token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			var headers []string
			if tt.authorization != "" {
				headers = []string{"Authorization", tt.authorization}
			}

			rec, res := b.graphQL(t, meQuery, nil, headers...)

			if tt.wantMessage == "" {
				noErrors(t, rec, res)
				if want := `{"me":` + tt.wantMe + `}`; string(res.Data) != want {
					t.Errorf("data = %s, want %s", res.Data, want)
				}
				return
			}
			e := onlyError(t, res)
			if e.Message != tt.wantMessage || e.Extensions["code"] != "UNAUTHENTICATED" {
				t.Errorf("error = %q %v, want %q UNAUTHENTICATED", e.Message, e.Extensions, tt.wantMessage)
			}
			if fmt.Sprint(e.Path) != "[me]" {
				t.Errorf("error path = %v, want [me]", e.Path)
			}
		})
	}
}

func TestAuthenticationStaleTokenStillLogsIn(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var sawAuthErr error
	b.resolver.login = func(ctx context.Context, _ graph.LoginInput) (*obsqra.AuthPayload, error) {
		_, sawAuthErr = obsqra.Viewer(ctx)
		return &obsqra.AuthPayload{AccessToken: goodToken, RefreshToken: "r", TokenType: "Bearer", ExpiresIn: 900, User: ada}, nil
	}

	rec, res := b.graphQL(t, `mutation { login(input: {email: "ada@example.com", password: "pw"}) { accessToken } }`, nil,
		"Authorization", "Bearer stale-token")

	noErrors(t, rec, res)
	if obsqra.ErrorCode(sawAuthErr) != obsqra.EUNAUTHENTICATED {
		t.Errorf("login saw auth error %v, want the refused token's UNAUTHENTICATED error", sawAuthErr)
	}
}

func TestAuthenticationOnlyForGraphQL(t *testing.T) {
	t.Parallel()
	b := setup(t)
	req := httptest.NewRequest(http.MethodGet, "/health", nil)
	req.Header.Set("Authorization", "Bearer "+goodToken)
	b.serve(req)
	if n := b.auth.calls.Load(); n != 0 {
		t.Errorf("GET /health authenticated %d times, want 0", n)
	}
}

var generatedRequestID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

func TestRequestID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		incoming string
		wantSame bool
	}{
		{name: "sane id is echoed", incoming: "req-42_ABC", wantSame: true},
		{name: "64 characters is echoed", incoming: strings.Repeat("a", 64), wantSame: true},
		{name: "none is generated", incoming: ""},
		{name: "65 characters is replaced", incoming: strings.Repeat("a", 65)},
		{name: "spaces are replaced", incoming: "req 42"},
		{name: "log injection is replaced", incoming: "a\"}\n{\"admin\":true"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			var seen *obsqra.Client
			b.resolver.me = func(ctx context.Context) (*obsqra.User, error) {
				seen = obsqra.ClientFromContext(ctx)
				return nil, nil
			}
			var headers []string
			if tt.incoming != "" {
				headers = []string{"X-Request-ID", tt.incoming}
			}

			rec, res := b.graphQL(t, `{ me { id } }`, nil, headers...)

			noErrors(t, rec, res)
			got := rec.Header().Get("X-Request-ID")
			if tt.wantSame && got != tt.incoming {
				t.Errorf("X-Request-ID = %q, want the incoming %q", got, tt.incoming)
			}
			if !tt.wantSame && (got == tt.incoming || !generatedRequestID.MatchString(got)) {
				t.Errorf("X-Request-ID = %q, want a new sane id instead of %q", got, tt.incoming)
			}
			if seen == nil || seen.RequestID != got || seen.Address != "192.0.2.1" {
				t.Errorf("resolver saw client %+v, want request id %q and address 192.0.2.1", seen, got)
			}
		})
	}
}

func TestRequestIDIsUnique(t *testing.T) {
	t.Parallel()
	b := setup(t)
	first := b.serve(httptest.NewRequest(http.MethodGet, "/health", nil)).Header().Get("X-Request-ID")
	second := b.serve(httptest.NewRequest(http.MethodGet, "/health", nil)).Header().Get("X-Request-ID")
	if first == "" || first == second {
		t.Errorf("request ids %q and %q, want two different ids", first, second)
	}
}

func TestClientAddressIPv6(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var seen *obsqra.Client
	b.resolver.me = func(ctx context.Context) (*obsqra.User, error) {
		seen = obsqra.ClientFromContext(ctx)
		return nil, nil
	}
	req := httptest.NewRequest(http.MethodGet, "/graphql?query=%7Bme%7Bid%7D%7D", nil)
	req.Header.Set("Apollo-Require-Preflight", "true")
	req.RemoteAddr = "[2001:db8::1]:443"
	if rec := b.serve(req); rec.Code != http.StatusOK {
		t.Fatalf("GET /graphql = %d %s", rec.Code, rec.Body)
	}
	if seen == nil || seen.Address != "2001:db8::1" {
		t.Errorf("client = %+v, want address 2001:db8::1", seen)
	}
}

// TestTrustedProxies runs requests through the real handler: behind a
// trusted proxy the resolver sees the client the forwarding headers name
// and the scheme of X-Forwarded-Proto; any other peer's headers change
// nothing.
func TestTrustedProxies(t *testing.T) {
	t.Parallel()
	trusted := func(cfg *server.Config) {
		cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8:ffff::1/128")}
	}
	tests := []struct {
		name       string
		opts       []func(*server.Config)
		peer       string
		headers    []string
		wantAddr   string
		wantScheme string
	}{
		{"x-forwarded-for through two proxies", []func(*server.Config){trusted}, "10.0.0.1:4711",
			[]string{"X-Forwarded-For", "6.6.6.6, 198.51.100.1, 10.0.0.2", "X-Forwarded-Proto", "https"}, "198.51.100.1", "https"},
		{"forwarded with quoted IPv6", []func(*server.Config){trusted}, "[2001:db8:ffff::1]:443",
			[]string{"Forwarded", `for="[2001:db8::1]:4711";proto=https`}, "2001:db8::1", "https"},
		{"garbage falls back to the proxy", []func(*server.Config){trusted}, "10.0.0.1:4711",
			[]string{"X-Forwarded-For", "198.51.100.1, not-an-address"}, "10.0.0.1", "http"},
		{"untrusted peer spoofing", []func(*server.Config){trusted}, "203.0.113.9:1234",
			[]string{"X-Forwarded-For", "198.51.100.1", "Forwarded", "for=198.51.100.1", "X-Forwarded-Proto", "https"}, "203.0.113.9", "http"},
		{"no trusted proxies by default", nil, "10.0.0.1:4711",
			[]string{"X-Forwarded-For", "198.51.100.1", "X-Forwarded-Proto", "https"}, "10.0.0.1", "http"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, tt.opts...)
			var seen *obsqra.Client
			b.resolver.me = func(ctx context.Context) (*obsqra.User, error) {
				seen = obsqra.ClientFromContext(ctx)
				return nil, nil
			}
			req := httptest.NewRequest(http.MethodGet, "/graphql?query=%7Bme%7Bid%7D%7D", nil)
			req.Header.Set("Apollo-Require-Preflight", "true")
			req.RemoteAddr = tt.peer
			for i := 0; i+1 < len(tt.headers); i += 2 {
				req.Header.Set(tt.headers[i], tt.headers[i+1])
			}
			if rec := b.serve(req); rec.Code != http.StatusOK {
				t.Fatalf("GET /graphql = %d %s", rec.Code, rec.Body)
			}
			if seen == nil || seen.Address != tt.wantAddr || seen.Scheme != tt.wantScheme {
				t.Errorf("client = %+v, want address %s and scheme %s", seen, tt.wantAddr, tt.wantScheme)
			}
		})
	}
}

func TestCORS(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		origins   []string
		method    string
		origin    string
		preflight bool
		wantACAO  string
	}{
		{name: "allowed origin", method: http.MethodPost, origin: "https://app.example.com", wantACAO: "https://app.example.com"},
		{name: "other origin", method: http.MethodPost, origin: "https://evil.example.net"},
		{name: "no origin", method: http.MethodPost},
		{name: "preflight from allowed origin", method: http.MethodOptions, origin: "https://app.example.com", preflight: true, wantACAO: "https://app.example.com"},
		{name: "preflight from other origin", method: http.MethodOptions, origin: "https://evil.example.net", preflight: true},
		{name: "wildcard", origins: []string{"*"}, method: http.MethodPost, origin: "https://anyone.example.org", wantACAO: "*"},
		{name: "configured with a trailing slash", origins: []string{" https://app.example.com/ "}, method: http.MethodPost, origin: "https://app.example.com", wantACAO: "https://app.example.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, func(c *server.Config) {
				if tt.origins != nil {
					c.CORSOrigins = tt.origins
				}
			})
			var req *http.Request
			if tt.preflight {
				req = httptest.NewRequest(http.MethodOptions, "/graphql", nil)
				req.Header.Set("Access-Control-Request-Method", "POST")
				req.Header.Set("Access-Control-Request-Headers", "apollographql-client-name,apollographql-client-version,authorization,baggage,content-type,sentry-trace,traceparent,tracestate")
			} else {
				req = httptest.NewRequest(tt.method, "/graphql", strings.NewReader(`{"query":"{ __typename }"}`))
				req.Header.Set("Content-Type", "application/json")
			}
			if tt.origin != "" {
				req.Header.Set("Origin", tt.origin)
			}

			rec := b.serve(req)
			h := rec.Header()

			if got := h.Get("Access-Control-Allow-Origin"); got != tt.wantACAO {
				t.Errorf("Access-Control-Allow-Origin = %q, want %q", got, tt.wantACAO)
			}
			if !strings.Contains(strings.Join(h.Values("Vary"), ","), "Origin") {
				t.Errorf("Vary = %q, want it to name Origin", h.Values("Vary"))
			}
			if h.Get("Access-Control-Allow-Credentials") != "" {
				t.Error("Access-Control-Allow-Credentials is set; the API uses bearer tokens, not cookies")
			}
			if !tt.preflight {
				if rec.Code != http.StatusOK {
					t.Errorf("status = %d, want 200", rec.Code)
				}
				return
			}
			if rec.Code != http.StatusNoContent {
				t.Errorf("preflight status = %d, want 204", rec.Code)
			}
			wantMethods, wantHeaders, wantMaxAge := "", "", ""
			if tt.wantACAO != "" {
				wantMethods, wantHeaders, wantMaxAge = "GET, POST, PUT, OPTIONS", defaultAllowHeaders, "7200"
			}
			if got := h.Get("Access-Control-Allow-Methods"); got != wantMethods {
				t.Errorf("Access-Control-Allow-Methods = %q, want %q", got, wantMethods)
			}
			if got := h.Get("Access-Control-Allow-Headers"); got != wantHeaders {
				t.Errorf("Access-Control-Allow-Headers = %q, want %q", got, wantHeaders)
			}
			if got := h.Get("Access-Control-Max-Age"); got != wantMaxAge {
				t.Errorf("Access-Control-Max-Age = %q, want %q", got, wantMaxAge)
			}
		})
	}
}

func TestPanicOutsideGraphQL(t *testing.T) {
	t.Parallel()
	b := setup(t)

	rec, res := b.graphQL(t, `{ me { id } }`, nil, "Authorization", "Bearer panic-token")

	id := rec.Header().Get("X-Request-ID")
	e := onlyError(t, res)
	if rec.Code != http.StatusInternalServerError || e.Message != "internal error" ||
		e.Extensions["code"] != "INTERNAL_SERVER_ERROR" || e.Extensions["requestId"] != id {
		t.Errorf("panicking authenticator = %d %s, want 500 internal error with request id %s", rec.Code, rec.Body, id)
	}
	if strings.Contains(rec.Body.String(), "s3cr3t") {
		t.Errorf("response leaks the panic: %s", rec.Body)
	}
	logged := b.logs.entries(t, "panic serving http request")
	if len(logged) != 1 || logged[0]["request_id"] != id || !strings.Contains(fmt.Sprint(logged[0]["stack"]), "fakeAuth") {
		t.Errorf("panic log = %v, want one entry with the request id and the stack", logged)
	}
	access := b.logs.entries(t, "http request")
	if len(access) != 1 || access[0]["status"] != float64(500) {
		t.Errorf("access log = %v, want the request logged as a 500", access)
	}

	// The server keeps serving.
	rec, res = b.graphQL(t, `{ me { id } }`, nil)
	noErrors(t, rec, res)
}

func TestAccessLog(t *testing.T) {
	t.Parallel()
	b := setup(t)
	req := httptest.NewRequest(http.MethodGet, "/health?probe=1", nil)
	req.Header.Set("X-Request-ID", "access-log-test")
	rec := b.serve(req)

	entries := b.logs.entries(t, "http request")
	if len(entries) != 1 {
		t.Fatalf("access log entries = %v, want 1", entries)
	}
	e := entries[0]
	want := map[string]any{
		"request_id": "access-log-test",
		"method":     "GET",
		"path":       "/health",
		"status":     float64(200),
		"bytes":      float64(rec.Body.Len()),
	}
	for k, v := range want {
		if e[k] != v {
			t.Errorf("access log %s = %v, want %v", k, e[k], v)
		}
	}
	if _, ok := e["duration_ms"].(float64); !ok {
		t.Errorf("access log duration_ms = %v, want a number", e["duration_ms"])
	}
}
