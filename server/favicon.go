package server

import (
	_ "embed"
	"net/http"
	"strconv"
)

// favicon is a 16×16 icon (a teal ring on a dark disc, PNG inside ICO,
// 165 bytes), so that the requests browsers make for /favicon.ico, from
// the playground or a URL typed in the address bar, are answered instead
// of logged as 404s.
//
//go:embed favicon.ico
var favicon []byte

// serveFavicon answers /favicon.ico with the embedded icon, cacheable for a
// day.
func serveFavicon(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "image/x-icon")
	h.Set("Content-Length", strconv.Itoa(len(favicon)))
	h.Set("Cache-Control", "public, max-age=86400")
	_, _ = w.Write(favicon)
}
