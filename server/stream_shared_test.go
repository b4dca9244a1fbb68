package server_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/server"
	"github.com/obsqra/obsqra/server/ws"
)

// awaitSharedSubscribers waits until the server's shared streams have n
// subscribers.
func awaitSharedSubscribers(t *testing.T, b *wsBundle, n int) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for b.srv.SharedSubscribers() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d shared subscribers, want %d", b.srv.SharedSubscribers(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// Event streams and sockets subscribed to the same subscription share one
// execution, as sockets do among themselves.
func TestEventStreamShared(t *testing.T) {
	t.Parallel()
	b := setupWS(t)
	const query = `subscription { ticks(topic: "shared-http") }`
	first := b.stream(t, query)
	sub := b.schema.await(t, "shared-http")
	awaitSharedSubscribers(t, b, 1)
	second := b.stream(t, query)
	awaitSharedSubscribers(t, b, 2)
	socket := b.dial(t, "graphql-transport-ws")
	socket.init(nil)
	socket.subscribe("1", query, nil)
	awaitSharedSubscribers(t, b, 3)
	if n := b.schema.execs.Load(); n != 1 {
		t.Fatalf("%d executions for 3 subscribers, want 1", n)
	}

	sub.publish(t, "one")
	for i, c := range []*sseClient{first, second} {
		if res := c.next(); string(res.Data) != `{"ticks":"one"}` {
			t.Errorf("stream %d: next = %s %v", i, res.Data, res.Errors)
		}
	}
	socket.expect("next", "1", `{"data":{"ticks":"one"}}`)

	// One leaving does not end the execution; the stream ending ends
	// every member with complete.
	first.cancel()
	awaitSharedSubscribers(t, b, 2)
	close(sub.events)
	second.complete()
	socket.expect("complete", "1", "")
}

// The limit of connections per client address counts event streams with
// sockets: at the limit one more of either is refused with 429
// RATE_LIMITED before it starts, and a stream that ends frees its place.
func TestEventStreamPerAddressLimit(t *testing.T) {
	t.Parallel()
	b := setupWS(t, func(c *server.Config) { c.WSMaxConnsPerAddress = 2 })
	first := b.stream(t, `subscription { ticks(topic: "limit-1") }`)
	b.schema.await(t, "limit-1")
	socket := b.dial(t, "graphql-transport-ws") // the second: at the limit
	socket.init(nil)

	resp, _ := b.postStream(t, `subscription { ticks(topic: "limit-2") }`, "text/event-stream")
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("one past the limit: %d Retry-After %q %s, want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	var refused gqlResult
	if err := json.Unmarshal(body, &refused); err != nil || len(refused.Errors) != 1 || refused.Errors[0].Extensions["code"] != "RATE_LIMITED" {
		t.Fatalf("one past the limit: %s, want one RATE_LIMITED error", body)
	}
	if _, err := b.tryDial(t, "graphql-transport-ws"); err == nil {
		t.Error("a socket one past the limit was accepted")
	}

	first.cancel()
	deadline := time.Now().Add(wait)
	for {
		resp, cancel := b.postStream(t, `subscription { ticks(topic: "limit-3") }`, "text/event-stream")
		if resp.StatusCode == http.StatusOK {
			b.schema.await(t, "limit-3")
			cancel()
			break
		}
		cancel()
		if time.Now().After(deadline) {
			t.Fatalf("a stream ended, and another is still refused: %d", resp.StatusCode)
		}
		time.Sleep(time.Millisecond)
	}
}

// postStream POSTs query accepting accept and returns the response,
// whatever its status.
func (b *wsBundle) postStream(t *testing.T, query, accept string, headers ...string) (*http.Response, func()) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query})
	req, _ := http.NewRequest(http.MethodPost, "http://"+b.host+"/graphql", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", mediaJSON)
	req.Header.Set("Accept", accept)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp, func() { resp.Body.Close() }
}

// A signed-in event stream ends when its session does, as a socket
// closes: its last result is the refusal, then complete (its client is not
// to reconnect with the same token).
func TestEventStreamRevoked(t *testing.T) {
	t.Parallel()
	b := setupWS(t)
	c := b.stream(t, `subscription { ticks(topic: "shared-private") }`, "Authorization", "Bearer "+goodToken)
	sub := b.schema.await(t, "shared-private")
	sub.publish(t, "before")
	if res := c.next(); string(res.Data) != `{"ticks":"before"}` {
		t.Fatalf("next = %s %v", res.Data, res.Errors)
	}
	// Another user's change touches nothing of ada's.
	b.srv.Observe(obsqra.AccountChangedEvent(ada.ID+1, obsqra.RevokeLogout))
	b.auth.revoke(goodToken, reasonEnded)
	b.srv.Observe(obsqra.AccountChangedEvent(ada.ID, obsqra.RevokeLogout))
	if e := onlyError(t, c.next()); e.Extensions["code"] != "UNAUTHENTICATED" || e.Message != reasonEnded {
		t.Errorf("last result = %q %v, want UNAUTHENTICATED %q", e.Message, e.Extensions, reasonEnded)
	}
	c.complete()
	sub.awaitCancelled(t)
}

