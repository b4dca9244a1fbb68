package server

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

// playgroundFiles holds the playground page, its start script, and the
// GraphiQL, React and ReactDOM builds with their licences, vendored from npm
// by scripts/vendor-playground.sh (see assets/VERSIONS).
//
//go:embed playground/index.html playground/playground.js playground/assets
var playgroundFiles embed.FS

// playgroundCSP keeps the playground to this server: scripts, styles and
// requests are same-origin only. GraphiQL sets inline styles, and its
// stylesheet carries its fonts as data: URLs.
const playgroundCSP = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
	"img-src 'self' data:; font-src 'self' data:; connect-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// assetPrefix is where playground assets are served.
const assetPrefix = "/playground/assets/"

// playgroundAsset is one file served under assetPrefix.
type playgroundAsset struct {
	body        []byte
	contentType string
	// etag is a quoted prefix of the body's SHA-256; it also versions the
	// asset's URL, so that a new vendored build is never read from a cache.
	etag string
	// gzipped compresses body once, on first request.
	gzipped func() []byte
}

// url is where the page refers to the asset.
func (a *playgroundAsset) url(name string) string {
	return assetPrefix + name + "?v=" + strings.Trim(a.etag, `"`)
}

// playgroundSite is the page and its assets, built once from the embedded
// files.
type playgroundSite struct {
	page   []byte
	assets map[string]*playgroundAsset
}

var loadedPlayground = sync.OnceValue(func() *playgroundSite {
	site, err := loadPlayground(playgroundFiles)
	if err != nil {
		// The files are embedded at build time; this is a broken build.
		panic(err)
	}
	return site
})

// assetContentTypes lists what may be served, by file extension.
var assetContentTypes = map[string]string{
	".js":  "text/javascript; charset=utf-8",
	".css": "text/css; charset=utf-8",
	".txt": "text/plain; charset=utf-8",
	"":     "text/plain; charset=utf-8", // VERSIONS
}

func loadPlayground(files fs.FS) (*playgroundSite, error) {
	site := &playgroundSite{assets: map[string]*playgroundAsset{}}
	add := func(name, file string) error {
		body, err := fs.ReadFile(files, file)
		if err != nil {
			return fmt.Errorf("read playground asset %s: %w", file, err)
		}
		ct, ok := assetContentTypes[path.Ext(name)]
		if !ok {
			return nil
		}
		sum := sha256.Sum256(body)
		a := &playgroundAsset{
			body:        body,
			contentType: ct,
			etag:        `"` + hex.EncodeToString(sum[:8]) + `"`,
		}
		a.gzipped = sync.OnceValue(func() []byte { return gzipBytes(a.body) })
		site.assets[name] = a
		return nil
	}

	entries, err := fs.ReadDir(files, "playground/assets")
	if err != nil {
		return nil, fmt.Errorf("list playground assets: %w", err)
	}
	for _, e := range entries {
		if !e.IsDir() {
			if err := add(e.Name(), "playground/assets/"+e.Name()); err != nil {
				return nil, err
			}
		}
	}
	if err := add("playground.js", "playground/playground.js"); err != nil {
		return nil, err
	}

	tmpl, err := template.New("index.html").Funcs(template.FuncMap{
		"asset": func(name string) (string, error) {
			a, ok := site.assets[name]
			if !ok {
				return "", fmt.Errorf("playground page refers to missing asset %s", name)
			}
			return a.url(name), nil
		},
	}).ParseFS(files, "playground/index.html")
	if err != nil {
		return nil, fmt.Errorf("parse playground page: %w", err)
	}
	var page bytes.Buffer
	if err := tmpl.Execute(&page, nil); err != nil {
		return nil, fmt.Errorf("render playground page: %w", err)
	}
	site.page = page.Bytes()
	return site, nil
}

func gzipBytes(b []byte) []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.DefaultCompression)
	_, _ = zw.Write(b)
	_ = zw.Close()
	return buf.Bytes()
}

// servePlayground serves the GraphiQL page.
func (s *Server) servePlayground(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("Content-Security-Policy", playgroundCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	_, _ = w.Write(loadedPlayground().page)
}

// servePlaygroundAsset serves a vendored script, stylesheet or licence. The URLs
// the page uses carry the content's hash, so they are cached for a year.
func (s *Server) servePlaygroundAsset(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	a, ok := loadedPlayground().assets[name]
	if !ok {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h.Set("Content-Type", a.contentType)
	h.Set("Cache-Control", "public, max-age=31536000, immutable")
	h.Set("ETag", a.etag)
	h.Set("X-Content-Type-Options", "nosniff")
	if r.Header.Get("If-None-Match") == a.etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	body := a.body
	if len(body) > 1024 && acceptsGzip(r) {
		body = a.gzipped()
		h.Set("Content-Encoding", "gzip")
	}
	h.Set("Content-Length", fmt.Sprint(len(body)))
	_, _ = w.Write(body)
}
