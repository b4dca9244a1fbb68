package rest

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"sync"
)

// docsFiles holds the API reference page, its start script, and Redoc's
// standalone bundle with its licences, vendored from npm by
// scripts/vendor-docs.sh (see docs/assets/VERSIONS). Redoc 2.x: one script
// of 1.1 MB that reads OpenAPI 3.1, fetches nothing but the spec, and runs
// under the policy below.
//
//go:embed docs/index.html docs/docs.js docs/assets
var docsFiles embed.FS

// docsCSP keeps the reference page to this server: scripts, styles and
// requests are same-origin only. Redoc's styled-components inject <style>
// elements, and its search index runs in a worker it starts from a blob:
// URL; its icons are data: SVGs. It needs no fonts (the page uses the
// system's) and no frames. Each of the three is needed: without it Chromium
// reports a violation (TestDocsChromium).
const docsCSP = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
	"img-src 'self' data:; connect-src 'self'; worker-src blob:; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// docsAssetPrefix is where the page's assets are served.
const docsAssetPrefix = "/api/v1/docs/assets/"

// docsAsset is one file served under docsAssetPrefix.
type docsAsset struct {
	body        []byte
	contentType string
	// etag is a quoted prefix of the body's SHA-256; it also versions the
	// asset's URL, so that a new vendored build is never read from a cache.
	etag string
	// gzipped compresses body once, on first request.
	gzipped func() []byte
}

// docsSite is the page and its assets, built once from the embedded files.
type docsSite struct {
	page     []byte
	pageETag string
	assets   map[string]*docsAsset
}

// docsContentTypes lists what may be served, by file extension.
var docsContentTypes = map[string]string{
	".js":  "text/javascript; charset=utf-8",
	".txt": "text/plain; charset=utf-8",
	"":     "text/plain; charset=utf-8", // VERSIONS
}

var docsLoaded = sync.OnceValue(func() *docsSite {
	site, err := docsLoad(docsFiles)
	if err != nil {
		// The files are embedded at build time; this is a broken build.
		panic(err)
	}
	return site
})

func docsETag(b []byte) string {
	sum := sha256.Sum256(b)
	return `"` + hex.EncodeToString(sum[:8]) + `"`
}

func docsLoad(files fs.FS) (*docsSite, error) {
	site := &docsSite{assets: map[string]*docsAsset{}}
	add := func(name, file string) error {
		ct, ok := docsContentTypes[path.Ext(name)]
		if !ok {
			return nil
		}
		body, err := fs.ReadFile(files, file)
		if err != nil {
			return fmt.Errorf("read docs asset %s: %w", file, err)
		}
		a := &docsAsset{body: body, contentType: ct, etag: docsETag(body)}
		a.gzipped = sync.OnceValue(func() []byte { return docsGzip(a.body) })
		site.assets[name] = a
		return nil
	}
	entries, err := fs.ReadDir(files, "docs/assets")
	if err != nil {
		return nil, fmt.Errorf("list docs assets: %w", err)
	}
	for _, e := range entries {
		if !e.IsDir() {
			if err := add(e.Name(), "docs/assets/"+e.Name()); err != nil {
				return nil, err
			}
		}
	}
	if err := add("docs.js", "docs/docs.js"); err != nil {
		return nil, err
	}

	tmpl, err := template.New("index.html").Funcs(template.FuncMap{
		"asset": func(name string) (string, error) {
			a, ok := site.assets[name]
			if !ok {
				return "", fmt.Errorf("docs page refers to missing asset %s", name)
			}
			return docsAssetPrefix + name + "?v=" + strings.Trim(a.etag, `"`), nil
		},
	}).ParseFS(files, "docs/index.html")
	if err != nil {
		return nil, fmt.Errorf("parse docs page: %w", err)
	}
	var page bytes.Buffer
	if err := tmpl.Execute(&page, nil); err != nil {
		return nil, fmt.Errorf("render docs page: %w", err)
	}
	site.page = page.Bytes()
	site.pageETag = docsETag(site.page)
	return site, nil
}

func docsGzip(b []byte) []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	_, _ = zw.Write(b)
	_ = zw.Close()
	return buf.Bytes()
}

// docsAcceptsGzip reports whether the request's Accept-Encoding lists gzip
// without refusing it with q=0.
func docsAcceptsGzip(r *http.Request) bool {
	for part := range strings.SplitSeq(r.Header.Get("Accept-Encoding"), ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(coding), "gzip") {
			q := strings.ReplaceAll(params, " ", "")
			return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
		}
	}
	return false
}

// docsNotModified reports whether If-None-Match names etag (or is *).
func docsNotModified(r *http.Request, etag string) bool {
	for tag := range strings.SplitSeq(r.Header.Get("If-None-Match"), ",") {
		tag = strings.TrimPrefix(strings.TrimSpace(tag), "W/")
		if tag == etag || tag == "*" {
			return true
		}
	}
	return false
}

// serveDocs answers GET /api/v1/docs: the reference page.
func serveDocs(w http.ResponseWriter, r *http.Request) {
	site := docsLoaded()
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", site.pageETag)
	h.Set("Content-Security-Policy", docsCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	if docsNotModified(r, site.pageETag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	_, _ = w.Write(site.page)
}

// serveDocsAsset answers GET /api/v1/docs/assets/{file} (r.PathValue("file")):
// Redoc, the start script, the licences and VERSIONS. The URLs the page uses
// carry the content's hash, so they are cached for a year.
func serveDocsAsset(w http.ResponseWriter, r *http.Request) {
	a, ok := docsLoaded().assets[r.PathValue("file")]
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	if !ok {
		h.Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"detail":"Not Found"}`))
		return
	}
	h.Set("Content-Type", a.contentType)
	h.Set("Cache-Control", "public, max-age=31536000, immutable")
	h.Set("ETag", a.etag)
	h.Set("Vary", "Accept-Encoding")
	if docsNotModified(r, a.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	body := a.body
	if len(body) > 1024 && docsAcceptsGzip(r) {
		body = a.gzipped()
		h.Set("Content-Encoding", "gzip")
	}
	h.Set("Content-Length", fmt.Sprint(len(body)))
	_, _ = w.Write(body)
}
