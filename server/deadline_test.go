package server_test

import (
	"context"
	"testing"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/graph"
	"github.com/obsqra/obsqra/server"
)

// TestRequestTimeout: a query and a mutation run under a deadline of
// RequestTimeout from the start of their execution, so that a resolver
// waiting for a database that does not answer returns when it passes.
func TestRequestTimeout(t *testing.T) {
	t.Parallel()
	const timeout = 200 * time.Millisecond
	b := setup(t, func(c *server.Config) { c.RequestTimeout = timeout })
	wait := func(ctx context.Context) (time.Duration, error) {
		deadline, ok := ctx.Deadline()
		if !ok {
			return 0, obsqra.Errorf(obsqra.EINVALID, "no deadline")
		}
		left := time.Until(deadline)
		select {
		case <-ctx.Done():
		case <-time.After(30 * time.Second):
		}
		return left, obsqra.Errorf(obsqra.EUNAVAILABLE, "database not answering")
	}
	var leftQuery, leftMutation time.Duration
	b.resolver.me = func(ctx context.Context) (*obsqra.User, error) {
		left, err := wait(ctx)
		leftQuery = left
		return nil, err
	}
	b.resolver.login = func(ctx context.Context, _ graph.LoginInput) (*obsqra.AuthPayload, error) {
		left, err := wait(ctx)
		leftMutation = left
		return nil, err
	}
	for _, tc := range []struct {
		name, query string
		left        *time.Duration
	}{
		{"query", `{ me { id } }`, &leftQuery},
		{"mutation", loginMutation, &leftMutation},
	} {
		start := time.Now()
		_, res := b.graphQL(t, tc.query, nil)
		took := time.Since(start)
		e := onlyError(t, res)
		if e.Extensions["code"] != "SERVICE_UNAVAILABLE" {
			t.Errorf("%s: error %v, want the resolver's SERVICE_UNAVAILABLE", tc.name, e.Extensions)
		}
		if *tc.left <= 0 || *tc.left > timeout {
			t.Errorf("%s: the resolver's deadline was %v away, want at most %v", tc.name, *tc.left, timeout)
		}
		if took > timeout+2*time.Second {
			t.Errorf("%s: answered after %v, want about %v", tc.name, took, timeout)
		}
	}
}
