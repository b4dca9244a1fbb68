package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/server"
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

// Content types of incremental delivery over multipart/mixed.
const (
	multipartIncremental = `multipart/mixed; boundary="-"; deferSpec=20220824`
	multipartPartType    = "application/json; charset=utf-8"
	closingBoundary      = "\r\n-----\r\n"
)

// wholeRisk is the complete answer to deferredRisk and its variants, as a
// client that does not take increments receives it.
const wholeRisk = `{"data":{"protocols":[{"slug":"zklend","latestRisk":{"score":42}},{"slug":"vesu","latestRisk":{"score":42}}]}}`

// deferPayload is a payload of incremental delivery as a client reads it:
// the initial result (data, errors, hasNext) or a later one (incremental,
// hasNext, and errors when the delivery was cut short).
type deferPayload struct {
	Data        json.RawMessage    `json:"data"`
	Errors      []gqlErr           `json:"errors"`
	HasNext     *bool              `json:"hasNext"`
	Incremental []incrementalEntry `json:"incremental"`
}

// incrementalEntry is the result of one deferred fragment.
type incrementalEntry struct {
	Data   json.RawMessage `json:"data"`
	Path   []any           `json:"path"`
	Label  *string         `json:"label"`
	Errors []gqlErr        `json:"errors"`
}

// decodeIncrement decodes one payload, failing on entries a payload does not
// have and on a missing hasNext.
func decodeIncrement(t *testing.T, raw string) deferPayload {
	t.Helper()
	var entries map[string]json.RawMessage
	if err := json.Unmarshal([]byte(raw), &entries); err != nil {
		t.Fatalf("payload %s: %v", raw, err)
	}
	for k := range entries {
		switch k {
		case "data", "errors", "hasNext", "incremental", "extensions":
		default:
			t.Errorf("payload %s has an entry %q", raw, k)
		}
	}
	var p deferPayload
	if err := json.Unmarshal([]byte(raw), &p); err != nil {
		t.Fatalf("payload %s: %v", raw, err)
	}
	if p.HasNext == nil {
		t.Fatalf("payload %s has no hasNext", raw)
	}
	return p
}

// incrementalParts reads resp as incremental delivery over multipart/mixed:
// it checks the Content-Type, each part's, and that the body ends with the
// closing boundary, and returns the parts' JSON.
func incrementalParts(t *testing.T, resp *http.Response) []string {
	t.Helper()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || ct != multipartIncremental {
		t.Fatalf("response %d %s %q, want 200 %s", resp.StatusCode, ct, body, multipartIncremental)
	}
	if !strings.HasSuffix(string(body), closingBoundary) {
		t.Errorf("body %q does not end with the closing boundary %q", body, closingBoundary)
	}
	r := multipart.NewReader(bytes.NewReader(body), "-")
	var parts []string
	for {
		p, err := r.NextPart()
		if err == io.EOF {
			return parts
		}
		if err != nil {
			t.Fatalf("body %q: part %d: %v", body, len(parts), err)
		}
		if ct := p.Header.Get("Content-Type"); ct != multipartPartType {
			t.Errorf("part %d's Content-Type = %q, want %q", len(parts), ct, multipartPartType)
		}
		b, err := io.ReadAll(p)
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, string(b))
	}
}

