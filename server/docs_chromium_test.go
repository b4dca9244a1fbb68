package server_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/obsqra/obsqra/server"
)

// docsFixtureSpec is a small OpenAPI 3.1 document in the shape of the REST
// API's: a query parameter, a nullable 3.1 type list, a JSON request body.
const docsFixtureSpec = `{
  "openapi": "3.1.0",
  "info": {"title": "Obsqra REST API", "version": "1.0.0", "description": "The fixture of the reference page's browser test."},
  "servers": [{"url": "/api/v1"}],
  "paths": {
    "/api/v1/auth/me": {
      "get": {
        "operationId": "authMe",
        "summary": "Who is signed in",
        "tags": ["auth"],
        "parameters": [
          {"name": "token", "in": "query", "required": false, "description": "An access token, instead of the Authorization header.", "schema": {"type": "string"}}
        ],
        "responses": {
          "200": {
            "description": "The signed-in user.",
            "content": {"application/json": {"schema": {
              "type": "object",
              "required": ["id", "email"],
              "properties": {
                "id": {"type": "string"},
                "email": {"type": "string", "format": "email"},
                "walletAddress": {"type": ["string", "null"], "description": "The linked Starknet wallet, if any."}
              }
            }}}
          },
          "401": {"description": "Not signed in.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}
        }
      }
    },
    "/api/v1/auth/login": {
      "post": {
        "operationId": "authLogin",
        "summary": "Sign in with email and password",
        "tags": ["auth"],
        "requestBody": {
          "required": true,
          "content": {"application/json": {"schema": {
            "type": "object",
            "required": ["email", "password"],
            "properties": {
              "email": {"type": "string", "format": "email"},
              "password": {"type": "string", "format": "password"}
            }
          }}}
        },
        "responses": {
          "200": {
            "description": "Signed in.",
            "content": {"application/json": {"schema": {
              "type": "object",
              "properties": {"accessToken": {"type": "string"}, "expiresAt": {"type": "string", "format": "date-time"}}
            }}}
          },
          "401": {"description": "Wrong email or password.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}
        }
      }
    }
  },
  "components": {
    "schemas": {
      "Problem": {"type": "object", "properties": {"detail": {"type": "string"}}}
    }
  }
}`

// fixtureREST stands for the REST API (rest.API): it serves the fixture
// document at /api/v1/openapi.json, and 404 in the API's shape elsewhere.
var fixtureREST = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if r.URL.Path != "/api/v1/openapi.json" {
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"detail":"Not Found"}`)
		return
	}
	_, _ = io.WriteString(w, docsFixtureSpec)
})

// TestDocsChromium renders the reference page of a server with a REST API
// in headless Chromium, offline, against a fixture spec: the vendored Redoc
// runs under the page's Content-Security-Policy and lists the spec's
// operations.
func TestDocsChromium(t *testing.T) {
	t.Parallel()
	chromium := chromiumBinary(t)

	b := setup(t, func(c *server.Config) { c.REST = fixtureREST })
	var mu sync.Mutex
	var requests []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		requests = append(requests, r.Method+" "+r.URL.Path)
		mu.Unlock()
		b.handler.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)

	shot := filepath.Join(t.TempDir(), "docs.png")
	if path := os.Getenv("DOCS_SCREENSHOT"); path != "" {
		// DOCS_SCREENSHOT=path keeps the screenshot there.
		shot = path
	}
	page := srv.URL + "/api/v1/docs"
	// The DOM and the screenshot are taken by two Chromiums side by side.
	domProfile, shotProfile := t.TempDir(), t.TempDir()
	var dom, stderr string
	var domErr, shotErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		dom, stderr, domErr = runChromium(chromium, domProfile, page,
			"--dump-dom", "--virtual-time-budget=10000", "--window-size=1280,900")
	})
	wg.Go(func() {
		_, _, shotErr = runChromium(chromium, shotProfile, page,
			"--screenshot="+shot, "--virtual-time-budget=10000", "--window-size=1280,900", "--hide-scrollbars")
	})
	wg.Wait()
	if domErr != nil || shotErr != nil {
		t.Fatal(errors.Join(domErr, shotErr))
	}
	if fi, err := os.Stat(shot); err != nil || fi.Size() < 10000 {
		t.Errorf("screenshot %s: %v, want a PNG of the page", shot, err)
	} else {
		t.Logf("screenshot in %s (%d bytes)", shot, fi.Size())
	}

	for _, want := range []string{
		"/api/v1/auth/me", "/api/v1/auth/login",
		"Who is signed in", "Sign in with email and password",
		"walletAddress", "token", "Obsqra REST API",
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("rendered page lacks %q", want)
		}
	}
	if strings.Contains(dom, "Loading the Obsqra REST API reference") || strings.Contains(dom, "could not be rendered") {
		t.Errorf("Redoc did not render the spec")
	}
	if strings.Contains(stderr, "Content Security Policy") {
		t.Errorf("the page broke its Content-Security-Policy:\n%s", docsCSPLines(stderr))
	}
	mu.Lock()
	defer mu.Unlock()
	got := strings.Join(requests, ",")
	for _, want := range []string{"GET /api/v1/docs/assets/redoc.standalone.js", "GET /api/v1/docs/assets/docs.js", "GET /api/v1/openapi.json"} {
		if !strings.Contains(got, want) {
			t.Errorf("server saw %s, want %s", got, want)
		}
	}
	if strings.Contains(dom, "cdn.") {
		t.Errorf("rendered page refers to a CDN")
	}
	if t.Failed() {
		t.Logf("DOM (%d bytes):\n%.4000s\nchromium said:\n%.4000s", len(dom), dom, stderr)
	}
}

// docsCSPLines keeps the lines of Chromium's log that report the policy.
func docsCSPLines(log string) string {
	var out []string
	for line := range strings.Lines(log) {
		if strings.Contains(line, "Content Security Policy") {
			out = append(out, strings.TrimSpace(line))
		}
	}
	return strings.Join(out, "\n")
}
