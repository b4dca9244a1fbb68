package main

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// healthcheck runs `obsqra healthcheck args…` as main would and returns
// what it printed and the line main would print for its error ("" when it
// succeeded).
func healthcheck(t *testing.T, ctx context.Context, args ...string) (stdout, failure string) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(ctx, append([]string{"healthcheck"}, args...), strings.NewReader(""), &out, &errOut)
	if errOut.Len() > 0 {
		t.Errorf("healthcheck %v wrote to stderr: %q", args, errOut.String())
	}
	if err != nil {
		failure = userMessage(err)
		if strings.Contains(failure, "\n") {
			t.Errorf("healthcheck %v failed with more than one line: %q", args, failure)
		}
	}
	return out.String(), failure
}

// TestHealthcheck runs `obsqra healthcheck` against a real `obsqra serve`:
// healthy (on /health, and on /ready with -ready) while it serves, also
// when API_HOST is the wildcard the container listens on, and unhealthy,
// with exit status 1 through main, once it has stopped and its port is
// closed.
func TestHealthcheck(t *testing.T) {
	dir := env(t)
	port := freePort(t)
	t.Setenv("API_PORT", strconv.Itoa(port))
	t.Setenv("MARKET_SOURCE", "none")
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	ctx := context.Background()

	serveWhile(t, base, func() {
		for _, tt := range []struct {
			args []string
			want string
		}{
			{nil, "healthy: GET " + base + "/health answered 200\n"},
			{[]string{"-ready"}, "healthy: GET " + base + "/ready answered 200\n"},
		} {
			if out, failure := healthcheck(t, ctx, tt.args...); failure != "" || out != tt.want {
				t.Errorf("healthcheck %v = %q, failure %q; want %q", tt.args, out, failure, tt.want)
			}
		}
		// The server read its configuration already; the probe reads it
		// again, as the image's HEALTHCHECK does in a container that
		// listens on every interface.
		t.Setenv("API_HOST", "0.0.0.0")
		if out, failure := healthcheck(t, ctx); failure != "" || !strings.Contains(out, base+"/health") {
			t.Errorf("healthcheck with API_HOST=0.0.0.0 = %q, failure %q; want healthy at %s", out, failure, base)
		}
	})

	for _, args := range [][]string{nil, {"-ready"}} {
		out, failure := healthcheck(t, ctx, args...)
		if out != "" || !strings.HasPrefix(failure, "unhealthy: GET "+base+"/") || !strings.Contains(failure, "connection refused") {
			t.Errorf("healthcheck %v after serve stopped = %q, failure %q; want unhealthy, connection refused", args, out, failure)
		}
	}
	// The development secret key serve generated is the one there: the
	// probe reads the configuration without making sure of a key.
	if _, err := os.Stat(filepath.Join(dir, "secret_key")); err != nil {
		t.Errorf("secret key of serve: %v", err)
	}
}

// TestHealthcheckClosedPort: nothing listens on the port, and the probe
// creates no secret key in DATA_DIR on its way (it never needs one).
func TestHealthcheckClosedPort(t *testing.T) {
	dir := env(t)
	port := freePort(t)
	t.Setenv("API_PORT", strconv.Itoa(port))
	out, failure := healthcheck(t, context.Background())
	want := "unhealthy: GET http://127.0.0.1:" + strconv.Itoa(port) + "/health: dial tcp 127.0.0.1:" + strconv.Itoa(port) + ": connect: connection refused"
	if out != "" || failure != want {
		t.Errorf("healthcheck on a closed port = %q, failure %q; want %q", out, failure, want)
	}
	if _, err := os.Stat(filepath.Join(dir, "secret_key")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("healthcheck left a secret key in DATA_DIR (stat: %v)", err)
	}
}

// TestHealthcheckAnswers: a server that answers something other than 200
// is unhealthy, with the status and the reason /ready gives; one that does
// not answer is unhealthy once the probe's deadline passes; bad arguments
// are refused with the usage.
func TestHealthcheckAnswers(t *testing.T) {
	env(t)
	hang := make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/health":
			w.WriteHeader(http.StatusInternalServerError)
		case "/ready":
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(`{"status":"unavailable","reason":"database unavailable"}`))
		case "/hang":
			<-hang
		}
	}))
	defer ts.Close()
	defer close(hang) // before ts.Close, which waits for the handlers
	u, _ := url.Parse(ts.URL)
	t.Setenv("API_PORT", u.Port())
	ctx := context.Background()

	for _, tt := range []struct {
		args []string
		want string
	}{
		{nil, "unhealthy: GET " + ts.URL + "/health: 500 Internal Server Error"},
		{[]string{"-ready"}, "unhealthy: GET " + ts.URL + "/ready: 503 Service Unavailable (database unavailable)"},
		{[]string{"extra"}, healthcheckUsage},
		{[]string{"-live"}, healthcheckUsage},
	} {
		if out, failure := healthcheck(t, ctx, tt.args...); out != "" || failure != tt.want {
			t.Errorf("healthcheck %v = %q, failure %q; want %q", tt.args, out, failure, tt.want)
		}
	}

	// The probe's own deadline is healthcheckTimeout; a shorter one from
	// the caller stands for it here.
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := probe(short, ts.URL+"/hang"); err == nil || !strings.Contains(err.Error(), "no answer within") {
		t.Errorf("probe of a server that does not answer = %v, want no answer within the deadline", err)
	}
	if took := time.Since(start); took > healthcheckTimeout {
		t.Errorf("probe of a server that does not answer took %s", took)
	}
}

// TestProbeHost: a server listening on every interface is probed on the
// loopback address, one listening on one interface on that interface.
func TestProbeHost(t *testing.T) {
	t.Parallel()
	for host, want := range map[string]string{
		"0.0.0.0": "127.0.0.1", "::": "127.0.0.1", "": "127.0.0.1",
		"127.0.0.1": "127.0.0.1", "10.1.2.3": "10.1.2.3", "::1": "::1", "localhost": "localhost",
	} {
		if got := probeHost(host); got != want {
			t.Errorf("probeHost(%q) = %q, want %q", host, got, want)
		}
	}
}