// merged applies payloads to the data of the first, as Apollo Client's
// Defer20220824Handler does, checking on the way that only the last says
// hasNext false, and returns the data and every error.
func merged(t *testing.T, payloads []deferPayload) (data any, errs []gqlErr) {
	t.Helper()
	if err := json.Unmarshal(payloads[0].Data, &data); err != nil {
		t.Fatalf("initial data %s: %v", payloads[0].Data, err)
	}
	errs = append(errs, payloads[0].Errors...)
	for i, p := range payloads {
		if last := i == len(payloads)-1; *p.HasNext == last {
			t.Errorf("payload %d of %d says hasNext %v", i, len(payloads), *p.HasNext)
		}
		if i == 0 {
			continue
		}
		errs = append(errs, p.Errors...)
		for _, inc := range p.Incremental {
			errs = append(errs, inc.Errors...)
			var at any = data
			for _, step := range inc.Path {
				switch step := step.(type) {
				case string:
					// A nested increment may come before the one that
					// holds its object: the object is made, as Apollo's
					// merge makes it.
					obj := at.(map[string]any)
					if obj[step] == nil {
						obj[step] = map[string]any{}
					}
					at = obj[step]
				case float64:
					at = at.([]any)[int(step)]
				}
			}
			var fields map[string]any
			if err := json.Unmarshal(inc.Data, &fields); err != nil {
				t.Fatalf("incremental data %s: %v", inc.Data, err)
			}
			mergeInto(at.(map[string]any), fields)
		}
	}
	return data, errs
}

// mergeInto merges the JSON object from into into, deeply.
func mergeInto(into, from map[string]any) {
	for k, v := range from {
		sub, ok := v.(map[string]any)
		if have, isObject := into[k].(map[string]any); ok && isObject {
			mergeInto(have, sub)
			continue
		}
		into[k] = v
	}
}

// jsonEqual reports whether a and b are the same JSON value.
func jsonEqual(t *testing.T, a any, b string) bool {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(b), &v); err != nil {
		t.Fatal(err)
	}
	return reflect.DeepEqual(a, v)
}

// TestDeferMultipart: a query with an active @defer is answered, to a
// client that accepts multipart/mixed, as Apollo Router answers it: the
// initial result with hasNext true, then one part per deferred fragment
// with "incremental", the last with hasNext false, then the closing
// boundary; merged, the parts are the whole answer.
func TestDeferMultipart(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, query string
		variables   map[string]any
		label       bool
	}{
		{name: "inline fragment", query: deferredRisk, label: true},
		{name: "fragment spread", query: `{ protocols { slug ...Risk @defer } } fragment Risk on Protocol { latestRisk { score } }`},
		{name: "if true", query: `query($d: Boolean!) { protocols { slug ... @defer(if: $d, label: "risk") { latestRisk { score } } } }`,
			variables: map[string]any{"d": true}, label: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			base := b.listen(t)
			parts := incrementalParts(t, post(t, context.Background(), base, tt.query, tt.variables, acceptDefer))
			if len(parts) != 3 {
				t.Fatalf("%d parts %q, want the initial one and one per protocol", len(parts), parts)
			}
			// The deferred field is absent, not null, until its increment.
			const initial = `{"data":{"protocols":[{"slug":"zklend"},{"slug":"vesu"}]},"hasNext":true}`
			if parts[0] != initial {
				t.Errorf("initial part = %s, want %s", parts[0], initial)
			}
			payloads := []deferPayload{decodeIncrement(t, parts[0])}
			seen := map[string]bool{}
			for _, part := range parts[1:] {
				p := decodeIncrement(t, part)
				payloads = append(payloads, p)
				if len(p.Incremental) != 1 || p.Data != nil || p.Errors != nil {
					t.Fatalf("part %s, want one incremental result and nothing else", part)
				}
				inc := p.Incremental[0]
				if string(inc.Data) != `{"latestRisk":{"score":42}}` || inc.Errors != nil {
					t.Errorf("incremental %s %v, want the score alone", inc.Data, inc.Errors)
				}
				if tt.label != (inc.Label != nil) || (inc.Label != nil && *inc.Label != "risk") {
					t.Errorf("label = %v, want one (risk): %v", inc.Label, tt.label)
				}
				seen[fmt.Sprint(inc.Path)] = true
			}
			if !seen["[protocols 0]"] || !seen["[protocols 1]"] {
				t.Errorf("paths = %v, want [protocols 0] and [protocols 1]", seen)
			}
			data, errs := merged(t, payloads)
			if !jsonEqual(t, map[string]any{"data": data}, wholeRisk) || errs != nil {
				t.Errorf("merged = %v %v, want %s", data, errs, wholeRisk)
			}
		})
	}
}

