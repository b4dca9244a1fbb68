package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/obsqra/obsqra/server"
)

// A subscription sent as plain JSON is refused at once: a JSON response
// holds one result, and waiting for it could take forever.
func TestSubscriptionOverPlainJSON(t *testing.T) {
	t.Parallel()
	const query = `subscription { ticks(topic: "plain") }`
	for _, tt := range []struct {
		name, method, body, accept string
	}{
		{"POST json", http.MethodPost, `{"query":"subscription { ticks(topic: \"plain\") }"}`, mediaJSON},
		{"POST graphql-response+json", http.MethodPost, `{"query":"subscription { ticks(topic: \"plain\") }"}`, mediaGraphQLResponse},
		{"GET json", http.MethodGet, "", mediaJSON},
		{"GET graphql-response+json", http.MethodGet, "", mediaGraphQLResponse},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			schema := newWSSchema()
			b := setupSchema(t, schema, nil)
			req := httptest.NewRequest(tt.method, "/graphql?query="+url.QueryEscape(query), nil)
			if tt.method == http.MethodPost {
				req = httptest.NewRequest(tt.method, "/graphql", strings.NewReader(tt.body))
			}
			req.Header.Set("Content-Type", mediaJSON)
			req.Header.Set("Accept", tt.accept)
			rec := b.serve(req)
			e := wantCoded(t, rec, http.StatusBadRequest, "SUBSCRIPTION_NEEDS_STREAM")
			if e.Message == "" {
				t.Error("the error has no message")
			}
			if n := schema.execs.Load(); n != 0 {
				t.Errorf("the subscription was executed %d times, want 0", n)
			}
		})
	}

	t.Run("in a batch", func(t *testing.T) {
		t.Parallel()
		b := setupSchema(t, newWSSchema(), nil)
		rec := b.send(http.MethodPost, `[{"query":"{ whoami }"},{"query":"subscription { ticks(topic: \"plain\") }"}]`)
		if rec.Code != http.StatusOK {
			t.Errorf("status = %d, want 200 (%s)", rec.Code, rec.Body)
		}
		res := decodeBatch(t, rec)
		if len(res) != 2 {
			t.Fatalf("batch answered %d responses, want 2: %s", len(res), rec.Body)
		}
		if e := onlyError(t, res[1]); e.Extensions["code"] != "SUBSCRIPTION_NEEDS_STREAM" {
			t.Errorf("the subscription's error = %q %v, want SUBSCRIPTION_NEEDS_STREAM", e.Message, e.Extensions)
		}
	})
}

// sseEvent is an event of a stream as the client reads it; a comment is
// an event with the name ":".
type sseEvent struct {
	name string
	data string
}

// sseClient is a test's end of an event stream.
type sseClient struct {
	t      *testing.T
	resp   *http.Response
	r      *bufio.Reader
	cancel context.CancelFunc
	events chan sseEvent
}

// stream POSTs query to b's server with Accept text/event-stream and
// headers (name, value pairs), and returns the stream, failing unless it
// is 200 text/event-stream.
func (b *wsBundle) stream(t *testing.T, query string, headers ...string) *sseClient {
	t.Helper()
	resp, cancel := b.openStream(t, query, headers...)
	c := &sseClient{t: t, resp: resp, r: bufio.NewReader(resp.Body), cancel: cancel, events: make(chan sseEvent, 16)}
	go c.readAll()
	return c
}

// openStream is stream without the reader: the caller reads the body.
func (b *wsBundle) openStream(t *testing.T, query string, headers ...string) (*http.Response, context.CancelFunc) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+b.host+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", mediaJSON)
	req.Header.Set("Accept", "text/event-stream")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || !strings.HasPrefix(ct, "text/event-stream") {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("response %d %s %s, want 200 text/event-stream", resp.StatusCode, ct, b)
	}
	return resp, cancel
}

// readAll parses the stream into events until it ends, then closes
// c.events.
func (c *sseClient) readAll() {
	defer close(c.events)
	var e sseEvent
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if e.name != "" {
				c.events <- e
			}
			e = sseEvent{}
		case strings.HasPrefix(line, ":"):
			e.name = ":"
		case strings.HasPrefix(line, "event: "):
			e.name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data:"):
			e.data = strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " ")
		}
	}
}

