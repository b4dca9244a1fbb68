package server

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
	"testing/fstest"
)

// siteCase is an embedded site with what its page must hold and load.
type siteCase struct {
	name string
	site *site
	// page is where the test mounts the page.
	page string
	csp  string
	// pageHas are strings the page must hold.
	pageHas []string
	// loads are the assets the page must load, with their types.
	loads map[string]string
	// others are plain-text assets the page does not load.
	others []string
	// versions is what assets/VERSIONS must name.
	versions string
	// unknown are asset names that must not be served, and notFound the
	// type and body of the answer.
	unknown                []string
	notFoundType, notFound string
}

var siteCases = []siteCase{
	{
		name: "playground", site: playground, page: "/playground", csp: playgroundCSP,
		pageHas: []string{"<title>Obsqra GraphQL playground</title>", `data-endpoint="/graphql"`},
		loads: map[string]string{
			"graphiql.min.css":            "text/css; charset=utf-8",
			"react.production.min.js":     "text/javascript; charset=utf-8",
			"react-dom.production.min.js": "text/javascript; charset=utf-8",
			"graphiql.min.js":             "text/javascript; charset=utf-8",
			"playground.js":               "text/javascript; charset=utf-8",
		},
		others:       []string{"LICENSE.graphiql.txt", "LICENSE.react.txt", "LICENSE.react-dom.txt", "VERSIONS"},
		versions:     "graphiql@3.",
		unknown:      []string{"missing.js", "..%2Fplayground.go", "graphiql.min.js.map", "index.html", "playground"},
		notFoundType: "text/plain; charset=utf-8", notFound: "404 page not found\n",
	},
	{
		name: "apidocs", site: apiDocs, page: "/api/v1/docs", csp: apiDocsCSP,
		pageHas: []string{"<title>Obsqra REST API reference</title>", `data-spec="/api/v1/openapi.json"`},
		loads: map[string]string{
			"redoc.standalone.js": "text/javascript; charset=utf-8",
			"docs.js":             "text/javascript; charset=utf-8",
		},
		others:       []string{"LICENSE.redoc.txt", "LICENSE.redoc.standalone.txt", "VERSIONS"},
		versions:     "redoc@2.",
		unknown:      []string{"missing.js", "..%2Fdocs.go", "redoc.standalone.js.map", "index.html", "docs"},
		notFoundType: "application/json", notFound: `{"detail":"Not Found"}`,
	},
}

// eachSite runs test in parallel subtests, one a site, with a mux that
// routes the site's page and assets as New does.
func eachSite(t *testing.T, test func(t *testing.T, c siteCase, mux *http.ServeMux)) {
	t.Helper()
	for _, c := range siteCases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			mux := http.NewServeMux()
			c.site.mount(mux, c.page)
			test(t, c, mux)
		})
	}
}

func siteGet(t *testing.T, h http.Handler, target string, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	return siteDo(t, h, http.MethodGet, target, header...)
}

