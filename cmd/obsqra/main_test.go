package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/obsqratest"
)

// env sets a minimal development environment whose files live in a
// temporary directory. Tests using it cannot run in parallel (t.Setenv).
func env(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for k, v := range map[string]string{
		"ENVIRONMENT":  "development",
		"DATABASE_URL": "sqlite:" + filepath.Join(dir, "obsqra.db"),
		"DATA_DIR":     dir,
		"BCRYPT_COST":  "4",
		"API_HOST":     "127.0.0.1",
		"LOG_LEVEL":    "warn",
		// Tests run servers side by side: none takes the metrics' port
		// (TestMetrics gives its own a free one).
		"METRICS_ADDR": "off",
		// The simulated feed runs, with a short history to load.
		"MARKET_HISTORY_DAYS": "10",
	} {
		t.Setenv(k, v)
	}
	return dir
}

func TestRunRefusesBadConfiguration(t *testing.T) {
	tests := []struct {
		env  map[string]string
		want []string
	}{
		{map[string]string{"API_PORT": "abc"}, []string{"API_PORT", "abc"}},
		{map[string]string{"ENVIRONMENT": "staging"}, []string{"ENVIRONMENT", "staging"}},
		{map[string]string{"SHUTDOWN_TIMEOUT": "soon"}, []string{"SHUTDOWN_TIMEOUT", "soon"}},
		{map[string]string{"ENVIRONMENT": "production", "SECRET_KEY": ""}, []string{"SECRET_KEY"}},
		{map[string]string{"ENVIRONMENT": "production", "SECRET_KEY": strings.Repeat("k", 32), "CORS_ORIGINS": "*"}, []string{"CORS_ORIGINS"}},
		{map[string]string{"ENVIRONMENT": "production", "SECRET_KEY": strings.Repeat("k", 32), "BCRYPT_COST": "4"}, []string{"BCRYPT_COST"}},
		{map[string]string{"DATABASE_URL": "mysql://x"}, []string{"DATABASE_URL"}},
	}
	for _, tt := range tests {
		env(t)
		for k, v := range tt.env {
			t.Setenv(k, v)
		}
		var out bytes.Buffer
		err := run(context.Background(), []string{"serve"}, strings.NewReader(""), &out, &out)
		if err == nil {
			t.Errorf("run(serve) with %v succeeded, want a configuration error", tt.env)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("run(serve) with %v error = %q, want it to name %q", tt.env, err, w)
			}
		}
	}
}

func TestRunUnknownCommand(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"frobnicate"}, strings.NewReader(""), &out, &out); err == nil || !strings.Contains(err.Error(), "unknown command") {
		t.Fatalf("run(frobnicate) = %v, want unknown command", err)
	}
	if err := run(context.Background(), []string{"version"}, strings.NewReader(""), &out, &out); err != nil || strings.TrimSpace(out.String()) != version {
		t.Fatalf("run(version) = %v, output %q", err, out.String())
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestServeMigratePromote runs the binary's commands end to end on SQLite:
// serve (register over HTTP), stop on cancellation, migrate again (nothing
// to do), promote the user, serve again and see the role and that the
// development secret key survived the restart.
func TestServeMigratePromote(t *testing.T) {
	env(t)
	port := freePort(t)
	t.Setenv("API_PORT", strconv.Itoa(port))
	base := "http://127.0.0.1:" + strconv.Itoa(port)

	token := ""
	serveWhile(t, base, func() {
		body := post(t, base, "", `mutation { register(input: {email: "ops@example.com", password: "correct horse", fullName: "Ops"}) { auth { accessToken user { role } } } }`)
		var r struct {
			Data struct {
				Register struct {
					Auth struct {
						AccessToken string
						User        struct{ Role string }
					}
				}
			}
		}
		if err := json.Unmarshal(body, &r); err != nil || r.Data.Register.Auth.User.Role != "USER" {
			t.Fatalf("register = %s (%v)", body, err)
		}
		token = r.Data.Register.Auth.AccessToken
	})

	var out bytes.Buffer
	if err := run(context.Background(), []string{"migrate"}, strings.NewReader(""), &out, &out); err != nil {
		t.Fatalf("run(migrate) = %v", err)
	}
	if err := run(context.Background(), []string{"user", "promote", "OPS@example.com"}, strings.NewReader(""), &out, &out); err != nil {
		t.Fatalf("run(user promote) = %v", err)
	}
	if err := run(context.Background(), []string{"user", "promote", "nobody@example.com"}, strings.NewReader(""), &out, &out); err == nil || !strings.Contains(err.Error(), "nobody@example.com") {
		t.Fatalf("run(user promote unknown) = %v, want an error naming the email", err)
	}

	serveWhile(t, base, func() {
		// The token issued before the restart still works: the generated
		// development key was kept.
		body := post(t, base, token, `{ me { role } }`)
		if !strings.Contains(string(body), `"role":"ADMIN"`) {
			t.Fatalf("me after promote and restart = %s", body)
		}
	})
}

// serveWhile runs `obsqra serve` until fn returns, then stops it as SIGTERM
// would, checks that it stopped cleanly, and returns what it logged.
func serveWhile(t *testing.T, base string, fn func()) []byte {
	t.Helper()
	out := new(obsqratest.Buffer)
	serveLogging(t, base, out, fn)
	return []byte(out.String())
}

// serveLogging is serveWhile with serve's output (its log) written to out.
func serveLogging(t *testing.T, base string, out *obsqratest.Buffer, fn func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"serve"}, strings.NewReader(""), out, out) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(base + "/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case err := <-done:
			t.Fatalf("serve stopped before it was ready: %v\n%s", err, out.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("serve not ready after 20s\n%s", out.String())
		}
	}
	fn()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve returned %v after cancellation", err)
	}
}