// TestDeferNested: a @defer inside a deferred fragment is delivered in
// increments of its own, at its object's path; the increment that holds
// its object leaves its fields out, as the initial result leaves out those
// of the outer one.
func TestDeferNested(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.resolver.protocols = func(context.Context) ([]*obsqra.Protocol, error) { return fakeProtocols[:1], nil }
	// gqlgen defers the fields it resolves concurrently, those with a
	// resolver: observedAt is one.
	const query = `{ protocols { slug ... @defer(label: "risk") { latestRisk { score ... @defer(label: "seen") { observedAt } } } } }`
	parts := incrementalParts(t, post(t, context.Background(), b.listen(t), query, nil, acceptDefer))
	if len(parts) != 3 {
		t.Fatalf("parts = %q, want the initial one and two increments", parts)
	}
	if want := `{"data":{"protocols":[{"slug":"zklend"}]},"hasNext":true}`; parts[0] != want {
		t.Errorf("initial part = %s, want %s", parts[0], want)
	}
	payloads := []deferPayload{decodeIncrement(t, parts[0])}
	byLabel := map[string]incrementalEntry{}
	for _, part := range parts[1:] {
		p := decodeIncrement(t, part)
		payloads = append(payloads, p)
		if len(p.Incremental) != 1 || p.Incremental[0].Label == nil {
			t.Fatalf("part %s, want one labelled increment", part)
		}
		byLabel[*p.Incremental[0].Label] = p.Incremental[0]
	}
	if risk := byLabel["risk"]; fmt.Sprint(risk.Path) != "[protocols 0]" || string(risk.Data) != `{"latestRisk":{"score":42}}` {
		t.Errorf("risk = %v %s, want the score without its deferred components", risk.Path, risk.Data)
	}
	if inner := byLabel["seen"]; fmt.Sprint(inner.Path) != "[protocols 0 latestRisk]" || string(inner.Data) != `{"observedAt":"2026-12-01T00:00:00Z"}` {
		t.Errorf("seen = %v %s, want observedAt at the risk score", inner.Path, inner.Data)
	}
	data, errs := merged(t, payloads)
	if !jsonEqual(t, data, `{"protocols":[{"slug":"zklend","latestRisk":{"score":42,"observedAt":"2026-12-01T00:00:00Z"}}]}`) || errs != nil {
		t.Errorf("merged = %v %v", data, errs)
	}
}

// TestDeferNothingToDefer: a @defer of fields that gqlgen resolves at once
// (a plain field, not a resolver's) is streamed as asked, in one part that
// says nothing follows.
func TestDeferNothingToDefer(t *testing.T) {
	t.Parallel()
	b := setup(t)
	parts := incrementalParts(t, post(t, context.Background(), b.listen(t), `{ protocols { slug ... @defer { name } } }`, nil, acceptDefer))
	const want = `{"data":{"protocols":[{"slug":"zklend","name":"zkLend"},{"slug":"vesu","name":"Vesu"}]},"hasNext":false}`
	if len(parts) != 1 || parts[0] != want {
		t.Errorf("parts = %q, want %s alone", parts, want)
	}
}

