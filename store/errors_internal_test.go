package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/lib/pq"
	"github.com/obsqra/obsqra"
)

// TestTranslateUnavailable: every way the database can fail to answer is
// EUNAVAILABLE with a retry hint and the cause in the chain; a client's
// cancellation and a wrong statement are not.
func TestTranslateUnavailable(t *testing.T) {
	t.Parallel()
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"deadline", fmt.Errorf("query: %w", context.DeadlineExceeded), obsqra.EUNAVAILABLE},
		{"statement timeout", &pq.Error{Code: "57014", Message: "canceling statement due to statement timeout"}, obsqra.EUNAVAILABLE},
		{"lock timeout", &pq.Error{Code: "55P03"}, obsqra.EUNAVAILABLE},
		{"admin shutdown", &pq.Error{Code: "57P01"}, obsqra.EUNAVAILABLE},
		{"starting up", &pq.Error{Code: "57P03"}, obsqra.EUNAVAILABLE},
		{"too many connections", &pq.Error{Code: "53300"}, obsqra.EUNAVAILABLE},
		{"connection failure", &pq.Error{Code: "08006"}, obsqra.EUNAVAILABLE},
		{"connection refused", refused, obsqra.EUNAVAILABLE},
		{"bad connection", driver.ErrBadConn, obsqra.EUNAVAILABLE},
		{"connection done", sql.ErrConnDone, obsqra.EUNAVAILABLE},
		{"closed mid-way", io.ErrUnexpectedEOF, obsqra.EUNAVAILABLE},
		{"cancelled by the client", fmt.Errorf("query: %w", context.Canceled), obsqra.EINTERNAL},
		{"syntax error", &pq.Error{Code: "42601"}, obsqra.EINTERNAL},
		{"no rows", sql.ErrNoRows, obsqra.ENOTFOUND},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := translate(tt.err, "load thing", "thing")
			if code := obsqra.ErrorCode(got); code != tt.want {
				t.Fatalf("translate(%v) = %v (code %s), want code %s", tt.err, got, code, tt.want)
			}
			if !errors.Is(got, tt.err) && tt.want != obsqra.ENOTFOUND {
				t.Errorf("translate(%v) = %v, which does not wrap the cause", tt.err, got)
			}
			if tt.want == obsqra.EUNAVAILABLE {
				e, _ := errors.AsType[*obsqra.Error](got)
				if e.RetryAfterSeconds != UnavailableRetryAfter {
					t.Errorf("RetryAfterSeconds = %d, want %d", e.RetryAfterSeconds, UnavailableRetryAfter)
				}
				if again := translate(fmt.Errorf("outer: %w", got), "outer", "thing"); again != got && !errors.Is(again, got) {
					t.Errorf("translating an EUNAVAILABLE again = %v, want it unchanged", again)
				}
			}
		})
	}
}