func post(t *testing.T, base, token, query string, headers ...string) []byte {
	t.Helper()
	return postRequest(t, base, token, map[string]any{"query": query}, headers...)
}

// postRequest POSTs a GraphQL request (query, variables…) with token and
// headers (name, value pairs), and returns the response's body.
func postRequest(t *testing.T, base, token string, request map[string]any, headers ...string) []byte {
	t.Helper()
	b, _ := json.Marshal(request)
	req, _ := http.NewRequest(http.MethodPost, base+"/graphql", bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	return buf.Bytes()
}

// TestServeTrustedProxies checks that TRUSTED_PROXIES reaches the server:
// with the test (at 127.0.0.1) as the trusted proxy, the failed sign-ins of
// one forwarded client use up its address limit and not another's.
func TestServeTrustedProxies(t *testing.T) {
	env(t)
	port := freePort(t)
	t.Setenv("API_PORT", strconv.Itoa(port))
	t.Setenv("TRUSTED_PROXIES", "127.0.0.1, ::1")
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	login := func(i int, client string) string {
		body := post(t, base, "", fmt.Sprintf(`mutation { login(input: {email: "guess%d@example.com", password: "x"}) { accessToken } }`, i),
			"X-Forwarded-For", client)
		var r struct {
			Errors []struct{ Extensions struct{ Code string } }
		}
		if err := json.Unmarshal(body, &r); err != nil || len(r.Errors) == 0 {
			t.Fatalf("login = %s (%v), want an error", body, err)
		}
		return r.Errors[0].Extensions.Code
	}
	serveWhile(t, base, func() {
		for i := range 20 { // account.DefaultThrottlePolicy().AddressLimit
			if code := login(i, "198.51.100.1"); code != "UNAUTHENTICATED" {
				t.Fatalf("login #%d from 198.51.100.1 = %s, want UNAUTHENTICATED", i+1, code)
			}
		}
		if code := login(20, "198.51.100.1"); code != "RATE_LIMITED" {
			t.Fatalf("login past the limit from 198.51.100.1 = %s, want RATE_LIMITED", code)
		}
		if code := login(21, "198.51.100.2"); code != "UNAUTHENTICATED" {
			t.Fatalf("login from 198.51.100.2 = %s, want UNAUTHENTICATED (its own limit)", code)
		}
	})
}

func TestUserMessage(t *testing.T) {
	t.Parallel()
	err := fmt.Errorf("series x: %w", obsqra.Errorf(obsqra.EINVALID, "the CSV is empty"))
	if got := userMessage(err); got != "series x: the CSV is empty" {
		t.Errorf("userMessage = %q, want %q", got, "series x: the CSV is empty")
	}
	if got := userMessage(errors.New("plain")); got != "plain" {
		t.Errorf("userMessage(plain) = %q", got)
	}
}

// TestMLIsWired: `obsqra ml` reaches mlcli (whose own tests cover the
// commands).
func TestMLIsWired(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	if err := run(context.Background(), []string{"ml", "allocate"}, strings.NewReader(`{"risks":[1],"apys":[1]}`+"\n"), &out, &out); err != nil || out.String() != `{"weights":[10000]}`+"\n" {
		t.Errorf("run(ml allocate) = %v, %q; want the weights line", err, out.String())
	}
}

func TestRunRefusesBadTrustedDocuments(t *testing.T) {
	dir := env(t)
	bad := filepath.Join(dir, "persisted-documents.json")
	if err := os.WriteFile(bad, []byte(`{"`+strings.Repeat("0", 64)+`":"{ protocols { id } }"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{bad, filepath.Join(dir, "missing.json")} {
		t.Setenv("TRUSTED_DOCUMENTS", path)
		var out bytes.Buffer
		err := run(context.Background(), []string{"serve"}, strings.NewReader(""), &out, &out)
		if err == nil || !strings.Contains(err.Error(), "TRUSTED_DOCUMENTS") {
			t.Errorf("run(serve) with TRUSTED_DOCUMENTS=%s = %v, want an error naming TRUSTED_DOCUMENTS", path, err)
		}
	}
}

func TestRunSchema(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"schema"}, strings.NewReader(""), &out, &out); err != nil {
		t.Fatalf("run(schema) = %v", err)
	}
	if _, err := gqlparser.LoadSchema(&ast.Source{Name: "schema.graphql", Input: out.String()}); err != nil {
		t.Fatalf("run(schema) printed %d bytes that do not load as a schema: %v", out.Len(), err)
	}
	if !strings.Contains(out.String(), "type Query") {
		t.Errorf("run(schema) output has no type Query")
	}
}
