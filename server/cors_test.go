package server_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/obsqra/obsqra/server"
)

// defaultAllowHeaders is the Access-Control-Allow-Headers of a preflight
// when no extra header is configured.
const defaultAllowHeaders = "Authorization, Content-Type, X-Request-ID, " +
	"Apollo-Require-Preflight, X-Apollo-Operation-Name, " +
	"Apollographql-Client-Name, Apollographql-Client-Version, " +
	"Traceparent, Tracestate, Baggage, Sentry-Trace"

func TestCORSAllowedHeaders(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		extra []string
		want  string
	}{
		{"none", nil, defaultAllowHeaders},
		{"one", []string{"X-Tenant-ID"}, defaultAllowHeaders + ", X-Tenant-ID"},
		{"two in order", []string{"X-Tenant-ID", "x-feature-flags"}, defaultAllowHeaders + ", X-Tenant-ID, x-feature-flags"},
		{"already allowed, in another case", []string{"traceparent", "AUTHORIZATION"}, defaultAllowHeaders},
		{"repeated", []string{"X-Tenant-ID", "x-tenant-id"}, defaultAllowHeaders + ", X-Tenant-ID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, func(c *server.Config) { c.CORSAllowedHeaders = tt.extra })
			req := httptest.NewRequest(http.MethodOptions, "/graphql", nil)
			req.Header.Set("Origin", "https://app.example.com")
			req.Header.Set("Access-Control-Request-Method", "POST")
			req.Header.Set("Access-Control-Request-Headers", "content-type,x-tenant-id")
			rec := b.serve(req)
			if rec.Code != http.StatusNoContent {
				t.Fatalf("preflight status = %d, want 204", rec.Code)
			}
			if got := rec.Header().Get("Access-Control-Allow-Headers"); got != tt.want {
				t.Errorf("CORSAllowedHeaders %q: Access-Control-Allow-Headers = %q, want %q", tt.extra, got, tt.want)
			}
		})
	}
}
