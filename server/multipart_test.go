package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/obsqra/obsqra/server"
)

// Apollo's multipart HTTP subscriptions on the wire, read byte by byte
// from a real connection.
const (
	// acceptMultipart is the Accept header of Apollo Client 4's HttpLink
	// for a subscription.
	acceptMultipart = "multipart/mixed;boundary=graphql;subscriptionSpec=1.0,application/graphql-response+json,application/json;q=0.9"
	// multipartType is the Content-Type of the stream.
	multipartType = `multipart/mixed; boundary="graphql"; subscriptionSpec="1.0"`
	// delimiter opens the body and ends each part (RFC 2046: CRLF, "--",
	// the boundary), so that a part is whole as soon as it is written.
	delimiter = "\r\n--graphql"
	// partHead completes the delimiter's line and starts a JSON part.
	partHead = "\r\nContent-Type: application/json; charset=utf-8\r\n\r\n"
	// closing completes the last delimiter as the close delimiter.
	closing = "--\r\n"
	// heartbeatPart is a whole heartbeat part.
	heartbeatPart = partHead + "{}" + delimiter
)

// multipartBody is a test's end of a multipart stream: what the server
// has sent so far, and how much of it the test has read.
type multipartBody struct {
	t      *testing.T
	resp   *http.Response
	cancel context.CancelFunc

	mu      sync.Mutex
	buf     []byte
	eof     bool
	arrived chan struct{} // closed and replaced when buf grows or the body ends

	pos int // read by the test so far
}

// openMultipart sends query with method and Apollo's Accept header, and
// headers (name, value pairs), failing unless the answer is a 200
// multipart stream.
func (b *wsBundle) openMultipart(t *testing.T, method, query string, headers ...string) *multipartBody {
	t.Helper()
	resp, cancel := b.request(t, method, query, acceptMultipart, headers...)
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || ct != multipartType {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("response %d %s %s, want 200 %s", resp.StatusCode, ct, body, multipartType)
	}
	m := &multipartBody{t: t, resp: resp, cancel: cancel, arrived: make(chan struct{})}
	go m.readAll()
	return m
}

// request sends query to b's server by method (in a JSON body, or in the
// URL of a GET) with Accept accept and headers (name, value pairs).
func (b *wsBundle) request(t *testing.T, method, query, accept string, headers ...string) (*http.Response, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	target := "http://" + b.host + "/graphql"
	var body io.Reader
	if method == http.MethodGet {
		target += "?query=" + url.QueryEscape(query)
	} else {
		js, _ := json.Marshal(map[string]any{"query": query})
		body = bytes.NewReader(js)
	}
	req, _ := http.NewRequestWithContext(ctx, method, target, body)
	req.Header.Set("Content-Type", mediaJSON)
	req.Header.Set("Accept", accept)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp, cancel
}

