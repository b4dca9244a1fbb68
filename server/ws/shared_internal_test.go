package ws

import (
	"sync"
	"testing"

	"github.com/99designs/gqlgen/graphql"
)

// TestStreamKey: executions are shared only by subscribers asking the same
// document and operation with the same variables, as the same viewer.
func TestStreamKey(t *testing.T) {
	t.Parallel()
	base := &graphql.RawParams{Query: "subscription { s(p: $p) }", Variables: map[string]any{"p": []any{"nostra"}, "q": 1}}
	same := &graphql.RawParams{Query: base.Query, Variables: map[string]any{"q": 1, "p": []any{"nostra"}}}
	if streamKey(base, 0) != streamKey(same, 0) {
		t.Error("the same variables in another order give another key")
	}
	for name, other := range map[string]struct {
		p      *graphql.RawParams
		viewer int64
	}{
		"variables": {&graphql.RawParams{Query: base.Query, Variables: map[string]any{"p": []any{"vesu"}, "q": 1}}, 0},
		"document":  {&graphql.RawParams{Query: base.Query + " ", Variables: base.Variables}, 0},
		"operation": {&graphql.RawParams{Query: base.Query, OperationName: "X", Variables: base.Variables}, 0},
		"viewer":    {base, 7},
	} {
		if streamKey(other.p, other.viewer) == streamKey(base, 0) {
			t.Errorf("another %s gives the same key", name)
		}
	}
}

// TestClaimIsOneStep: of subscribers of one key arriving together, one
// starts the stream and every other waits for it, then joins it once it is
// published (a check and a claim in two steps let two of them start one
// each).
func TestClaimIsOneStep(t *testing.T) {
	t.Parallel()
	var ss sharedStreams
	newStream := func() *sharedStream {
		return &sharedStream{key: "k", members: make(map[subscriber]struct{}), decided: make(chan struct{})}
	}
	const n = 64
	pendings := make([]*sharedStream, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { pendings[i], _ = ss.claim(newStream(), "public") })
	}
	wg.Wait()
	var started *sharedStream
	claimed := 0
	for _, p := range pendings {
		if p == nil {
			claimed++
		} else if started == nil {
			started = p
		} else if p != started {
			t.Fatal("two streams are starting under one key")
		}
	}
	if claimed != 1 {
		t.Fatalf("%d of %d claims started a stream, want 1", claimed, n)
	}
	ss.decide(started, true, false)
	if p, published := ss.claim(newStream(), "public"); p != nil || !published {
		t.Errorf("claim after the stream was published = %v, %v, want nil, true (join it)", p, published)
	}
	if p, published := ss.claim(&sharedStream{key: "other", members: map[subscriber]struct{}{}, decided: make(chan struct{})}, "public"); p != nil || published {
		t.Errorf("claim of another key = %v, %v, want nil, false (start it)", p, published)
	}
}
