package tracing

import "testing"

func TestScrub(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"authorization: Bearer abc.def-123 refused":                     "authorization: Bearer [redacted] refused",
		"dial postgres://app:s3cr3t@db:5432/obsqra?sslmode=require":     "dial postgres://[redacted]@db:5432/obsqra?sslmode=require",
		"token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI3In0.c2ln expired":       "token [redacted token] expired",
		`decode {"password": "hunter2", "email": "a@b.c"}`:              `decode {"password": "[redacted]", "email": "a@b.c"}`,
		"GET /v3/x?api_key=K3Y&x=1: 401":                                "GET /v3/x?api_key=[redacted]&x=1: 401",
		"pq: password authentication failed for user app":               "pq: password authentication failed for user app",
		"runtime error: index out of range [5] with length 3":           "runtime error: index out of range [5] with length 3",
		"https://public@o1.ingest.sentry.io/42 is a DSN, dsn=https://x": "https://public@o1.ingest.sentry.io/42 is a DSN, dsn=[redacted]",
	} {
		if got := scrub(in); got != want {
			t.Errorf("scrub(%q) = %q, want %q", in, got, want)
		}
	}
}
