package server_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/obsqra/obsqra/server"
)

func TestFavicon(t *testing.T) {
	t.Parallel()
	// Served with or without the playground.
	for _, introspection := range []bool{true, false} {
		b := setup(t, func(c *server.Config) { c.Introspection = introspection })
		rec := b.serve(httptest.NewRequest(http.MethodGet, "/favicon.ico", nil))
		h := rec.Header()
		if rec.Code != http.StatusOK || h.Get("Content-Type") != "image/x-icon" || h.Get("Cache-Control") != "public, max-age=86400" {
			t.Errorf("introspection %v: GET /favicon.ico = %d %q %q, want 200 image/x-icon cacheable", introspection, rec.Code, h.Get("Content-Type"), h.Get("Cache-Control"))
		}
		// An ICO file: reserved 0, type 1 (icon), one image.
		if body := rec.Body.Bytes(); !bytes.HasPrefix(body, []byte{0, 0, 1, 0, 1, 0}) || len(body) > 1024 {
			t.Errorf("introspection %v: favicon is %d bytes starting % x, want a small ICO", introspection, len(body), body[:min(6, len(body))])
		}
	}
	b := setup(t)
	if rec := b.serve(httptest.NewRequest(http.MethodPost, "/favicon.ico", nil)); rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /favicon.ico = %d, want 405", rec.Code)
	}
}
