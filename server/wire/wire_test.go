package wire_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/obsqra/obsqra/server/wire"
)

func TestBearerToken(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		header, token string
		ok            bool
	}{
		{"Bearer abc.def", "abc.def", true},
		{"bearer abc", "abc", true},
		{"BEARER  abc ", "abc", true},
		{"Bearer", "", false},
		{"Bearer ", "", false},
		{"Basic abc", "", false},
		{"Bearer a b", "", false},
		{"Bearer a\tb", "", false},
		{"", "", false},
	} {
		token, ok := wire.BearerToken(tt.header)
		if token != tt.token || ok != tt.ok {
			t.Errorf("BearerToken(%q) = %q, %v, want %q, %v", tt.header, token, ok, tt.token, tt.ok)
		}
	}
}

func TestWriteJSON(t *testing.T) {
	t.Parallel()
	rec := httptest.NewRecorder()
	wire.WriteJSON(rec, http.StatusBadRequest, wire.Response(wire.Internal("req-1", "")))
	if rec.Code != http.StatusBadRequest || rec.Header().Get("Content-Type") != "application/json" || rec.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("status %d, headers %v", rec.Code, rec.Header())
	}
	want := `{"errors":[{"message":"internal error","extensions":{"code":"INTERNAL_SERVER_ERROR","requestId":"req-1"}}]}` + "\n"
	if rec.Body.String() != want {
		t.Errorf("body %s, want %s", rec.Body, want)
	}
}

// TestInternalTraced: a traced request's internal error quotes its trace
// id beside its request id; an untraced one's has no traceId.
func TestInternalTraced(t *testing.T) {
	t.Parallel()
	e := wire.Internal("req-1", "4bf92f3577b34da6a3ce929d0e0e4736")
	if e.Extensions["requestId"] != "req-1" || e.Extensions["traceId"] != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Errorf("Internal(req-1, trace) extensions = %v, want both ids", e.Extensions)
	}
	if _, ok := wire.Internal("req-1", "").Extensions["traceId"]; ok {
		t.Errorf("Internal(req-1, \"\") has a traceId")
	}
}

func TestCancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	if wire.Cancelled(ctx, context.Canceled) {
		t.Error("Cancelled before the context was cancelled = true")
	}
	cancel()
	if !wire.Cancelled(ctx, fmt.Errorf("read: %w", context.Canceled)) {
		t.Error("Cancelled of the context's own cancellation = false")
	}
	if wire.Cancelled(ctx, errors.New("boom")) {
		t.Error("Cancelled of another error = true")
	}
}
