package rest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// docsRequireClientsEnv makes the browser test required: set to 1, as .ci/run
// does after installing Chromium, a missing chromium fails
// TestDocsChromium instead of skipping it.
const docsRequireClientsEnv = "REQUIRE_CLIENTS"

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

// docsChromium returns the Chromium on PATH, or skips the test (fails it
// under REQUIRE_CLIENTS=1).
func docsChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	if os.Getenv(docsRequireClientsEnv) == "1" {
		t.Fatalf("no chromium on PATH (%s=1; apt-get install -y chromium)", docsRequireClientsEnv)
	}
	t.Skipf("no chromium on PATH (apt-get install -y chromium; %s=1 fails instead of skipping)", docsRequireClientsEnv)
	return ""
}

// docsRunChromium runs headless Chromium offline on url with extra flags
// and a fresh profile in dir, and returns its standard output and error. It
// may run on any goroutine.
func docsRunChromium(chromium, dir, url string, flags ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := append([]string{
		"--headless", "--no-sandbox", "--disable-background-networking",
		"--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
		"--disable-extensions", "--disable-component-update", "--disable-sync",
		"--enable-logging=stderr", "--v=0",
		"--user-data-dir=" + dir,
	}, flags...)
	cmd := exec.CommandContext(ctx, chromium, append(args, url)...)
	// Chromium shuts its helper processes down on SIGTERM; killed, it
	// would leave them behind.
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 5 * time.Second
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return "", "", fmt.Errorf("%s %s: %w; chromium said:\n%s", chromium, strings.Join(flags, " "), err, errOut.String())
	}
	return out.String(), errOut.String(), nil
}

// TestDocsChromium renders the reference page in headless Chromium, offline,
// against a fixture spec: the vendored Redoc runs under the page's
// Content-Security-Policy and lists the spec's operations.
func TestDocsChromium(t *testing.T) {
	t.Parallel()
	chromium := docsChromium(t)

	var mu sync.Mutex
	var requests []string
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/docs", serveDocs)
	mux.HandleFunc("GET /api/v1/docs/assets/{file}", serveDocsAsset)
	mux.HandleFunc("GET /api/v1/openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, docsFixtureSpec)
	})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		requests = append(requests, r.Method+" "+r.URL.Path)
		mu.Unlock()
		mux.ServeHTTP(w, r)
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
		dom, stderr, domErr = docsRunChromium(chromium, domProfile, page,
			"--dump-dom", "--virtual-time-budget=10000", "--window-size=1280,900")
	})
	wg.Go(func() {
		_, _, shotErr = docsRunChromium(chromium, shotProfile, page,
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