// TestDeferWhole: whoever cannot take increments gets the whole result at
// once (the deferred fields resolved in place), never a field left null
// with nothing to follow: plain JSON, a batch, a WebSocket, a mutation.
func TestDeferWhole(t *testing.T) {
	t.Parallel()
	b := setup(t)
	base := b.listen(t)

	for _, tt := range []struct{ accept, media string }{
		{mediaJSON, mediaJSON},
		{mediaGraphQLResponse, mediaGraphQLResponse},
		{"", mediaJSON},
		{"*/*", mediaJSON},
		{"multipart/mixed;boundary=graphql;subscriptionSpec=1.0,application/json", mediaJSON},
		{"multipart/mixed;deferSpec=20230101,application/json", mediaJSON},
	} {
		t.Run("Accept "+tt.accept, func(t *testing.T) {
			t.Parallel()
			for _, query := range []string{deferredRisk, `{ protocols { slug ...Risk @defer } } fragment Risk on Protocol { latestRisk { score } }`} {
				resp := post(t, context.Background(), base, query, nil, tt.accept)
				body, _ := io.ReadAll(resp.Body)
				if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || ct != tt.media || string(body) != wholeRisk {
					t.Errorf("%s = %d %s %s, want 200 %s %s", query, resp.StatusCode, ct, body, tt.media, wholeRisk)
				}
			}
		})
	}

	t.Run("batch", func(t *testing.T) {
		t.Parallel()
		q, _ := json.Marshal(deferredRisk)
		body := fmt.Sprintf(`[{"query":%s},{"query":%s}]`, q, q)
		rec := b.send(http.MethodPost, body, "Accept", acceptDefer)
		if want := "[" + wholeRisk + "," + wholeRisk + "]"; rec.Code != http.StatusOK || rec.Body.String() != want {
			t.Errorf("batch = %d %s, want 200 %s", rec.Code, rec.Body, want)
		}
	})

	t.Run("mutation", func(t *testing.T) {
		t.Parallel()
		const login = `mutation { login(input: {email: "ada@example.com", password: "pw"}) { tokenType ... @defer { user { email } } } }`
		resp := post(t, context.Background(), base, login, nil, acceptDefer)
		body, _ := io.ReadAll(resp.Body)
		const want = `{"data":{"login":{"tokenType":"Bearer","user":{"email":"ada@example.com"}}}}`
		if ct := resp.Header.Get("Content-Type"); ct != mediaGraphQLResponse || string(body) != want {
			t.Errorf("mutation = %s %s, want %s %s", ct, body, mediaGraphQLResponse, want)
		}
	})

	for _, proto := range bothProtocols {
		t.Run(proto, func(t *testing.T) {
			t.Parallel()
			c, err := dialURL(t, "ws"+strings.TrimPrefix(base, "http")+"/graphql", proto)
			if err != nil {
				t.Fatal(err)
			}
			c.init(nil)
			c.subscribe("d", deferredRisk, nil)
			c.expect(c.nextType(), "d", wholeRisk)
			c.expect("complete", "d", "")
		})
	}
}

// TestDeferInactive: a query whose @defer defers nothing (if: false, a
// false or null variable, a skipped fragment, another operation of the
// document) is plain JSON even to a client that accepts multipart, as
// Apollo Client sends it for any @defer in the document.
func TestDeferInactive(t *testing.T) {
	t.Parallel()
	b := setup(t)
	base := b.listen(t)
	const twoOps = `query Deferred { protocols { slug ... @defer { latestRisk { score } } } }
		query Whole { protocols { slug latestRisk { score } } }`
	for _, tt := range []struct {
		name, query, operationName string
		variables                  map[string]any
		want                       string
	}{
		{name: "if false", query: `{ protocols { slug ... @defer(if: false) { latestRisk { score } } } }`, want: wholeRisk},
		{name: "spread if false", query: `{ protocols { slug ...Risk @defer(if: false) } } fragment Risk on Protocol { latestRisk { score } }`, want: wholeRisk},
		{name: "variable false", query: `query($d: Boolean!) { protocols { slug ... @defer(if: $d) { latestRisk { score } } } }`,
			variables: map[string]any{"d": false}, want: wholeRisk},
		{name: "variable null", query: `query($d: Boolean) { protocols { slug ... @defer(if: $d) { latestRisk { score } } } }`,
			variables: map[string]any{"d": nil}, want: wholeRisk},
		{name: "skipped", query: `{ protocols { slug ... @skip(if: true) { ... @defer { latestRisk { score } } } } }`,
			want: `{"data":{"protocols":[{"slug":"zklend"},{"slug":"vesu"}]}}`},
		{name: "another operation", query: twoOps, operationName: "Whole", want: wholeRisk},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			body, _ := json.Marshal(map[string]any{"query": tt.query, "operationName": tt.operationName, "variables": tt.variables})
			rec := b.send(http.MethodPost, string(body), "Accept", acceptDefer)
			if ct := rec.Header().Get("Content-Type"); rec.Code != http.StatusOK || ct != mediaGraphQLResponse || rec.Body.String() != tt.want {
				t.Errorf("= %d %s %s, want 200 %s %s", rec.Code, ct, rec.Body, mediaGraphQLResponse, tt.want)
			}
		})
	}
	t.Run("the other operation defers", func(t *testing.T) {
		t.Parallel()
		req := map[string]any{"query": twoOps, "operationName": "Deferred"}
		body, _ := json.Marshal(req)
		httpReq, _ := http.NewRequest(http.MethodPost, base+"/graphql", bytes.NewReader(body))
		httpReq.Header.Set("Content-Type", mediaJSON)
		httpReq.Header.Set("Accept", acceptDefer)
		resp, err := http.DefaultClient.Do(httpReq)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if parts := incrementalParts(t, resp); len(parts) != 3 {
			t.Errorf("parts = %q, want 3", parts)
		}
	})
}

