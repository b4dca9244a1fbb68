package rest

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// docsTestMux routes the reference page's two endpoints as the API does.
func docsTestMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/docs", serveDocs)
	mux.HandleFunc("GET /api/v1/docs/assets/{file}", serveDocsAsset)
	return mux
}

func docsGet(t *testing.T, h http.Handler, target string, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, target, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// docsAssetRef matches the src and href attributes of the page.
var docsAssetRef = regexp.MustCompile(`(?:src|href)="([^"]*)"`)

func TestDocsPage(t *testing.T) {
	t.Parallel()
	mux := docsTestMux()
	rec := docsGet(t, mux, "/api/v1/docs")

	if rec.Code != http.StatusOK {
		t.Fatalf("GET /api/v1/docs = %d", rec.Code)
	}
	h := rec.Header()
	for name, want := range map[string]string{
		"Content-Type":            "text/html; charset=utf-8",
		"Cache-Control":           "no-cache",
		"Content-Security-Policy": docsCSP,
		"X-Content-Type-Options":  "nosniff",
	} {
		if got := h.Get(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	for _, want := range []string{"default-src 'none'", "script-src 'self';", "connect-src 'self';", "frame-ancestors 'none'"} {
		if !strings.Contains(docsCSP, want) {
			t.Errorf("Content-Security-Policy %q lacks %q", docsCSP, want)
		}
	}
	page := rec.Body.String()
	if !strings.Contains(page, "<title>Obsqra REST API reference</title>") {
		t.Error("page lacks its title")
	}
	if !strings.Contains(page, `data-spec="/api/v1/openapi.json"`) {
		t.Error("page does not point Redoc at /api/v1/openapi.json")
	}
	if strings.Contains(page, "http://") || strings.Contains(page, "https://") || strings.Contains(page, "//cdn") {
		t.Errorf("page refers to another host:\n%s", page)
	}
	if strings.Contains(strings.ReplaceAll(page, `<script src=`, ``), "<script") {
		t.Errorf("page has an inline script, which its policy forbids:\n%s", page)
	}

	etag := h.Get("ETag")
	if rec := docsGet(t, mux, "/api/v1/docs", "If-None-Match", etag); etag == "" || rec.Code != http.StatusNotModified || rec.Body.Len() != 0 {
		t.Errorf("GET page with If-None-Match %s = %d with %d bytes, want 304 and no body", etag, rec.Code, rec.Body.Len())
	}
}

func TestDocsPageAssets(t *testing.T) {
	t.Parallel()
	mux := docsTestMux()
	page := docsGet(t, mux, "/api/v1/docs").Body.String()

	wantTypes := map[string]string{
		"redoc.standalone.js": "text/javascript; charset=utf-8",
		"docs.js":             "text/javascript; charset=utf-8",
	}
	seen := map[string]bool{}
	for _, m := range docsAssetRef.FindAllStringSubmatch(page, -1) {
		u, err := url.Parse(m[1])
		if err != nil || u.Host != "" || u.Scheme != "" || !strings.HasPrefix(u.Path, docsAssetPrefix) || u.Query().Get("v") == "" {
			t.Errorf("page refers to %q, want a versioned %s URL", m[1], docsAssetPrefix)
			continue
		}
		name := strings.TrimPrefix(u.Path, docsAssetPrefix)
		seen[name] = true
		t.Run(name, func(t *testing.T) {
			plain := docsGet(t, mux, m[1])
			h := plain.Header()
			if plain.Code != http.StatusOK || plain.Body.Len() == 0 {
				t.Fatalf("GET %s = %d with %d bytes, want 200 with content", m[1], plain.Code, plain.Body.Len())
			}
			if got := h.Get("Content-Type"); got != wantTypes[name] {
				t.Errorf("Content-Type = %q, want %q", got, wantTypes[name])
			}
			if got := h.Get("Cache-Control"); got != "public, max-age=31536000, immutable" {
				t.Errorf("Cache-Control = %q, want a year, immutable", got)
			}
			if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Content-Encoding") != "" {
				t.Errorf("headers %v, want nosniff and no encoding", h)
			}
			etag := h.Get("ETag")
			if etag != `"`+u.Query().Get("v")+`"` {
				t.Errorf("ETag = %s, want the URL's version %q", etag, u.Query().Get("v"))
			}

			if rec := docsGet(t, mux, m[1], "If-None-Match", etag); rec.Code != http.StatusNotModified || rec.Body.Len() != 0 {
				t.Errorf("GET with If-None-Match = %d with %d bytes, want 304 and no body", rec.Code, rec.Body.Len())
			}
			if rec := docsGet(t, mux, m[1], "If-None-Match", `"0000", W/`+etag); rec.Code != http.StatusNotModified {
				t.Errorf("GET with a list naming the weak ETag = %d, want 304", rec.Code)
			}
			if rec := docsGet(t, mux, m[1], "If-None-Match", `"0000"`); rec.Code != http.StatusOK {
				t.Errorf("GET with another ETag = %d, want 200", rec.Code)
			}
			if rec := docsGet(t, mux, m[1], "Accept-Encoding", "gzip;q=0"); rec.Header().Get("Content-Encoding") != "" {
				t.Error("gzip;q=0 answered gzipped")
			}

			zipped := docsGet(t, mux, m[1], "Accept-Encoding", "br, gzip")
			if plain.Body.Len() <= 1024 {
				// Too small to be worth compressing.
				if zipped.Header().Get("Content-Encoding") != "" {
					t.Errorf("a %d-byte asset answered compressed", plain.Body.Len())
				}
				return
			}
			if zipped.Header().Get("Content-Encoding") != "gzip" || zipped.Header().Get("Content-Type") != wantTypes[name] {
				t.Fatalf("gzip GET headers %v, want gzip-encoded %s", zipped.Header(), wantTypes[name])
			}
			if zipped.Body.Len() >= plain.Body.Len() {
				t.Errorf("gzipped %d bytes, plain %d", zipped.Body.Len(), plain.Body.Len())
			}
			zr, err := gzip.NewReader(zipped.Body)
			if err != nil {
				t.Fatal(err)
			}
			unzipped, err := io.ReadAll(zr)
			if err != nil || !bytes.Equal(unzipped, plain.Body.Bytes()) {
				t.Errorf("gzipped asset does not decompress to the asset (%v)", err)
			}
		})
	}
	for name := range wantTypes {
		if !seen[name] {
			t.Errorf("page does not load %s", name)
		}
	}
}

func TestDocsOtherAssets(t *testing.T) {
	t.Parallel()
	mux := docsTestMux()
	for _, name := range []string{"LICENSE.redoc.txt", "LICENSE.redoc.standalone.txt", "VERSIONS"} {
		rec := docsGet(t, mux, docsAssetPrefix+name)
		if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "text/plain; charset=utf-8" || rec.Body.Len() == 0 {
			t.Errorf("GET %s = %d %q with %d bytes, want 200 text/plain", name, rec.Code, rec.Header().Get("Content-Type"), rec.Body.Len())
		}
	}
	if v := docsGet(t, mux, docsAssetPrefix+"VERSIONS").Body.String(); !strings.Contains(v, "redoc@2.") {
		t.Errorf("VERSIONS = %q, want Redoc 2's version", v)
	}
}

func TestDocsUnknownAsset(t *testing.T) {
	t.Parallel()
	mux := docsTestMux()
	for _, name := range []string{"missing.js", "..%2Fdocs.go", "redoc.standalone.js.map", "index.html", "docs"} {
		rec := docsGet(t, mux, docsAssetPrefix+name)
		if rec.Code != http.StatusNotFound || rec.Header().Get("Content-Type") != "application/json" || rec.Body.String() != `{"detail":"Not Found"}` {
			t.Errorf("GET %s = %d %q %s, want 404 application/json {\"detail\":\"Not Found\"}",
				name, rec.Code, rec.Header().Get("Content-Type"), rec.Body)
		}
	}
}
