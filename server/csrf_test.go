package server_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/graph"
)

// TestCSRFPrevention sends the login mutation (a POST) and the me query (a
// GET) with each Content-Type and header around the rule's edges: those a
// browser sends cross-origin without a preflight are refused with 400
// CSRF_PREVENTED before anything runs; the others pass on to gqlgen, which
// runs those of a media type it reads (JSON) and refuses the rest itself
// ("transport not supported").
func TestCSRFPrevention(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		method  string
		headers []string // name, value pairs
		refused bool
		runs    bool // gqlgen reads it and runs the operation
	}{
		{name: "POST application/json", method: http.MethodPost, headers: []string{"Content-Type", "application/json"}, runs: true},
		{name: "POST application/json with charset", method: http.MethodPost, headers: []string{"Content-Type", "application/json; charset=utf-8"}, runs: true},
		{name: "POST application/graphql-response+json", method: http.MethodPost, headers: []string{"Content-Type", "application/graphql-response+json"}},
		{name: "POST text/plain", method: http.MethodPost, headers: []string{"Content-Type", "text/plain"}, refused: true},
		{name: "POST text/plain with charset", method: http.MethodPost, headers: []string{"Content-Type", "text/plain;charset=UTF-8"}, refused: true},
		{name: "POST TEXT/PLAIN padded, broken parameter", method: http.MethodPost, headers: []string{"Content-Type", " TEXT/Plain ; nonsense"}, refused: true},
		{name: "POST text/plainx", method: http.MethodPost, headers: []string{"Content-Type", "text/plainx"}},
		{name: "POST form", method: http.MethodPost, headers: []string{"Content-Type", "application/x-www-form-urlencoded"}, refused: true},
		{name: "POST multipart", method: http.MethodPost, headers: []string{"Content-Type", "multipart/form-data; boundary=x"}, refused: true},
		{name: "POST without Content-Type", method: http.MethodPost, refused: true},
		{name: "POST empty Content-Type", method: http.MethodPost, headers: []string{"Content-Type", ""}},
		{name: "POST text/plain, empty Apollo-Require-Preflight", method: http.MethodPost, headers: []string{"Content-Type", "text/plain", "Apollo-Require-Preflight", ""}, refused: true},
		{name: "POST text/plain, Apollo-Require-Preflight", method: http.MethodPost, headers: []string{"Content-Type", "text/plain", "Apollo-Require-Preflight", "true"}},
		{name: "POST form, X-Apollo-Operation-Name", method: http.MethodPost, headers: []string{"Content-Type", "application/x-www-form-urlencoded", "X-Apollo-Operation-Name", "Login"}},
		{name: "GET without headers", method: http.MethodGet, refused: true},
		{name: "GET text/plain", method: http.MethodGet, headers: []string{"Content-Type", "text/plain"}, refused: true},
		{name: "GET application/json", method: http.MethodGet, headers: []string{"Content-Type", "application/json"}, runs: true},
		{name: "GET empty Apollo-Require-Preflight", method: http.MethodGet, headers: []string{"Apollo-Require-Preflight", ""}, refused: true},
		{name: "GET Apollo-Require-Preflight", method: http.MethodGet, headers: []string{"Apollo-Require-Preflight", "true"}, runs: true},
		{name: "GET X-Apollo-Operation-Name", method: http.MethodGet, headers: []string{"X-Apollo-Operation-Name", "Me"}, runs: true},
		{name: "GET other custom header", method: http.MethodGet, headers: []string{"X-Requested-With", "XMLHttpRequest"}, refused: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			var ran atomic.Int64
			b.resolver.login = func(context.Context, graph.LoginInput) (*obsqra.AuthPayload, error) {
				ran.Add(1)
				return nil, obsqra.Errorf(obsqra.EUNAUTHENTICATED, "wrong password")
			}
			b.resolver.me = func(context.Context) (*obsqra.User, error) {
				ran.Add(1)
				return nil, nil
			}
			var req *http.Request
			if tt.method == http.MethodGet {
				req = httptest.NewRequest(http.MethodGet, "/graphql?query="+url.QueryEscape(`{ me { id } }`), nil)
			} else {
				// Every body is JSON: the rule reads the headers only.
				req = httptest.NewRequest(http.MethodPost, "/graphql", strings.NewReader(`{"query":`+strconv.Quote(loginMutation)+`}`))
			}
			for i := 0; i+1 < len(tt.headers); i += 2 {
				req.Header[http.CanonicalHeaderKey(tt.headers[i])] = []string{tt.headers[i+1]}
			}
			rec := b.serve(req)
			if !tt.refused {
				want := int64(0)
				if tt.runs {
					want = 1
				}
				if strings.Contains(rec.Body.String(), "CSRF_PREVENTED") || ran.Load() != want {
					t.Errorf("%s %v = %d %s, resolver ran %d times; want it passed on and run %d times", tt.method, tt.headers, rec.Code, rec.Body, ran.Load(), want)
				}
				return
			}
			e := onlyError(t, decodeResult(t, rec))
			if rec.Code != http.StatusBadRequest || e.Extensions["code"] != "CSRF_PREVENTED" || !strings.Contains(e.Message, "Apollo-Require-Preflight") {
				t.Errorf("%s %v = %d %q %v, want 400 CSRF_PREVENTED", tt.method, tt.headers, rec.Code, e.Message, e.Extensions)
			}
			if ran.Load() != 0 {
				t.Errorf("%s %v: resolver ran %d times, want 0", tt.method, tt.headers, ran.Load())
			}
		})
	}
}

// TestCSRFPreventionPassesWebSocketUpgrades checks that an upgrade, which
// browsers never preflight and which carries no Content-Type, reaches the
// WebSocket transport (whose Origin check applies instead).
func TestCSRFPreventionPassesWebSocketUpgrades(t *testing.T) {
	t.Parallel()
	b := setupWS(t)
	b.dial(t, "graphql-transport-ws") // fails the test unless upgraded
}

// TestCSRFPreventionOnlyGraphQL checks that the other routes answer plain
// GETs.
func TestCSRFPreventionOnlyGraphQL(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, path := range []string{"/health", "/playground"} {
		if rec := b.serve(httptest.NewRequest(http.MethodGet, path, nil)); rec.Code != http.StatusOK {
			t.Errorf("GET %s = %d, want 200", path, rec.Code)
		}
	}
}