// readAll appends what arrives to m.buf until the body ends.
func (m *multipartBody) readAll() {
	p := make([]byte, 4096)
	for {
		n, err := m.resp.Body.Read(p)
		m.mu.Lock()
		m.buf = append(m.buf, p[:n]...)
		m.eof = err != nil
		close(m.arrived)
		m.arrived = make(chan struct{})
		m.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// await waits until done reports true of what has arrived and not been
// read, or the body ends, and returns what has arrived after m.pos.
func (m *multipartBody) await(done func(unread []byte) bool) (unread []byte, eof bool) {
	m.t.Helper()
	deadline := time.After(wait)
	for {
		m.mu.Lock()
		unread, eof, arrived := m.buf[m.pos:], m.eof, m.arrived
		m.mu.Unlock()
		if eof || done(unread) {
			return unread, eof
		}
		select {
		case <-arrived:
		case <-deadline:
			return unread, false
		}
	}
}

// expect reads want, failing unless it is exactly what comes next.
func (m *multipartBody) expect(want string) {
	m.t.Helper()
	unread, _ := m.await(func(b []byte) bool { return len(b) >= len(want) })
	if !bytes.HasPrefix(unread, []byte(want)) {
		m.t.Fatalf("the body goes on with %q, want %q", unread, want)
	}
	m.pos += len(want)
}

// part reads the next whole part and returns its JSON, skipping
// heartbeats unless keepHeartbeats; it fails unless the part is a JSON
// part followed by a delimiter.
func (m *multipartBody) part(keepHeartbeats bool) string {
	m.t.Helper()
	for {
		unread, _ := m.await(func(b []byte) bool {
			return len(b) > len(partHead) && bytes.Contains(b[len(partHead):], []byte(delimiter))
		})
		if !bytes.HasPrefix(unread, []byte(partHead)) {
			m.t.Fatalf("the body goes on with %q, want a JSON part", unread)
		}
		n := bytes.Index(unread[len(partHead):], []byte(delimiter))
		if n < 0 {
			m.t.Fatalf("the body goes on with %q, want a whole part (ended by its delimiter)", unread)
		}
		m.pos += len(partHead) + n + len(delimiter)
		if js := string(unread[len(partHead) : len(partHead)+n]); js != "{}" || keepHeartbeats {
			return js
		}
	}
}

// payload reads the next part, failing unless it holds a payload, and
// returns the payload.
func (m *multipartBody) payload() gqlResult {
	m.t.Helper()
	return decodePayload(m.t, m.part(false))
}

// decodePayload decodes the payload of a part, failing unless the part
// is {"payload": result} and nothing else.
func decodePayload(t *testing.T, part string) gqlResult {
	t.Helper()
	var p map[string]json.RawMessage
	var res gqlResult
	if err := json.Unmarshal([]byte(part), &p); err != nil || len(p) != 1 || p["payload"] == nil {
		t.Fatalf("part %s is not {\"payload\": result} (%v)", part, err)
	}
	if err := json.Unmarshal(p["payload"], &res); err != nil {
		t.Fatalf("payload %s: %v", p["payload"], err)
	}
	return res
}

// ended waits for the end of the body and returns what came after m.pos.
func (m *multipartBody) ended() string {
	m.t.Helper()
	rest, eof := m.await(func([]byte) bool { return false })
	if !eof {
		m.t.Fatalf("the body did not end; it goes on with %q", rest)
	}
	m.pos += len(rest)
	return string(rest)
}

// completed reads the close delimiter and then the end of the body.
func (m *multipartBody) completed() {
	m.t.Helper()
	m.expect(closing)
	if rest := m.ended(); rest != "" {
		m.t.Errorf("after the close delimiter: %q, want the end", rest)
	}
}

// all is everything the body held so far.
func (m *multipartBody) all() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return string(m.buf)
}

// noHeartbeat makes heartbeats too rare to come during a test: nothing
// but the event itself may complete its part.
func noHeartbeat(cfg *server.Config) { cfg.SSEHeartbeat = time.Hour }

func TestMultipartSubscription(t *testing.T) {
	t.Parallel()

	t.Run("wire format", func(t *testing.T) {
		t.Parallel()
		b := setupWS(t, noHeartbeat)
		m := b.openMultipart(t, http.MethodPost, `subscription { ticks(topic: "multipart") }`)
		for name, want := range map[string]string{"Cache-Control": "no-store", "X-Accel-Buffering": "no"} {
			if got := m.resp.Header.Get(name); got != want {
				t.Errorf("%s = %q, want %q", name, got, want)
			}
		}
		m.expect(delimiter) // with the header, before any event
		sub := b.schema.await(t, "multipart")
		// Each part is whole, its delimiter after it, before the next
		// event: Apollo Client splits the body on delimiters.
		sub.publish(t, "one")
		m.expect(partHead + `{"payload":{"data":{"ticks":"one"}}}` + delimiter)
		sub.publish(t, "two")
		m.expect(partHead + `{"payload":{"data":{"ticks":"two"}}}` + delimiter)
		close(sub.events)
		m.completed()
		want := "\r\n--graphql\r\nContent-Type: application/json; charset=utf-8\r\n\r\n" + `{"payload":{"data":{"ticks":"one"}}}` +
			"\r\n--graphql\r\nContent-Type: application/json; charset=utf-8\r\n\r\n" + `{"payload":{"data":{"ticks":"two"}}}` +
			"\r\n--graphql--\r\n"
		if got := m.all(); got != want {
			t.Errorf("body = %q, want %q", got, want)
		}
	})

	t.Run("GET", func(t *testing.T) {
		t.Parallel()
		b := setupWS(t, noHeartbeat)
		m := b.openMultipart(t, http.MethodGet, `subscription { ticks(topic: "get") }`)
		m.expect(delimiter)
		sub := b.schema.await(t, "get")
		sub.publish(t, "got")
		if res := m.payload(); string(res.Data) != `{"ticks":"got"}` || len(res.Errors) != 0 {
			t.Errorf("payload = %s %v, want ticks got", res.Data, res.Errors)
		}
		close(sub.events)
		m.completed()
	})

	t.Run("heartbeat", func(t *testing.T) {
		t.Parallel()
		b := setupWS(t, func(cfg *server.Config) { cfg.SSEHeartbeat = 10 * time.Millisecond })
		m := b.openMultipart(t, http.MethodPost, `subscription { ticks(topic: "quiet") }`)
		m.expect(delimiter)
		sub := b.schema.await(t, "quiet")
		for range 3 {
			m.expect(heartbeatPart)
		}
		sub.publish(t, "between")
		for {
			js := m.part(true)
			if js == "{}" {
				continue
			}
			if js != `{"payload":{"data":{"ticks":"between"}}}` {
				t.Fatalf("part %s, want the event", js)
			}
			break
		}
		m.expect(heartbeatPart) // and on they go
	})

	t.Run("ended by the subscription", func(t *testing.T) {
		t.Parallel()
		b := setupWS(t, noHeartbeat)
		m := b.openMultipart(t, http.MethodPost, `subscription { ticks(topic: "slow") }`)
		m.expect(delimiter)
		sub := b.schema.await(t, "slow")
		sub.publish(t, "first")
		m.payload()
		sub.publish(t, slowConsumer)
		// The error is the payload's, a GraphQL result, as any event's: a
		// top-level "errors" would be a transport error to Apollo Client.
		part := m.part(false)
		if !strings.HasPrefix(part, `{"payload":{"errors":[`) {
			t.Errorf("part %s, want {\"payload\":{\"errors\":[…]}}", part)
		}
		res := decodePayload(t, part)
		if e := onlyError(t, res); e.Extensions["code"] != "RATE_LIMITED" || !strings.Contains(e.Message, "cursor 41") {
			t.Errorf("error = %q %v, want RATE_LIMITED with the cursor", e.Message, e.Extensions)
		}
		if len(res.Data) != 0 && string(res.Data) != "null" {
			t.Errorf("the error's payload has data %s", res.Data)
		}
		m.completed()
	})

	t.Run("refused token", func(t *testing.T) {
		t.Parallel()
		b := setupWS(t, noHeartbeat)
		m := b.openMultipart(t, http.MethodPost, `subscription { ticks(topic: "refused") }`, "Authorization", "Bearer stale")
		m.expect(delimiter)
		if e := onlyError(t, m.payload()); e.Extensions["code"] != "UNAUTHENTICATED" || e.Message != "access token is invalid" {
			t.Errorf("error = %q %v, want UNAUTHENTICATED", e.Message, e.Extensions)
		}
		m.completed()
		if n := b.schema.execs.Load(); n != 0 {
			t.Errorf("the subscription was executed %d times, want 0", n)
		}
	})

	t.Run("client goes away", func(t *testing.T) {
		t.Parallel()
		b := setupWS(t, noHeartbeat)
		m := b.openMultipart(t, http.MethodPost, `subscription { ticks(topic: "gone") }`)
		m.expect(delimiter)
		sub := b.schema.await(t, "gone")
		m.cancel()
		sub.awaitCancelled(t)
	})

	t.Run("server shuts down", func(t *testing.T) {
		t.Parallel()
		b := setupWS(t, noHeartbeat)
		m := b.openMultipart(t, http.MethodPost, `subscription { ticks(topic: "shutdown") }`)
		m.expect(delimiter)
		sub := b.schema.await(t, "shutdown")
		sub.publish(t, "last")
		m.payload()
		b.srv.SetShuttingDown()
		sub.awaitCancelled(t)
		// No close delimiter: the body ends after a part's delimiter, which
		// Apollo Client reports as a premature end, so that the client
		// subscribes again (elsewhere, after its last cursor).
		if rest := m.ended(); rest != "" {
			t.Errorf("after the last part: %q, want the end", rest)
		}
		if all := m.all(); strings.Contains(all, delimiter+"--") || !strings.HasSuffix(all, delimiter) {
			t.Errorf("body = %q, want it to end with a delimiter, not the close delimiter", all)
		}
	})
}

// What is not a stream of several results is answered as JSON, under
// the JSON media type the Accept header names after the multipart one.
func TestMultipartAcceptNotStreamed(t *testing.T) {
	t.Parallel()
	b := setupWS(t)
	for _, tt := range []struct {
		name, query string
		status      int
		code        string
	}{
		{"query", `{ whoami }`, http.StatusOK, ""},
		{"refused subscription", `subscription { nope }`, http.StatusBadRequest, "GRAPHQL_VALIDATION_FAILED"},
		{"subscription that does not parse", `subscription {`, http.StatusBadRequest, "GRAPHQL_PARSE_FAILED"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, _ := b.request(t, http.MethodPost, tt.query, acceptMultipart)
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if ct := resp.Header.Get("Content-Type"); resp.StatusCode != tt.status || ct != mediaGraphQLResponse {
				t.Fatalf("response %d %s %s, want %d %s", resp.StatusCode, ct, body, tt.status, mediaGraphQLResponse)
			}
			var res gqlResult
			if err := json.Unmarshal(body, &res); err != nil {
				t.Fatalf("body %s: %v", body, err)
			}
			if tt.code == "" {
				if !strings.Contains(string(res.Data), "anonymous") || len(res.Errors) != 0 {
					t.Errorf("result %s %v, want whoami", res.Data, res.Errors)
				}
			} else if e := onlyError(t, res); e.Extensions["code"] != tt.code {
				t.Errorf("error = %q %v, want %s", e.Message, e.Extensions, tt.code)
			}
		})
	}

	t.Run("subscription over plain JSON", func(t *testing.T) {
		b := setupWS(t)
		resp, _ := b.request(t, http.MethodPost, `subscription { ticks(topic: "plain") }`, mediaJSON)
		body, _ := io.ReadAll(resp.Body)
		var res gqlResult
		if err := json.Unmarshal(body, &res); err != nil || resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("response %d %s (%v), want 400", resp.StatusCode, body, err)
		}
		if e := onlyError(t, res); e.Extensions["code"] != "SUBSCRIPTION_NEEDS_STREAM" || !strings.Contains(e.Message, "subscriptionSpec=1.0") {
			t.Errorf("error = %q %v, want SUBSCRIPTION_NEEDS_STREAM naming the multipart Accept", e.Message, e.Extensions)
		}
		if n := b.schema.execs.Load(); n != 0 {
			t.Errorf("operations executed: %d, want 0", n)
		}
	})
}

// A multipart stream outlives the server's WriteTimeout, as an event
// stream does (each write gets its own deadline through the writer that
// opens the body), and Serve's graceful shutdown cuts it short.
func TestMultipartServe(t *testing.T) {
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

	m := b.openMultipart(t, http.MethodPost, `subscription { ticks(topic: "long") }`)
	m.expect(delimiter)
	sub := b.schema.await(t, "long")
	for range 10 { // 200 ms of heartbeats: twice the write timeout
		m.expect(heartbeatPart)
	}
	sub.publish(t, "late")
	if res := m.payload(); string(res.Data) != `{"ticks":"late"}` {
		t.Errorf("payload = %s %v, want ticks late", res.Data, res.Errors)
	}

	stop()
	sub.awaitCancelled(t)
	m.ended()
	if all := m.all(); strings.Contains(all, delimiter+"--") {
		t.Errorf("a stream cut short by the shutdown ends with the close delimiter: …%q", all[max(len(all)-40, 0):])
	}
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve = %v, want nil", err)
		}
	case <-time.After(wait):
		t.Fatal("Serve did not return")
	}
}