// read returns the next event, heartbeats skipped unless keepComments.
func (c *sseClient) read(keepComments bool) sseEvent {
	c.t.Helper()
	for {
		select {
		case e, ok := <-c.events:
			if !ok {
				c.t.Fatal("the stream ended, want another event")
			}
			if e.name == ":" && !keepComments {
				continue
			}
			return e
		case <-time.After(wait):
			c.t.Fatal("no event")
		}
	}
}

// next reads an event next and decodes its data.
func (c *sseClient) next() gqlResult {
	c.t.Helper()
	e := c.read(false)
	if e.name != "next" {
		c.t.Fatalf("event = %q %q, want next", e.name, e.data)
	}
	var res gqlResult
	if err := json.Unmarshal([]byte(e.data), &res); err != nil {
		c.t.Fatalf("next's data %q is not a GraphQL response: %v", e.data, err)
	}
	return res
}

// complete reads the event complete, and then the stream's end.
func (c *sseClient) complete() {
	c.t.Helper()
	if e := c.read(false); e.name != "complete" || e.data != "" {
		c.t.Fatalf("event = %q %q, want complete with empty data", e.name, e.data)
	}
	c.ended()
}

// ended waits for the end of the stream, failing on any event but a
// heartbeat.
func (c *sseClient) ended() {
	c.t.Helper()
	for {
		select {
		case e, ok := <-c.events:
			if !ok {
				return
			}
			if e.name != ":" {
				c.t.Fatalf("event %q %q, want the end of the stream", e.name, e.data)
			}
		case <-time.After(wait):
			c.t.Fatal("the stream did not end")
		}
	}
}

