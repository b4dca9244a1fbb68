package server

import (
	"net/http"
	"slices"
	"strings"
)

// CORS settings of preflight answers.
const (
	// PUT is the REST API's (PUT /api/v1/users/preferences).
	corsAllowMethods = "GET, POST, PUT, OPTIONS"
	// A page may read its request id and its budget: the rate-limit
	// fields and, when refused, Retry-After (none is CORS-safelisted).
	corsExposeHeaders = "X-Request-ID, Retry-After, RateLimit, RateLimit-Policy"
	// corsMaxAge is how long, in seconds, a browser may reuse a preflight
	// answer: two hours, the most Chromium accepts (Firefox takes up to a
	// day). A browser caches the answer per header name, so a header added
	// to the list later is preflighted again at its first use, not refused
	// for two hours.
	corsMaxAge = "7200"
)

// corsAllowHeaders are the request headers every configured origin may send:
// those of the API (Content-Type, Authorization, X-Request-ID), those Apollo
// Client sends (its client name and version; the two headers of CSRF
// prevention, see csrf.go), and those of distributed tracing, which a
// frontend's OpenTelemetry or Sentry instrumentation adds to every fetch
// (W3C Trace Context and Baggage, Sentry's own). A header missing here makes
// the browser fail the whole request ("TypeError: Failed to fetch"), so the
// list errs on the side of what frontends send. Config.CORSAllowedHeaders
// adds to it.
var corsAllowHeaders = []string{
	"Authorization",
	"Content-Type",
	"X-Request-ID",
	"Apollo-Require-Preflight",
	"X-Apollo-Operation-Name",
	"Apollographql-Client-Name",
	"Apollographql-Client-Version",
	"Traceparent",
	"Tracestate",
	"Baggage",
	"Sentry-Trace",
}

// allowHeaders returns the Access-Control-Allow-Headers value: the fixed
// list, then the configured extra names that are not already in it (names
// compare without case).
func allowHeaders(extra []string) string {
	names := slices.Clone(corsAllowHeaders)
	for _, name := range extra {
		name = strings.TrimSpace(name)
		if name == "" || slices.ContainsFunc(names, func(n string) bool { return strings.EqualFold(n, name) }) {
			continue
		}
		names = append(names, name)
	}
	return strings.Join(names, ", ")
}

// corsAllowed reports whether CORSOrigins lets the browser origin call the
// API (over HTTP, or upgrade to a WebSocket).
func (s *Server) corsAllowed(origin string) bool {
	return origin != "" && (slices.Contains(s.cfg.CORSOrigins, "*") || slices.Contains(s.cfg.CORSOrigins, origin))
}

// cors lets the configured browser origins call the API. Other origins get
// no Access-Control-Allow-Origin, so browsers keep their responses from
// scripts. No credentials are allowed: the API authenticates with a bearer
// token, not cookies.
func (s *Server) cors(next http.Handler) http.Handler {
	wildcard := slices.Contains(s.cfg.CORSOrigins, "*")
	headers := allowHeaders(s.cfg.CORSAllowedHeaders)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Add("Vary", "Origin")
		origin := r.Header.Get("Origin")
		ok := s.corsAllowed(origin)
		if ok {
			if wildcard {
				h.Set("Access-Control-Allow-Origin", "*")
			} else {
				h.Set("Access-Control-Allow-Origin", origin)
			}
		}

		if r.Method == http.MethodOptions && origin != "" && r.Header.Get("Access-Control-Request-Method") != "" {
			h.Add("Vary", "Access-Control-Request-Method")
			h.Add("Vary", "Access-Control-Request-Headers")
			if ok {
				h.Set("Access-Control-Allow-Methods", corsAllowMethods)
				h.Set("Access-Control-Allow-Headers", headers)
				h.Set("Access-Control-Max-Age", corsMaxAge)
			}
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if ok {
			h.Set("Access-Control-Expose-Headers", corsExposeHeaders)
		}
		next.ServeHTTP(w, r)
	})
}
