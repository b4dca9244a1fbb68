package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/graph"
	"github.com/obsqra/obsqra/server"
)

// requireClientsEnv makes the browser tests required: set to 1, as .ci/run
// does after installing Chromium, a missing chromium fails TestChromium and
// TestDocsChromium instead of skipping them (cmd/obsqra's TestClients reads
// it for node).
const requireClientsEnv = "REQUIRE_CLIENTS"

// chromiumPage is the page served from the second origin. Its script calls
// the API at {{API}} the ways a frontend and an attacker's page do, and
// posts what it saw to /result on its own origin.
const chromiumPage = `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>cross-origin</title></head><body><script>
const api = "{{API}}/graphql";
const login = 'mutation { login(input: {email: "ada@example.com", password: "pw"}) { accessToken } }';
const tracing = {
  "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
  "tracestate": "obsqra=1",
  "baggage": "userId=alice",
  "sentry-trace": "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
};
const out = {};
async function call(name, url, init) {
  try {
    const r = await fetch(url, init);
    const text = await r.text();
    let body = null;
    try { body = JSON.parse(text); } catch (e) {}
    // A large body is reported by its size and whether it has data.
    out[name] = {status: r.status, size: text.length, body: text.length > 4096 ? {hasData: !!(body && body.data)} : body};
  } catch (e) {
    out[name] = {error: String(e)};
  }
}
async function run() {
  await call("json", api, {method: "POST", headers: {
    "Content-Type": "application/json",
    "Authorization": "Bearer good-token",
    "apollographql-client-name": "obsqra-web",
    "apollographql-client-version": "1.2.3",
    ...tracing,
  }, body: JSON.stringify({query: "{ me { email } }"})});
  await call("introspection", api, {method: "POST", headers: {"Content-Type": "application/json", ...tracing},
    body: JSON.stringify({query: "{ __schema { types { name kind description fields { name description type { name kind ofType { name kind } } } } } }"})});
  await call("textPlain", api, {method: "POST", headers: {"Content-Type": "text/plain"}, body: JSON.stringify({query: login})});
  await call("form", api, {method: "POST", body: new URLSearchParams({query: login})});
  const form = new FormData();
  form.append("query", login);
  await call("multipart", api, {method: "POST", body: form});
  await call("get", api + "?query=" + encodeURIComponent("{ __typename }"), {});
  await call("getPreflighted", api + "?query=" + encodeURIComponent("{ __typename }"), {headers: {"Apollo-Require-Preflight": "true"}});
}
run().catch(e => { out.fatal = String(e); }).finally(() => fetch("/result", {method: "POST", body: JSON.stringify(out)}));
</script></body></html>`

// chromiumCall is what the page reports of one fetch.
type chromiumCall struct {
	Status int             `json:"status"`
	Size   int             `json:"size"`
	Body   json.RawMessage `json:"body"`
	Error  string          `json:"error"`
}

// chromiumBinary returns the Chromium on PATH, or skips the test (fails it
// under REQUIRE_CLIENTS=1).
func chromiumBinary(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	if os.Getenv(requireClientsEnv) == "1" {
		t.Fatalf("no chromium on PATH (%s=1; apt-get install -y chromium)", requireClientsEnv)
	}
	t.Skipf("no chromium on PATH (apt-get install -y chromium; %s=1 fails instead of skipping)", requireClientsEnv)
	return ""
}

// chromiumCommand is headless Chromium on url, with a fresh profile in dir
// and extra flags, offline but for the pages it is sent to, and stopped
// when ctx is done.
func chromiumCommand(ctx context.Context, chromium, dir, url string, flags ...string) *exec.Cmd {
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
	cmd.WaitDelay = 10 * time.Second
	return cmd
}

// runChromium runs chromiumCommand to its end, within 30 seconds, and
// returns its standard output and error. It may run on any goroutine.
func runChromium(chromium, dir, url string, flags ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := chromiumCommand(ctx, chromium, dir, url, flags...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return "", "", fmt.Errorf("%s %s: %w; chromium said:\n%s", chromium, strings.Join(flags, " "), err, errOut.String())
	}
	return out.String(), errOut.String(), nil
}