func TestEventStream(t *testing.T) {
	t.Parallel()

	t.Run("subscription", func(t *testing.T) {
		t.Parallel()
		b := setupWS(t)
		c := b.stream(t, `subscription { ticks(topic: "sse") }`)
		sub := b.schema.await(t, "sse")
		if c.resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("Cache-Control = %q, want no-store", c.resp.Header.Get("Cache-Control"))
		}
		for _, tick := range []string{"one", "two"} {
			sub.publish(t, tick)
			if res := c.next(); string(res.Data) != `{"ticks":"`+tick+`"}` || len(res.Errors) != 0 {
				t.Errorf("next = %s %v, want ticks %q", res.Data, res.Errors, tick)
			}
		}
		close(sub.events)
		c.complete()
	})

	t.Run("wire format", func(t *testing.T) {
		t.Parallel()
		b := setupWS(t)
		resp, _ := b.openStream(t, `{ whoami }`)
		all, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		want := "event: next\ndata: {\"data\":{\"whoami\":\"anonymous request:"
		if !strings.HasPrefix(string(all), want) || !strings.HasSuffix(string(all), "\"}}\n\nevent: complete\ndata:\n\n") {
			t.Errorf("stream = %q, want %q…, then complete", all, want)
		}
	})

	t.Run("query with the request's principal", func(t *testing.T) {
		t.Parallel()
		b := setupWS(t)
		c := b.stream(t, `{ whoami }`, "Authorization", "Bearer "+goodToken)
		if res := c.next(); !strings.Contains(string(res.Data), "user:7") {
			t.Errorf("next = %s %v, want user:7", res.Data, res.Errors)
		}
		c.complete()
	})

	t.Run("refused token", func(t *testing.T) {
		t.Parallel()
		b := setupWS(t)
		c := b.stream(t, `subscription { ticks(topic: "refused") }`, "Authorization", "Bearer stale")
		res := c.next()
		if e := onlyError(t, res); e.Extensions["code"] != "UNAUTHENTICATED" || e.Message != "access token is invalid" {
			t.Errorf("error = %q %v, want UNAUTHENTICATED", e.Message, e.Extensions)
		}
		c.complete()
		if n := b.schema.execs.Load(); n != 0 {
			t.Errorf("the subscription was executed %d times, want 0", n)
		}
	})

	t.Run("refused operation", func(t *testing.T) {
		t.Parallel()
		b := setupWS(t)
		c := b.stream(t, `subscription { nope }`)
		if e := onlyError(t, c.next()); e.Extensions["code"] != "GRAPHQL_VALIDATION_FAILED" {
			t.Errorf("error = %q %v, want GRAPHQL_VALIDATION_FAILED", e.Message, e.Extensions)
		}
		c.complete()
	})

	t.Run("ended by the subscription", func(t *testing.T) {
		t.Parallel()
		b := setupWS(t)
		c := b.stream(t, `subscription { ticks(topic: "slow") }`)
		sub := b.schema.await(t, "slow")
		sub.publish(t, slowConsumer)
		if e := onlyError(t, c.next()); e.Extensions["code"] != "RATE_LIMITED" || !strings.Contains(e.Message, "cursor 41") {
			t.Errorf("error = %q %v, want RATE_LIMITED with the cursor", e.Message, e.Extensions)
		}
		c.complete()
	})

	t.Run("heartbeat", func(t *testing.T) {
		t.Parallel()
		b := setupWS(t, func(cfg *server.Config) { cfg.SSEHeartbeat = 10 * time.Millisecond })
		c := b.stream(t, `subscription { ticks(topic: "quiet") }`)
		b.schema.await(t, "quiet")
		for range 3 {
			if e := c.read(true); e.name != ":" {
				t.Fatalf("event = %q %q, want a heartbeat", e.name, e.data)
			}
		}
	})

	t.Run("client goes away", func(t *testing.T) {
		t.Parallel()
		b := setupWS(t)
		c := b.stream(t, `subscription { ticks(topic: "gone") }`)
		sub := b.schema.await(t, "gone")
		c.cancel()
		sub.awaitCancelled(t)
	})

	t.Run("server shuts down", func(t *testing.T) {
		t.Parallel()
		b := setupWS(t)
		c := b.stream(t, `subscription { ticks(topic: "shutdown") }`)
		sub := b.schema.await(t, "shutdown")
		b.srv.SetShuttingDown()
		sub.awaitCancelled(t)
		c.ended() // without complete: the client reconnects elsewhere
	})

	t.Run("plain JSON still refused", func(t *testing.T) {
		t.Parallel()
		b := setupSchema(t, newWSSchema(), nil)
		rec := b.send(http.MethodPost, `{"query":"subscription { ticks(topic: \"plain\") }"}`)
		if e := wantCoded(t, rec, http.StatusBadRequest, "SUBSCRIPTION_NEEDS_STREAM"); !strings.Contains(e.Message, "text/event-stream") {
			t.Errorf("message %q does not name text/event-stream", e.Message)
		}
	})

	t.Run("mutation over GET", func(t *testing.T) {
		t.Parallel()
		b := setupSchema(t, newWSSchema(), nil)
		req := httptest.NewRequest(http.MethodGet, "/graphql?query="+url.QueryEscape(`mutation { noop }`), nil)
		req.Header.Set("Content-Type", mediaJSON)
		req.Header.Set("Accept", "text/event-stream")
		wantCoded(t, b.serve(req), http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED")
	})
}

// A stream outlives the server's WriteTimeout (each write has its own
// deadline), and Serve's graceful shutdown ends it instead of waiting for
// it until its timeout.
func TestEventStreamServe(t *testing.T) {
	t.Parallel()
	b := newWSBundle(t, func(cfg *server.Config) { cfg.SSEHeartbeat = 20 * time.Millisecond })
	b.srv.SetHTTPTimeouts(time.Second, 100*time.Millisecond)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b.host = ln.Addr().String()
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	served := make(chan error, 1)
	go func() { served <- b.srv.Serve(ctx, ln, wait) }()

	c := b.stream(t, `subscription { ticks(topic: "long") }`)
	sub := b.schema.await(t, "long")
	for range 10 { // 200 ms of heartbeats: twice the write timeout
		if e := c.read(true); e.name != ":" {
			t.Fatalf("event = %q %q, want a heartbeat", e.name, e.data)
		}
	}
	sub.publish(t, "late")
	if res := c.next(); string(res.Data) != `{"ticks":"late"}` {
		t.Errorf("next = %s %v, want ticks late", res.Data, res.Errors)
	}

	stop()
	sub.awaitCancelled(t)
	c.ended()
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve = %v, want nil", err)
		}
	case <-time.After(wait):
		t.Fatal("Serve did not return")
	}
}