func siteDo(t *testing.T, h http.Handler, method, target string, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// siteAssetRef matches the src and href attributes of a page.
var siteAssetRef = regexp.MustCompile(`(?:src|href)="([^"]*)"`)

func TestSitePage(t *testing.T) {
	t.Parallel()
	eachSite(t, func(t *testing.T, c siteCase, mux *http.ServeMux) {
		rec := siteGet(t, mux, c.page)

		if rec.Code != http.StatusOK {
			t.Fatalf("GET %s = %d", c.page, rec.Code)
		}
		h := rec.Header()
		for name, want := range map[string]string{
			"Content-Type":            "text/html; charset=utf-8",
			"Cache-Control":           "no-cache",
			"Content-Security-Policy": c.csp,
			"X-Content-Type-Options":  "nosniff",
			"Referrer-Policy":         "no-referrer",
		} {
			if got := h.Get(name); got != want {
				t.Errorf("%s = %q, want %q", name, got, want)
			}
		}
		for _, want := range []string{"default-src 'none'", "script-src 'self';", "connect-src 'self';", "frame-ancestors 'none'"} {
			if !strings.Contains(c.csp, want) {
				t.Errorf("Content-Security-Policy %q lacks %q", c.csp, want)
			}
		}
		page := rec.Body.String()
		for _, want := range c.pageHas {
			if !strings.Contains(page, want) {
				t.Errorf("page lacks %s", want)
			}
		}
		if strings.Contains(page, "http://") || strings.Contains(page, "https://") || strings.Contains(page, "//cdn") {
			t.Errorf("page refers to another host:\n%s", page)
		}
		if strings.Contains(strings.ReplaceAll(page, `<script src=`, ``), "<script") {
			t.Errorf("page has an inline script, which its policy forbids:\n%s", page)
		}

		etag := h.Get("ETag")
		if rec := siteGet(t, mux, c.page, "If-None-Match", etag); etag == "" || rec.Code != http.StatusNotModified || rec.Body.Len() != 0 {
			t.Errorf("GET page with If-None-Match %s = %d with %d bytes, want 304 and no body", etag, rec.Code, rec.Body.Len())
		}
		if rec := siteGet(t, mux, c.page, "If-None-Match", `"0000", W/`+etag); rec.Code != http.StatusNotModified {
			t.Errorf("GET page with a list naming the weak ETag = %d, want 304", rec.Code)
		}
		if rec := siteGet(t, mux, c.page, "If-None-Match", `"0000"`); rec.Code != http.StatusOK || rec.Body.String() != page {
			t.Errorf("GET page with another ETag = %d, want 200 and the page", rec.Code)
		}
		if rec := siteDo(t, mux, http.MethodHead, c.page); rec.Code != http.StatusOK {
			t.Errorf("HEAD page = %d, want 200", rec.Code)
		}
	})
}

func TestSitePageAssets(t *testing.T) {
	t.Parallel()
	eachSite(t, func(t *testing.T, c siteCase, mux *http.ServeMux) {
		page := siteGet(t, mux, c.page).Body.String()

		seen := map[string]bool{}
		for _, m := range siteAssetRef.FindAllStringSubmatch(page, -1) {
			u, err := url.Parse(m[1])
			if err != nil || u.Host != "" || u.Scheme != "" || !strings.HasPrefix(u.Path, c.site.assetPrefix) || u.Query().Get("v") == "" {
				t.Errorf("page refers to %q, want a versioned %s URL", m[1], c.site.assetPrefix)
				continue
			}
			name := strings.TrimPrefix(u.Path, c.site.assetPrefix)
			seen[name] = true
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				wantAsset(t, mux, m[1], c.loads[name], `"`+u.Query().Get("v")+`"`)
			})
		}
		for name := range c.loads {
			if !seen[name] {
				t.Errorf("page does not load %s", name)
			}
		}
	})
}

// wantAsset checks the answers for the asset at target: its type,
// caching, ETag (etag, when not empty), 304s, and gzip.
func wantAsset(t *testing.T, mux http.Handler, target, wantType, etag string) {
	t.Helper()
	plain := siteGet(t, mux, target)
	h := plain.Header()
	if plain.Code != http.StatusOK || plain.Body.Len() == 0 {
		t.Fatalf("GET %s = %d with %d bytes, want 200 with content", target, plain.Code, plain.Body.Len())
	}
	if got := h.Get("Content-Type"); got != wantType {
		t.Errorf("Content-Type = %q, want %q", got, wantType)
	}
	if got := h.Get("Cache-Control"); got != "public, max-age=31536000, immutable" {
		t.Errorf("Cache-Control = %q, want a year, immutable", got)
	}
	if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Content-Encoding") != "" || h.Get("Vary") != "Accept-Encoding" {
		t.Errorf("headers %v, want nosniff, Vary: Accept-Encoding and no encoding", h)
	}
	if got := h.Get("ETag"); etag != "" && got != etag {
		t.Errorf("ETag = %s, want the URL's version %s", got, etag)
	}
	etag = h.Get("ETag")

	if rec := siteGet(t, mux, target, "If-None-Match", etag); rec.Code != http.StatusNotModified || rec.Body.Len() != 0 {
		t.Errorf("GET with If-None-Match = %d with %d bytes, want 304 and no body", rec.Code, rec.Body.Len())
	}
	if rec := siteGet(t, mux, target, "If-None-Match", `"0000", W/`+etag); rec.Code != http.StatusNotModified {
		t.Errorf("GET with a list naming the weak ETag = %d, want 304", rec.Code)
	}
	if rec := siteGet(t, mux, target, "If-None-Match", `"0000"`); rec.Code != http.StatusOK {
		t.Errorf("GET with another ETag = %d, want 200", rec.Code)
	}
	if rec := siteGet(t, mux, target, "Accept-Encoding", "gzip;q=0"); rec.Header().Get("Content-Encoding") != "" {
		t.Error("gzip;q=0 answered gzipped")
	}

	zipped := siteGet(t, mux, target, "Accept-Encoding", "br, gzip")
	if plain.Body.Len() <= 1024 {
		// Too small to be worth compressing.
		if zipped.Header().Get("Content-Encoding") != "" {
			t.Errorf("a %d-byte asset answered compressed", plain.Body.Len())
		}
		return
	}
	if zipped.Header().Get("Content-Encoding") != "gzip" || zipped.Header().Get("Content-Type") != wantType {
		t.Fatalf("gzip GET headers %v, want gzip-encoded %s", zipped.Header(), wantType)
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
}

