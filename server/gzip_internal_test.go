package server

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// gunzip returns the body of rec, decompressed when it is gzip-encoded.
func gunzip(t *testing.T, rec *httptest.ResponseRecorder) []byte {
	t.Helper()
	if rec.Header().Get("Content-Encoding") != "gzip" {
		return rec.Body.Bytes()
	}
	zr, err := gzip.NewReader(bytes.NewReader(rec.Body.Bytes()))
	if err != nil {
		t.Fatalf("gzip.NewReader: %v", err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("gunzip: %v", err)
	}
	return b
}

func TestCompress(t *testing.T) {
	t.Parallel()
	body := func(n int) []byte { return bytes.Repeat([]byte("x"), n) }
	tests := []struct {
		name           string
		acceptEncoding string
		contentType    string
		status         int
		writes         []int // sizes of successive writes
		wantGzip       bool
	}{
		{name: "at the limit", acceptEncoding: "gzip", writes: []int{1024}},
		{name: "one past the limit", acceptEncoding: "gzip", writes: []int{1025}, wantGzip: true},
		{name: "at the limit in pieces", acceptEncoding: "gzip", writes: []int{1000, 24}},
		{name: "one past the limit in pieces", acceptEncoding: "gzip", writes: []int{1000, 24, 1}, wantGzip: true},
		{name: "large, many writes", acceptEncoding: "gzip", writes: []int{10, 500, 100000, 3}, wantGzip: true},
		{name: "error status", acceptEncoding: "gzip", status: http.StatusUnprocessableEntity, writes: []int{5000}, wantGzip: true},
		{name: "not accepted", writes: []int{5000}},
		{name: "refused with q=0", acceptEncoding: "br, gzip;q=0", writes: []int{5000}},
		{name: "among others", acceptEncoding: "deflate, gzip;q=0.5, br", writes: []int{5000}, wantGzip: true},
		{name: "event stream", acceptEncoding: "gzip", contentType: "text/event-stream", writes: []int{5000}},
		{name: "multipart", acceptEncoding: "gzip", contentType: `multipart/mixed; boundary="-"`, writes: []int{5000}},
		{name: "empty", acceptEncoding: "gzip"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var want []byte
			h := (&Server{}).compress(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", cmp(tt.contentType, "application/json"))
				if tt.status != 0 {
					w.WriteHeader(tt.status)
				}
				for _, n := range tt.writes {
					if _, err := w.Write(body(n)); err != nil {
						t.Errorf("Write: %v", err)
					}
					want = append(want, body(n)...)
				}
			}))
			req := httptest.NewRequest(http.MethodPost, "/graphql", nil)
			if tt.acceptEncoding != "" {
				req.Header.Set("Accept-Encoding", tt.acceptEncoding)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)

			hd := rec.Header()
			if got := hd.Get("Content-Encoding") == "gzip"; got != tt.wantGzip {
				t.Errorf("%d bytes, Accept-Encoding %q: gzip %v, want %v", len(want), tt.acceptEncoding, got, tt.wantGzip)
			}
			if got := gunzip(t, rec); !bytes.Equal(got, want) {
				t.Errorf("body is %d bytes, want the %d written", len(got), len(want))
			}
			if wantStatus := cmp(tt.status, http.StatusOK); rec.Code != wantStatus {
				t.Errorf("status = %d, want %d", rec.Code, wantStatus)
			}
			if hd.Get("Vary") != "Accept-Encoding" {
				t.Errorf("Vary = %q, want Accept-Encoding", hd.Values("Vary"))
			}
			if wantType := cmp(tt.contentType, "application/json"); hd.Get("Content-Type") != wantType {
				t.Errorf("Content-Type = %q, want %q", hd.Get("Content-Type"), wantType)
			}
		})
	}
}

// cmp returns v, or def when v is the zero value.
func cmp[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// TestCompressStreams checks that a handler that flushes before the buffer
// is full gets its bytes to the client at once, uncompressed.
func TestCompressStreams(t *testing.T) {
	t.Parallel()
	flushed := make(chan struct{})
	release := make(chan struct{})
	h := (&Server{}).compress(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"part":1}`)
		http.NewResponseController(w).Flush()
		close(flushed)
		<-release
		_, _ = w.Write(bytes.Repeat([]byte(" "), 5000))
	}))
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	req.Header.Set("Accept-Encoding", "gzip") // set by hand, so the client does not decompress
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	<-flushed
	first := make([]byte, 10)
	if _, err := io.ReadFull(res.Body, first); err != nil || string(first) != `{"part":1}` {
		t.Fatalf("first part = %q, %v; want it before the handler ends", first, err)
	}
	close(release)
	rest, _ := io.ReadAll(res.Body)
	if res.Header.Get("Content-Encoding") != "" || len(rest) != 5000 {
		t.Errorf("Content-Encoding %q, %d more bytes; want the stream uncompressed", res.Header.Get("Content-Encoding"), len(rest))
	}
}

// TestCompressKeepsEncoded checks that a response already encoded (the
// playground's precompressed assets) is not compressed twice, and that a
// 304 passes with no body.
func TestCompressKeepsEncoded(t *testing.T) {
	t.Parallel()
	encoded := bytes.Repeat([]byte{0x1f}, 3000)
	h := (&Server{}).compress(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/304" {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("Content-Encoding", "br")
		_, _ = w.Write(encoded)
	}))
	for _, path := range []string{"/", "/304"} {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.Header.Set("Accept-Encoding", "gzip, br")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if path == "/304" {
			if rec.Code != http.StatusNotModified || rec.Body.Len() != 0 || rec.Header().Get("Content-Encoding") != "" {
				t.Errorf("304 = %d, %d bytes, %v", rec.Code, rec.Body.Len(), rec.Header())
			}
			continue
		}
		if rec.Header().Get("Content-Encoding") != "br" || !bytes.Equal(rec.Body.Bytes(), encoded) {
			t.Errorf("encoded response = %v %d bytes, want it as it was", rec.Header(), rec.Body.Len())
		}
	}
}

// TestCompressSniffs checks that a large response without a Content-Type
// gets the type of its plain bytes, not of gzip.
func TestCompressSniffs(t *testing.T) {
	t.Parallel()
	h := (&Server{}).compress(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "<!DOCTYPE html><html>"+strings.Repeat("<p>hi</p>", 300))
	}))
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Header().Get("Content-Encoding") != "gzip" || rec.Header().Get("Content-Type") != "text/html; charset=utf-8" {
		t.Errorf("headers = %v, want gzip text/html", rec.Header())
	}
}
