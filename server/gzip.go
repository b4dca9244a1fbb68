package server

import (
	"bytes"
	"compress/gzip"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"

	"github.com/gorilla/websocket"
)

// minGzipBytes is the size up to which a response is sent as is: the
// compressed form of a small body saves too little to pay for itself (the
// gzip header and trailer alone are 18 bytes). A response is compressed
// once it holds more.
const minGzipBytes = 1024

// gzipWriters are reused: a gzip.Writer holds over 250 KB of tables, too
// much to allocate per response.
var gzipWriters = sync.Pool{New: func() any {
	zw, _ := gzip.NewWriterLevel(io.Discard, gzip.DefaultCompression)
	return zw
}}

// compress gzips responses over minGzipBytes for clients that accept gzip
// (the introspection result is 130 KB, a dashboard tens of KB). The first
// minGzipBytes are buffered to decide; a handler that flushes before that
// streams uncompressed. Responses that are event streams or multipart
// (which must reach the client part by part), that are already encoded
// (the embedded sites' assets) or that have no body pass as they are, and
// WebSocket upgrades are not touched.
func (s *Server) compress(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Vary", "Accept-Encoding")
		if r.Method == http.MethodHead || !acceptsGzip(r) || websocket.IsWebSocketUpgrade(r) {
			next.ServeHTTP(w, r)
			return
		}
		gw := &gzipWriter{ResponseWriter: w}
		// Not deferred: after a panic nothing is sent from here, so that
		// recoverPanic can still answer when nothing was written yet.
		next.ServeHTTP(gw, r)
		gw.close()
	})
}

// acceptsGzip reports whether the request's Accept-Encoding lists gzip
// without refusing it with q=0.
func acceptsGzip(r *http.Request) bool {
	for part := range strings.SplitSeq(r.Header.Get("Accept-Encoding"), ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(coding), "gzip") {
			q := strings.ReplaceAll(params, " ", "")
			return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
		}
	}
	return false
}

// gzipBytes compresses b at the best compression: for bodies compressed
// once and sent many times, such as an embedded site's assets (site.go).
func gzipBytes(b []byte) []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	_, _ = zw.Write(b)
	_ = zw.Close()
	return buf.Bytes()
}

// gzipWriter holds back the status and the first minGzipBytes of a
// response until it is clear whether to compress it.
type gzipWriter struct {
	http.ResponseWriter
	status  int
	buf     [minGzipBytes]byte
	n       int
	decided bool
	zw      *gzip.Writer // set when compressing
}

// WriteHeader holds the status back, except for informational ones and
// those that have no body, which pass at once.
func (w *gzipWriter) WriteHeader(code int) {
	switch {
	case w.decided:
		w.ResponseWriter.WriteHeader(code)
	case code < 200:
		w.ResponseWriter.WriteHeader(code)
	case code == http.StatusNoContent || code == http.StatusNotModified:
		w.decided = true
		w.ResponseWriter.WriteHeader(code)
	case w.status == 0:
		w.status = code
	}
}

// Write buffers p while the response is small, and otherwise decides and
// writes through.
func (w *gzipWriter) Write(p []byte) (int, error) {
	if !w.decided {
		if w.n+len(p) <= minGzipBytes {
			w.n += copy(w.buf[w.n:], p)
			return len(p), nil
		}
		if err := w.decide(true, p); err != nil {
			return 0, err
		}
	}
	if w.zw != nil {
		return w.zw.Write(p)
	}
	return w.ResponseWriter.Write(p)
}

// decide sends the status and headers, compressed when the body is large
// and compressible, then what was buffered; next is what is about to be
// written after it.
func (w *gzipWriter) decide(large bool, next []byte) error {
	w.decided = true
	h := w.Header()
	if large && compressible(h) {
		if h.Get("Content-Type") == "" {
			// Sniffed from the plain bytes, as net/http would have.
			h.Set("Content-Type", http.DetectContentType(append(w.buf[:w.n:w.n], next[:min(len(next), 512)]...)))
		}
		h.Set("Content-Encoding", "gzip")
		h.Del("Content-Length")
		w.zw = gzipWriters.Get().(*gzip.Writer)
		w.zw.Reset(w.ResponseWriter)
	}
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.ResponseWriter.WriteHeader(w.status)
	if w.n == 0 {
		return nil
	}
	var err error
	if w.zw != nil {
		_, err = w.zw.Write(w.buf[:w.n])
	} else {
		_, err = w.ResponseWriter.Write(w.buf[:w.n])
	}
	return err
}

// compressible reports whether a response with headers h may be gzipped:
// not already encoded, and not a stream whose parts must not wait in the
// compressor.
func compressible(h http.Header) bool {
	if h.Get("Content-Encoding") != "" {
		return false
	}
	media, _, _ := mime.ParseMediaType(h.Get("Content-Type"))
	return media != "text/event-stream" && media != "multipart/mixed"
}

// Flush sends what was buffered (uncompressed, if the response has not
// outgrown the buffer: a handler that flushes is streaming) and what the
// compressor holds, then flushes the connection.
func (w *gzipWriter) Flush() {
	if !w.decided {
		_ = w.decide(false, nil)
	}
	if w.zw != nil {
		_ = w.zw.Flush()
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// close ends the response: a small one is sent as is, a compressed one
// gets its gzip trailer and returns its writer to the pool.
func (w *gzipWriter) close() {
	if !w.decided {
		_ = w.decide(false, nil)
	}
	if w.zw != nil {
		_ = w.zw.Close()
		w.zw.Reset(io.Discard)
		gzipWriters.Put(w.zw)
		w.zw = nil
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (w *gzipWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
