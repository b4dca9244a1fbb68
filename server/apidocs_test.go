package server_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/obsqra/obsqra/server"
)

// TestDocsMounted: the reference page and its assets are served with the
// REST API, introspection or not, and only with it; what else is under
// /api/v1 is the API's.
func TestDocsMounted(t *testing.T) {
	t.Parallel()
	for _, introspection := range []bool{false, true} {
		b := setup(t, func(c *server.Config) { c.REST = fixtureREST; c.Introspection = introspection })
		for _, path := range []string{"/api/v1/docs", "/api/v1/docs/"} {
			rec := b.serve(httpGET(path))
			if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "<title>Obsqra REST API reference</title>") ||
				!strings.Contains(rec.Header().Get("Content-Security-Policy"), "worker-src blob:") {
				t.Errorf("introspection %v: GET %s = %d %v, want the reference page", introspection, path, rec.Code, rec.Header())
			}
		}
		if rec := b.serve(httpGET("/api/v1/docs/assets/docs.js")); rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "text/javascript; charset=utf-8" {
			t.Errorf("introspection %v: GET docs.js = %d %q", introspection, rec.Code, rec.Header().Get("Content-Type"))
		}
		for _, c := range []struct{ method, path, body string }{
			{"GET", "/api/v1/openapi.json", `"openapi": "3.1.0"`},
			{"GET", "/api/v1/docs/assets/missing.js", `{"detail":"Not Found"}`},
			{"GET", "/api/v1/docs/assets/a/docs.js", `{"detail":"Not Found"}`},
			{"GET", "/api/v1/docs/other", `{"detail":"Not Found"}`},
			{"POST", "/api/v1/docs", `{"detail":"Method Not Allowed"}`},
			{"DELETE", "/api/v1/docs/assets/docs.js", `{"detail":"Method Not Allowed"}`},
		} {
			req := httpGET(c.path)
			req.Method = c.method
			if rec := b.serve(req); !strings.Contains(rec.Body.String(), c.body) || rec.Header().Get("Content-Type") != "application/json" {
				t.Errorf("introspection %v: %s %s = %d %q %s, want JSON with %s", introspection, c.method, c.path,
					rec.Code, rec.Header().Get("Content-Type"), rec.Body, c.body)
			}
		}
	}

	b := setup(t)
	for _, path := range []string{"/api/v1/docs", "/api/v1/docs/assets/docs.js", "/api/v1/openapi.json"} {
		if rec := b.serve(httpGET(path)); rec.Code != http.StatusNotFound {
			t.Errorf("without REST: GET %s = %d, want 404", path, rec.Code)
		}
	}
}
