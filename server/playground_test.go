package server_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/obsqra/obsqra/server"
)

// assetRef matches the src and href attributes of the playground page.
var assetRef = regexp.MustCompile(`(?:src|href)="([^"]*)"`)

func TestPlaygroundPage(t *testing.T) {
	t.Parallel()
	for _, path := range []string{"/", "/playground"} {
		t.Run(path, func(t *testing.T) {
			t.Parallel()
			b := setup(t)

			rec := b.serve(httpGET(path))

			if rec.Code != http.StatusOK {
				t.Fatalf("GET %s = %d", path, rec.Code)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "text/html; charset=utf-8" {
				t.Errorf("Content-Type = %q, want text/html; charset=utf-8", ct)
			}
			csp := rec.Header().Get("Content-Security-Policy")
			if !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "connect-src 'self'") {
				t.Errorf("Content-Security-Policy = %q, want scripts and requests kept to this server", csp)
			}
			page := rec.Body.String()
			if strings.Contains(page, "http://") || strings.Contains(page, "https://") || strings.Contains(page, "//cdn") {
				t.Errorf("page refers to another host:\n%s", page)
			}

			refs := assetRef.FindAllStringSubmatch(page, -1)
			wantTypes := map[string]string{
				"graphiql.min.css":            "text/css; charset=utf-8",
				"react.production.min.js":     "text/javascript; charset=utf-8",
				"react-dom.production.min.js": "text/javascript; charset=utf-8",
				"graphiql.min.js":             "text/javascript; charset=utf-8",
				"playground.js":               "text/javascript; charset=utf-8",
			}
			seen := map[string]bool{}
			for _, m := range refs {
				u, err := url.Parse(m[1])
				if err != nil || u.Host != "" || u.Scheme != "" || !strings.HasPrefix(u.Path, "/playground/assets/") {
					t.Errorf("page refers to %q, want a local /playground/assets/ URL", m[1])
					continue
				}
				name := strings.TrimPrefix(u.Path, "/playground/assets/")
				seen[name] = true
				rec := b.serve(httpGET(m[1]))
				if rec.Code != http.StatusOK || rec.Body.Len() == 0 {
					t.Errorf("GET %s = %d with %d bytes, want 200 with content", m[1], rec.Code, rec.Body.Len())
				}
				if got := rec.Header().Get("Content-Type"); got != wantTypes[name] {
					t.Errorf("GET %s Content-Type = %q, want %q", m[1], got, wantTypes[name])
				}
				if cc := rec.Header().Get("Cache-Control"); !strings.Contains(cc, "max-age=31536000") {
					t.Errorf("GET %s Cache-Control = %q, want a long max-age", m[1], cc)
				}
			}
			for name := range wantTypes {
				if !seen[name] {
					t.Errorf("page does not load %s", name)
				}
			}
			if !strings.Contains(page, `data-endpoint="/graphql"`) {
				t.Error("page does not point GraphiQL at /graphql")
			}
		})
	}
}

func TestPlaygroundAssets(t *testing.T) {
	t.Parallel()
	b := setup(t)

	for name, wantType := range map[string]string{
		"LICENSE.graphiql.txt":  "text/plain; charset=utf-8",
		"LICENSE.react.txt":     "text/plain; charset=utf-8",
		"LICENSE.react-dom.txt": "text/plain; charset=utf-8",
		"VERSIONS":              "text/plain; charset=utf-8",
	} {
		rec := b.serve(httpGET("/playground/assets/" + name))
		if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != wantType {
			t.Errorf("GET %s = %d %q, want 200 %q", name, rec.Code, rec.Header().Get("Content-Type"), wantType)
		}
	}
	for _, name := range []string{"missing.js", "..%2Fplayground.go", "graphiql.min.js.map"} {
		if rec := b.serve(httpGET("/playground/assets/" + name)); rec.Code != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", name, rec.Code)
		}
	}
}

func TestPlaygroundAssetCaching(t *testing.T) {
	t.Parallel()
	b := setup(t)
	plain := b.serve(httpGET("/playground/assets/react.production.min.js"))
	etag := plain.Header().Get("ETag")
	if plain.Code != http.StatusOK || etag == "" {
		t.Fatalf("GET react.production.min.js = %d, ETag %q", plain.Code, etag)
	}

	req := httpGET("/playground/assets/react.production.min.js")
	req.Header.Set("If-None-Match", etag)
	if rec := b.serve(req); rec.Code != http.StatusNotModified || rec.Body.Len() != 0 {
		t.Errorf("GET with If-None-Match = %d with %d bytes, want 304 and no body", rec.Code, rec.Body.Len())
	}

	req = httpGET("/playground/assets/react.production.min.js")
	req.Header.Set("Accept-Encoding", "br, gzip")
	rec := b.serve(req)
	if rec.Header().Get("Content-Encoding") != "gzip" || rec.Header().Get("Content-Type") != "text/javascript; charset=utf-8" {
		t.Fatalf("gzip GET = %v, want gzip-encoded JavaScript", rec.Header())
	}
	zr, err := gzip.NewReader(rec.Body)
	if err != nil {
		t.Fatal(err)
	}
	unzipped, err := io.ReadAll(zr)
	if err != nil || !bytes.Equal(unzipped, plain.Body.Bytes()) {
		t.Errorf("gzipped asset does not decompress to the asset (%v)", err)
	}
}

func TestPlaygroundOffWithoutIntrospection(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *server.Config) { c.Introspection = false })
	for _, path := range []string{"/", "/playground", "/playground/assets/react.production.min.js"} {
		if rec := b.serve(httpGET(path)); rec.Code != http.StatusNotFound {
			t.Errorf("GET %s without introspection = %d, want 404", path, rec.Code)
		}
	}
}