// TestChromium loads a page from one origin in headless Chromium that
// calls the API on another, allowed by CORSOrigins: the fetch with
// Apollo's and the tracing headers passes its preflight and reads its
// answer, the introspection result arrives gzipped and is read, and the
// requests a page can send without a preflight (text/plain, form and
// multipart POSTs of a mutation, a bare GET) are refused with
// CSRF_PREVENTED and run nothing.
func TestChromium(t *testing.T) {
	t.Parallel()
	chromium := chromiumBinary(t)

	results := make(chan []byte, 1)
	var pageHTML atomic.Value
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/":
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_, _ = io.WriteString(w, pageHTML.Load().(string))
		case r.Method == http.MethodPost && r.URL.Path == "/result":
			body, _ := io.ReadAll(r.Body)
			select {
			case results <- body:
			default:
			}
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(page.Close)

	b := setup(t, func(c *server.Config) { c.CORSOrigins = []string{page.URL} })
	var logins atomic.Int64
	b.resolver.login = func(context.Context, graph.LoginInput) (*obsqra.AuthPayload, error) {
		logins.Add(1)
		return nil, obsqra.Errorf(obsqra.EUNAUTHENTICATED, "wrong password")
	}
	// seen records each API request's method and its answer's encoding.
	var mu sync.Mutex
	var seen []string
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.handler.ServeHTTP(w, r)
		mu.Lock()
		seen = append(seen, r.Method+" "+w.Header().Get("Content-Encoding"))
		mu.Unlock()
	}))
	t.Cleanup(api.Close)
	pageHTML.Store(strings.ReplaceAll(chromiumPage, "{{API}}", api.URL))

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := chromiumCommand(ctx, chromium, t.TempDir(), page.URL+"/")
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", chromium, err)
	}
	var raw []byte
	select {
	case raw = <-results:
	case <-ctx.Done():
	}
	cancel()
	_ = cmd.Wait()
	if raw == nil {
		t.Fatalf("the page reported nothing within 90s; chromium said:\n%s", stderr.String())
	}
	var got map[string]chromiumCall
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatalf("page result %s: %v", raw, err)
	}
	t.Logf("page saw: %s", raw)

	t.Run("apollo and tracing headers", func(t *testing.T) {
		c := got["json"]
		if c.Status != http.StatusOK || !strings.Contains(string(c.Body), `"email":"ada@example.com"`) {
			t.Errorf("POST with Apollo and tracing headers = %+v, want ada's email", c)
		}
		mu.Lock()
		defer mu.Unlock()
		if !strings.Contains(strings.Join(seen, ","), "OPTIONS") {
			t.Errorf("API saw %q, want a preflight", seen)
		}
	})
	t.Run("gzip", func(t *testing.T) {
		c := got["introspection"]
		if c.Status != http.StatusOK || c.Size < 10000 || string(c.Body) != `{"hasData":true}` {
			t.Errorf("introspection = %+v, want a large result with data", c)
		}
		mu.Lock()
		defer mu.Unlock()
		if !strings.Contains(strings.Join(seen, ","), "POST gzip") {
			t.Errorf("API answered %q, want a gzipped POST", seen)
		}
	})
	t.Run("simple requests refused", func(t *testing.T) {
		for _, name := range []string{"textPlain", "form", "multipart", "get"} {
			c := got[name]
			if c.Status != http.StatusBadRequest || !strings.Contains(string(c.Body), `"code":"CSRF_PREVENTED"`) {
				t.Errorf("%s = %+v, want 400 CSRF_PREVENTED", name, c)
			}
		}
		if n := logins.Load(); n != 0 {
			t.Errorf("login ran %d times, want 0", n)
		}
	})
	t.Run("preflighted GET", func(t *testing.T) {
		c := got["getPreflighted"]
		if c.Status != http.StatusOK || string(c.Body) != `{"data":{"__typename":"Query"}}` {
			t.Errorf("GET with Apollo-Require-Preflight = %+v, want __typename", c)
		}
	})
}