// A signed-in event stream ends when its credentials expire.
func TestEventStreamTokenExpiry(t *testing.T) {
	t.Parallel()
	now := time.Date(2031, 5, 1, 12, 0, 0, 0, time.UTC)
	b := setupWS(t)
	b.srv.SetClock(func() time.Time { return now })
	timers := make(chan *fakeTimer, 1)
	b.srv.SetAfterFunc(func(d time.Duration, f func()) interface{ Stop() bool } {
		ft := &fakeTimer{d: d, fire: f}
		timers <- ft
		return ft
	})
	b.auth.expiresAt = now.Add(90 * time.Second)
	c := b.stream(t, `subscription { ticks(topic: "expiring") }`, "Authorization", "Bearer "+expiringToken)
	sub := b.schema.await(t, "expiring")
	var timer *fakeTimer
	select {
	case timer = <-timers:
	case <-time.After(wait):
		t.Fatal("no expiry timer")
	}
	if timer.d != 90*time.Second {
		t.Errorf("expiry timer = %v, want 90s", timer.d)
	}
	sub.publish(t, "before expiry")
	c.next()
	timer.fire()
	if e := onlyError(t, c.next()); e.Extensions["code"] != "UNAUTHENTICATED" || !strings.Contains(e.Message, "expired") {
		t.Errorf("last result = %q %v, want UNAUTHENTICATED, expired", e.Message, e.Extensions)
	}
	c.complete()
	sub.awaitCancelled(t)

	t.Run("already expired", func(t *testing.T) {
		b.auth.expiresAt = now
		c := b.stream(t, `subscription { ticks(topic: "expired") }`, "Authorization", "Bearer "+expiringToken)
		if e := onlyError(t, c.next()); e.Extensions["code"] != "UNAUTHENTICATED" {
			t.Errorf("result = %q %v, want UNAUTHENTICATED", e.Message, e.Extensions)
		}
		c.complete()
	})
}

// A client that does not read its event stream is cut once its queue
// passes the send buffer, without complete (so that it resumes from its
// last cursor), and never holds up the stream's other members.
func TestEventStreamSlowConsumer(t *testing.T) {
	t.Parallel()
	m := &fakeMetrics{}
	b := setupWS(t, func(c *server.Config) { c.WSSendBuffer = 256 << 10 }, withMetrics(m))
	const query = `subscription { ticks(topic: "shared-slow") }`
	// The slow client sends its request and reads nothing.
	slow, err := net.Dial("tcp", b.host)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	body := fmt.Sprintf(`{"query":%q}`, query)
	fmt.Fprintf(slow, "POST /graphql HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nAccept: text/event-stream\r\nContent-Length: %d\r\n\r\n%s",
		b.host, len(body), body)
	sub := b.schema.await(t, "shared-slow")
	awaitSharedSubscribers(t, b, 1)
	fast := b.stream(t, query)
	awaitSharedSubscribers(t, b, 2)

	big := strings.Repeat("x", 60<<10)
	for n := 0; b.srv.SharedSubscribers() == 2; n++ {
		if n > 10000 {
			t.Fatal("the slow consumer was never cut")
		}
		sub.publish(t, big)
		if res := fast.next(); len(res.Data) != len(big)+len(`{"ticks":""}`) {
			t.Fatalf("the fast client got %d bytes", len(res.Data))
		}
	}
	sub.publish(t, "after")
	if res := fast.next(); string(res.Data) != `{"ticks":"after"}` {
		t.Errorf("next = %s", res.Data)
	}
	// The slow client's response ends without complete.
	_ = slow.SetReadDeadline(time.Now().Add(wait))
	rest, err := io.ReadAll(bufio.NewReader(slow))
	if err != nil {
		t.Fatalf("read the slow client's response: %v", err)
	}
	if strings.Contains(string(rest), "event: complete") {
		t.Error("the slow consumer's stream was completed: it would not resume")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !slices.Equal(m.slow, []string{ws.TransportSSE}) {
		t.Errorf("slow consumers counted %q, want one sse", m.slow)
	}
}
