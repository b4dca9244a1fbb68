package server_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHealth(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.db.set(errors.New("database is down"), nil)

	rec := b.serve(httptest.NewRequest(http.MethodGet, "/health", nil))

	want := `{"status":"healthy","service":"obsqra-backend","version":"v1.2.3-test"}` + "\n"
	if rec.Code != http.StatusOK || rec.Body.String() != want {
		t.Errorf("GET /health = %d %q, want 200 %q", rec.Code, rec.Body, want)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	if n := b.db.calls.Load(); n != 0 {
		t.Errorf("GET /health pinged the database %d times, want 0", n)
	}
}

func TestReady(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		pingErr    error
		ping       func(ctx context.Context) error
		shutdown   bool
		wantStatus int
		wantBody   string
	}{
		{name: "database answers", wantStatus: http.StatusOK, wantBody: `{"status":"ready"}`},
		{
			name:       "database fails",
			pingErr:    errors.New("dial tcp 10.0.0.5:5432: connection refused"),
			wantStatus: http.StatusServiceUnavailable,
			wantBody:   `{"status":"unavailable","reason":"database unavailable"}`,
		},
		{
			// The ping gets ~2s before readiness gives up on it.
			name:       "database hangs",
			ping:       func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() },
			wantStatus: http.StatusServiceUnavailable,
			wantBody:   `{"status":"unavailable","reason":"database unavailable"}`,
		},
		{
			name:       "shutting down",
			shutdown:   true,
			wantStatus: http.StatusServiceUnavailable,
			wantBody:   `{"status":"unavailable","reason":"shutting down"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			b.db.set(tt.pingErr, tt.ping)
			if tt.shutdown {
				b.srv.SetShuttingDown()
				b.srv.SetShuttingDown() // twice is fine
			}

			rec := b.serve(httptest.NewRequest(http.MethodGet, "/ready", nil))

			if rec.Code != tt.wantStatus || strings.TrimSpace(rec.Body.String()) != tt.wantBody {
				t.Errorf("GET /ready = %d %s, want %d %s", rec.Code, rec.Body, tt.wantStatus, tt.wantBody)
			}
			if tt.pingErr != nil && !strings.Contains(b.logs.String(), "connection refused") {
				t.Errorf("the ping error is not logged; logs:\n%s", b.logs)
			}
		})
	}
}