// TestDeferErrors: a deferred field's error comes in its increment, coded
// and with its full path, beside its data; a plain JSON client gets it in
// the one response.
func TestDeferErrors(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.resolver.latestRisk = func(_ context.Context, p *obsqra.Protocol) (*obsqra.RiskScore, error) {
		if p.Slug == "vesu" {
			return nil, obsqra.Errorf(obsqra.ENOTFOUND, "no risk score for vesu yet")
		}
		return &obsqra.RiskScore{ID: p.ID, Score: 42}, nil
	}
	base := b.listen(t)
	wantErr := func(t *testing.T, errs []gqlErr) {
		t.Helper()
		if len(errs) != 1 || errs[0].Message != "no risk score for vesu yet" || errs[0].Extensions["code"] != "NOT_FOUND" ||
			fmt.Sprint(errs[0].Path) != "[protocols 1 latestRisk]" {
			t.Errorf("errors = %+v, want NOT_FOUND at [protocols 1 latestRisk]", errs)
		}
	}

	parts := incrementalParts(t, post(t, context.Background(), base, deferredRisk, nil, acceptDefer))
	payloads := make([]deferPayload, len(parts))
	for i, part := range parts {
		payloads[i] = decodeIncrement(t, part)
	}
	if len(payloads) != 3 || payloads[0].Errors != nil {
		t.Fatalf("parts = %q, want 3, the initial one without errors", parts)
	}
	for _, p := range payloads[1:] {
		inc := p.Incremental[0]
		if fmt.Sprint(inc.Path) != "[protocols 1]" {
			continue
		}
		if string(inc.Data) != `{"latestRisk":null}` {
			t.Errorf("vesu's increment = %s, want latestRisk null", inc.Data)
		}
		wantErr(t, inc.Errors)
	}
	data, errs := merged(t, payloads)
	if !jsonEqual(t, data, `{"protocols":[{"slug":"zklend","latestRisk":{"score":42}},{"slug":"vesu","latestRisk":null}]}`) {
		t.Errorf("merged data = %v", data)
	}
	wantErr(t, errs)

	rec, res := b.graphQL(t, deferredRisk, nil)
	if rec.Code != http.StatusOK || string(res.Data) != `{"protocols":[{"slug":"zklend","latestRisk":{"score":42}},{"slug":"vesu","latestRisk":null}]}` {
		t.Errorf("plain JSON = %d %s", rec.Code, rec.Body)
	}
	wantErr(t, res.Errors)
}

