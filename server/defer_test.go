package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/obsqra/obsqra"
)

// acceptDefer is the Accept header of Apollo Client's Defer20220824Handler
// for an operation with @defer.
const acceptDefer = "multipart/mixed;deferSpec=20220824,application/graphql-response+json,application/json;q=0.9"

// deferredRisk defers each protocol's latest risk score.
const deferredRisk = `{ protocols { slug ... @defer(label: "risk") { latestRisk { score } } } }`

// listen serves b's handler on a port of its own, for tests that need a
// real connection (a client that goes away, a response read as it comes).
// A failed test's server is closed without waiting for its handlers, one of
// which may be what failed it by never returning.
func (b *testBundle) listen(t *testing.T) string {
	t.Helper()
	ts := httptest.NewServer(b.handler)
	t.Cleanup(func() {
		if t.Failed() {
			_ = ts.Config.Close()
			return
		}
		ts.Close()
	})
	return ts.URL
}

// post POSTs query with variables to base's /graphql with the Accept header
// accept, under ctx, and returns the response, whose body the caller reads.
func post(t *testing.T, ctx context.Context, base, query string, variables map[string]any, accept string) *http.Response {
	t.Helper()
	body, err := json.Marshal(map[string]any{"query": query, "variables": variables})
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/graphql", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", mediaJSON)
	req.Header.Set("Accept", accept)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// readUntil reads r until what it has read contains want, and returns it.
func readUntil(t *testing.T, r io.Reader, want string) string {
	t.Helper()
	var got []byte
	buf := make([]byte, 4096)
	for !bytes.Contains(got, []byte(want)) {
		n, err := r.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			t.Fatalf("read %q, then %v; want %q", got, err, want)
		}
	}
	return string(got)
}

// deferredHandlerFrame is in the stack of a goroutine running the query
// handler that gqlgen generates, which waits there for deferred results.
const deferredHandlerFrame = "github.com/obsqra/obsqra/graph.(*executableSchema).Exec.func"

// goroutinesIn returns the stacks of the goroutines whose stack holds frame.
func goroutinesIn(frame string) []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var in []string
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		if strings.Contains(g, frame) {
			in = append(in, g)
		}
	}
	return in
}

// awaitGoroutines polls, for at most wait, until done(the goroutines whose
// stack holds frame) holds, and fails with those goroutines otherwise.
func awaitGoroutines(t *testing.T, frame string, what string, done func(n int) bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		in := goroutinesIn(frame)
		if done(len(in)) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: after %v, %d goroutines in %s:\n%s", what, wait, len(in), frame, strings.Join(in, "\n\n"))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestDeferCancelledLeavesNoGoroutine: clients that go away while a
// deferred field is still resolving leave no goroutine behind. gqlgen's
// generated handler waited for the deferred result without looking at its
// context, while the deferred field, done after its client left, may drop
// its result (gqlgen's ProcessDeferredGroup selects between sending it and
// the context's end, at random when both are ready): the request's
// goroutine then waited forever. Each of the requests below leaked so with
// a chance of one half, so that the test caught the leak in all but one run
// of 2^requests.
//
// Not parallel: it counts the goroutines of the whole test binary, and the
// parallel tests wait until it is done.
func TestDeferCancelledLeavesNoGoroutine(t *testing.T) {
	const requests = 16
	b := setup(t)
	release := make(chan struct{})
	b.resolver.protocols = func(context.Context) ([]*obsqra.Protocol, error) {
		return fakeProtocols[:1], nil // one deferred result per request
	}
	b.resolver.latestRisk = func(ctx context.Context, p *obsqra.Protocol) (*obsqra.RiskScore, error) {
		<-release // ignores ctx, as a resolver in the middle of a computation does
		return &obsqra.RiskScore{ID: p.ID, Score: 1}, nil
	}
	base := b.listen(t)
	awaitGoroutines(t, deferredHandlerFrame, "before the requests", func(n int) bool { return n == 0 })

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for range requests {
		resp := post(t, ctx, base, deferredRisk, nil, acceptDefer)
		readUntil(t, resp.Body, `"hasNext":true`)
	}
	// The initial results are out; each handler waits for its deferred one.
	awaitGoroutines(t, deferredHandlerFrame, "while the deferred fields resolve", func(n int) bool { return n == requests })

	cancel()
	close(release) // the deferred fields end after their clients went away
	awaitGoroutines(t, deferredHandlerFrame, "after the clients went away", func(n int) bool { return n == 0 })
}