func TestSiteOtherAssets(t *testing.T) {
	t.Parallel()
	eachSite(t, func(t *testing.T, c siteCase, mux *http.ServeMux) {
		for _, name := range c.others {
			wantAsset(t, mux, c.site.assetPrefix+name, "text/plain; charset=utf-8", "")
		}
		if v := siteGet(t, mux, c.site.assetPrefix+"VERSIONS").Body.String(); !strings.Contains(v, c.versions) {
			t.Errorf("VERSIONS = %q, want %s", v, c.versions)
		}
	})
}

func TestSiteUnknownAsset(t *testing.T) {
	t.Parallel()
	eachSite(t, func(t *testing.T, c siteCase, mux *http.ServeMux) {
		for _, name := range c.unknown {
			rec := siteGet(t, mux, c.site.assetPrefix+name)
			if rec.Code != http.StatusNotFound || rec.Header().Get("Content-Type") != c.notFoundType || rec.Body.String() != c.notFound ||
				rec.Header().Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("GET %s = %d %q %q, want 404 %s %q", name, rec.Code, rec.Header().Get("Content-Type"), rec.Body, c.notFoundType, c.notFound)
			}
		}
	})
}

func TestSiteMethods(t *testing.T) {
	t.Parallel()
	eachSite(t, func(t *testing.T, c siteCase, mux *http.ServeMux) {
		for _, target := range []string{c.page, c.site.assetPrefix + "VERSIONS"} {
			for _, method := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
				rec := siteDo(t, mux, method, target)
				if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "GET, HEAD" {
					t.Errorf("%s %s = %d, Allow %q, want 405 with Allow: GET, HEAD", method, target, rec.Code, rec.Header().Get("Allow"))
				}
			}
		}
	})
}

func TestSiteLoadErrors(t *testing.T) {
	t.Parallel()
	page := &fstest.MapFile{Data: []byte(`<script src="{{asset "a.js"}}"></script>`)}
	js := &fstest.MapFile{Data: []byte("1")}
	for _, c := range []struct {
		name  string
		files fstest.MapFS
		want  string
	}{
		{"missing asset", fstest.MapFS{"s/index.html": page, "s/assets/b.js": js}, "refers to missing asset a.js"},
		{"two files of one name", fstest.MapFS{"s/index.html": page, "s/a.js": js, "s/assets/a.js": js}, "two files named a.js"},
		{"no page", fstest.MapFS{"s/a.js": js, "s/assets/b.js": js}, "parse s page"},
		{"no assets", fstest.MapFS{"s/index.html": page, "s/a.js": js}, "list s files"},
	} {
		s := newSite(c.files, "s", "/s/", "", plainError)
		if _, err := s.load(c.files); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: load = %v, want an error with %q", c.name, err, c.want)
		}
	}
	s := newSite(fstest.MapFS{"s/index.html": page, "s/a.js": js, "s/assets/x.map": js}, "s", "/s/", "", plainError)
	f := s.loaded()
	if got := string(f.page); got != `<script src="/s/a.js?v=`+strings.Trim(contentETag(js.Data), `"`)+`"></script>` {
		t.Errorf("page = %s", got)
	}
	if _, ok := f.assets["x.map"]; ok || len(f.assets) != 1 {
		t.Errorf("assets %v, want a.js alone (no .map)", f.assets)
	}
}