// TestDeferSSE: over graphql-sse, each payload of a deferred query is an
// event next, then complete.
func TestDeferSSE(t *testing.T) {
	t.Parallel()
	b := setup(t)
	base := b.listen(t)
	// stream only needs the host of a wsBundle.
	c := (&wsBundle{host: strings.TrimPrefix(base, "http://")}).stream(t, deferredRisk)
	var payloads []deferPayload
	for i := range 3 {
		e := c.read(false)
		if e.name != "next" {
			t.Fatalf("event %d = %q %q, want next", i, e.name, e.data)
		}
		payloads = append(payloads, decodeIncrement(t, e.data))
	}
	c.complete()
	if len(payloads[1].Incremental) != 1 || len(payloads[2].Incremental) != 1 {
		t.Errorf("payloads = %+v, want one increment in each after the first", payloads)
	}
	data, errs := merged(t, payloads)
	if !jsonEqual(t, map[string]any{"data": data}, wholeRisk) || errs != nil {
		t.Errorf("merged = %v %v, want %s", data, errs, wholeRisk)
	}
}

// TestDeferBounds: a deferred query costs what it would without @defer
// (the complexity budget refuses it before it runs, as plain JSON), and
// its request timeout ends it: a deferred field still resolving then gives
// an error part, SERVICE_UNAVAILABLE with hasNext false, and the closing
// boundary, instead of a response that never ends.
func TestDeferBounds(t *testing.T) {
	t.Parallel()

	t.Run("complexity", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(c *server.Config) { c.ComplexityLimit = 3 })
		rec := b.send(http.MethodPost, `{"query":"{ protocols { slug ... @defer { latestRisk { score } } } }"}`, "Accept", acceptDefer)
		wantCoded(t, rec, http.StatusBadRequest, "COMPLEXITY_LIMIT_EXCEEDED")
	})

	t.Run("deadline", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(c *server.Config) { c.RequestTimeout = 200 * time.Millisecond })
		release := make(chan struct{})
		var once sync.Once
		t.Cleanup(func() { once.Do(func() { close(release) }) })
		b.resolver.latestRisk = func(context.Context, *obsqra.Protocol) (*obsqra.RiskScore, error) {
			<-release // past the deadline, ignoring it
			return &obsqra.RiskScore{Score: 1}, nil
		}
		base := b.listen(t)
		start := time.Now()
		parts := incrementalParts(t, post(t, context.Background(), base, deferredRisk, nil, acceptDefer))
		if took := time.Since(start); took > wait {
			t.Errorf("the response took %v", took)
		}
		if len(parts) != 2 {
			t.Fatalf("parts = %q, want the initial one and the timeout", parts)
		}
		if p := decodeIncrement(t, parts[0]); !*p.HasNext {
			t.Errorf("initial part %s, want hasNext true", parts[0])
		}
		const timeout = `{"errors":[{"message":"the request timed out before every deferred result was delivered","extensions":{"code":"SERVICE_UNAVAILABLE"}}],"hasNext":false}`
		if parts[1] != timeout {
			t.Errorf("last part = %s, want %s", parts[1], timeout)
		}
		if len(b.logs.entries(t, "graphql: deferred results cut short by the request timeout")) != 1 {
			t.Error("the timeout was not logged")
		}
	})
}

// TestStreamNotAdvertised: @defer is the only incremental directive the
// schema has: @stream is neither in introspection nor accepted.
func TestStreamNotAdvertised(t *testing.T) {
	t.Parallel()
	b := setup(t)
	rec, res := b.graphQL(t, `{ __schema { directives { name } } }`, nil)
	noErrors(t, rec, res)
	if !strings.Contains(string(res.Data), `{"name":"defer"}`) || strings.Contains(string(res.Data), "stream") {
		t.Errorf("directives = %s, want defer and no stream", res.Data)
	}
	_, res = b.graphQL(t, `{ protocols @stream { slug } }`, nil)
	if e := onlyError(t, res); e.Extensions["code"] != "GRAPHQL_VALIDATION_FAILED" {
		t.Errorf("@stream = %q %v, want GRAPHQL_VALIDATION_FAILED", e.Message, e.Extensions)
	}
}
