package server

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
)

// site is a page embedded in the binary with the files it loads, served by
// this server alone: the GraphiQL playground (playground.go) and the REST
// API's reference page (apidocs.go). Its directory holds index.html, a
// template that names each file it loads with {{asset "name"}}, the page's
// own scripts beside it, and the vendored files in assets/. All are read,
// hashed and rendered once, on the first request.
//
// The page is answered with the site's Content-Security-Policy, no-cache
// and an ETag. Every other file of the directory and of assets/ is an asset,
// served under assetPrefix at a URL versioned by its content's hash
// (?v=…), so that it is cached for a year and a new build is never read
// from a cache; gzipped once when large.
type site struct {
	// dir names the site in errors.
	dir         string
	assetPrefix string
	csp         string
	// fail answers an error status: an unknown asset (404) or another
	// method than GET and HEAD (405).
	fail   func(w http.ResponseWriter, r *http.Request, status int)
	loaded func() *siteFiles
}

// siteFiles is a site's page and assets, as built from its directory.
type siteFiles struct {
	page     []byte
	pageETag string
	assets   map[string]*siteAsset
}

// siteAsset is one file served under a site's assetPrefix.
type siteAsset struct {
	body        []byte
	contentType string
	// etag is a quoted prefix of the body's SHA-256; it also versions the
	// asset's URL.
	etag string
	// gzipped compresses body once, on first request.
	gzipped func() []byte
}

// siteContentTypes lists what a site may serve, by file extension; other
// files are left out.
var siteContentTypes = map[string]string{
	".js":  "text/javascript; charset=utf-8",
	".css": "text/css; charset=utf-8",
	".txt": "text/plain; charset=utf-8",
	"":     "text/plain; charset=utf-8", // VERSIONS
}

// newSite returns the site in directory dir of files, its assets served
// under assetPrefix (which ends in "/"), its page under csp, its errors
// answered by fail (plainError or detailError).
func newSite(files fs.FS, dir, assetPrefix, csp string, fail func(http.ResponseWriter, *http.Request, int)) *site {
	s := &site{dir: dir, assetPrefix: assetPrefix, csp: csp, fail: fail}
	s.loaded = sync.OnceValue(func() *siteFiles {
		f, err := s.load(files)
		if err != nil {
			// The files are embedded at build time; this is a broken build.
			panic(err)
		}
		return f
	})
	return s
}

// load reads the site's files from its directory in files and renders its
// page.
func (s *site) load(files fs.FS) (*siteFiles, error) {
	sub, err := fs.Sub(files, s.dir)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.dir, err)
	}
	f := &siteFiles{assets: map[string]*siteAsset{}}
	for _, dir := range []string{".", "assets"} {
		entries, err := fs.ReadDir(sub, dir)
		if err != nil {
			return nil, fmt.Errorf("list %s files: %w", s.dir, err)
		}
		for _, e := range entries {
			name := e.Name()
			ct, ok := siteContentTypes[path.Ext(name)]
			if e.IsDir() || dir == "." && name == "index.html" || !ok {
				continue
			}
			if f.assets[name] != nil {
				return nil, fmt.Errorf("%s has two files named %s", s.dir, name)
			}
			body, err := fs.ReadFile(sub, path.Join(dir, name))
			if err != nil {
				return nil, fmt.Errorf("read %s file: %w", s.dir, err)
			}
			a := &siteAsset{body: body, contentType: ct, etag: contentETag(body)}
			a.gzipped = sync.OnceValue(func() []byte { return gzipBytes(a.body) })
			f.assets[name] = a
		}
	}

	tmpl, err := template.New("index.html").Funcs(template.FuncMap{
		"asset": func(name string) (string, error) {
			a, ok := f.assets[name]
			if !ok {
				return "", fmt.Errorf("%s page refers to missing asset %s", s.dir, name)
			}
			return s.assetPrefix + name + "?v=" + strings.Trim(a.etag, `"`), nil
		},
	}).ParseFS(sub, "index.html")
	if err != nil {
		return nil, fmt.Errorf("parse %s page: %w", s.dir, err)
	}
	var page bytes.Buffer
	if err := tmpl.Execute(&page, nil); err != nil {
		return nil, fmt.Errorf("render %s page: %w", s.dir, err)
	}
	f.page = page.Bytes()
	f.pageETag = contentETag(f.page)
	return f, nil
}

// contentETag is a strong ETag of b: a quoted prefix of its SHA-256.
func contentETag(b []byte) string {
	sum := sha256.Sum256(b)
	return `"` + hex.EncodeToString(sum[:8]) + `"`
}

// mount routes each of pages (ServeMux patterns without a method) to the
// page, and assetPrefix+"{file}" to the assets, on mux. Both answer GET and
// HEAD, and any other method with 405 in the site's error style.
func (s *site) mount(mux *http.ServeMux, pages ...string) {
	for _, p := range pages {
		mux.HandleFunc(p, s.servePage)
	}
	mux.HandleFunc(s.assetPrefix+"{file}", s.serveAsset)
}

// allowed reports whether r's method is GET or HEAD, and otherwise answers
// 405.
func (s *site) allowed(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header().Set("Allow", "GET, HEAD")
	s.fail(w, r, http.StatusMethodNotAllowed)
	return false
}

// servePage answers the page.
func (s *site) servePage(w http.ResponseWriter, r *http.Request) {
	if !s.allowed(w, r) {
		return
	}
	f := s.loaded()
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", f.pageETag)
	h.Set("Content-Security-Policy", s.csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	if notModified(r, f.pageETag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	_, _ = w.Write(f.page)
}

// serveAsset answers the asset r.PathValue("file"). The URLs the page uses
// carry the content's hash, so they are cached for a year.
func (s *site) serveAsset(w http.ResponseWriter, r *http.Request) {
	if !s.allowed(w, r) {
		return
	}
	a, ok := s.loaded().assets[r.PathValue("file")]
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	if !ok {
		s.fail(w, r, http.StatusNotFound)
		return
	}
	h.Set("Content-Type", a.contentType)
	h.Set("Cache-Control", "public, max-age=31536000, immutable")
	h.Set("ETag", a.etag)
	h.Set("Vary", "Accept-Encoding")
	if notModified(r, a.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	body := a.body
	if len(body) > minGzipBytes && acceptsGzip(r) {
		body = a.gzipped()
		h.Set("Content-Encoding", "gzip")
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	_, _ = w.Write(body)
}

// notModified reports whether r's If-None-Match names etag, weakly or
// strongly, in a list or alone, or is *.
func notModified(r *http.Request, etag string) bool {
	for tag := range strings.SplitSeq(r.Header.Get("If-None-Match"), ",") {
		tag = strings.TrimPrefix(strings.TrimSpace(tag), "W/")
		if tag == etag || tag == "*" {
			return true
		}
	}
	return false
}

// plainError answers status as net/http does: 404 page not found, or the
// status's text.
func plainError(w http.ResponseWriter, r *http.Request, status int) {
	if status == http.StatusNotFound {
		http.NotFound(w, r)
		return
	}
	http.Error(w, http.StatusText(status), status)
}

// detailError answers status as the REST API under /api/v1 does (FastAPI's
// shape): {"detail":"Not Found"}.
func detailError(w http.ResponseWriter, _ *http.Request, status int) {
	body, _ := json.Marshal(struct {
		Detail string `json:"detail"`
	}{http.StatusText(status)})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
