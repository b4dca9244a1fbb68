//go:build linux

package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// streamHead is the head of the server's event-stream response.
const streamHead = "HTTP/1.1 200 OK\r\nCache-Control: no-store\r\nContent-Type: text/event-stream; charset=utf-8\r\n" +
	"X-Accel-Buffering: no\r\nDate: Mon, 07 Dec 2026 05:19:04 GMT\r\nTransfer-Encoding: chunked\r\n\r\n"

// chunked is parts in HTTP/1.1 chunked transfer coding, one chunk each,
// without the last chunk.
func chunked(parts ...string) string {
	var b strings.Builder
	for _, p := range parts {
		fmt.Fprintf(&b, "%x\r\n%s\r\n", len(p), p)
	}
	return b.String()
}

// lastChunk ends a chunked body, without trailer fields.
const lastChunk = "0\r\n\r\n"

// parseAll feeds the pieces to p one after the other, as reads would
// return them, and describes every item and the first error.
func parseAll(p *sseParser, pieces ...string) []string {
	var got []string
	for _, piece := range pieces {
		b := []byte(piece)
		for len(b) > 0 {
			n, item, err := p.parse(b)
			if n < 0 || n > len(b) {
				return append(got, fmt.Sprintf("consumed %d of %d", n, len(b)))
			}
			b = b[n:]
			if err != nil {
				return append(got, "error: "+err.Error())
			}
			switch item {
			case sseHead:
				got = append(got, "head")
			case sseEvent:
				got = append(got, fmt.Sprintf("%s %q", p.eventName(), p.eventData()))
			case sseEnd:
				got = append(got, "end")
			case sseMore:
				if len(b) > 0 {
					return append(got, fmt.Sprintf("more with %d bytes left", len(b)))
				}
			}
		}
	}
	return got
}

// splits returns s whole, split in two at every byte, and byte by byte.
func splits(s string) [][]string {
	all := [][]string{{s}}
	for i := 1; i < len(s); i++ {
		all = append(all, []string{s[:i], s[i:]})
	}
	bytewise := make([]string, len(s))
	for i := range s {
		bytewise[i] = s[i : i+1]
	}
	return append(all, bytewise)
}

func TestSSEParserAtEveryBoundary(t *testing.T) {
	t.Parallel()
	next1 := `{"data":{"riskScoreUpdated":{"cursor":"ZXY6Mzk2","riskScore":{"score":25}}}}`
	next2 := `{"data":{"riskScoreUpdated":{"cursor":"ZXY6Mzk4","riskScore":{"score":37}}}}`
	tests := []struct {
		name string
		in   string
		want []string
	}{{
		name: "the server's stream: results, a heartbeat, complete",
		in: streamHead + chunked("event: next\ndata: "+next1+"\n\n", ":\n\n", "event: next\ndata: "+next2+"\n\n",
			"event: complete\ndata:\n\n") + lastChunk,
		want: []string{"head", "next " + fmt.Sprintf("%q", next1), "next " + fmt.Sprintf("%q", next2), `complete ""`, "end"},
	}, {
		name: "ended without complete, as on shutdown",
		in:   streamHead + chunked("event: next\ndata: "+next1+"\n\n", ":\n\n") + lastChunk,
		want: []string{"head", "next " + fmt.Sprintf("%q", next1), "end"},
	}, {
		name: "events and lines across chunks, several in one, CRLF line ends",
		in: streamHead + chunked("event: ne", "xt\r\ndata: {\"a\"", ":1}\r", "\n\r\n:\n\nevent: next\ndata: 2\n\nevent: next\n",
			"data: 3\n", "\n") + lastChunk,
		want: []string{"head", `next "{\"a\":1}"`, `next "2"`, `next "3"`, "end"},
	}, {
		name: "multi-line data, the default name, no space after the colon, ignored fields",
		in: streamHead + chunked("id: 7\nretry: 100\ndata:first\ndata: second\ndata\n\n", "event: next\ndata: \n\n",
			"event: lost\n\n", "data: x\n\n") + lastChunk,
		// An event without data is not dispatched, and its name is forgotten.
		want: []string{"head", `message "first\nsecond\n"`, `next ""`, `message "x"`, "end"},
	}, {
		name: "chunk extensions, hex sizes in either case and trailer fields",
		in: streamHead + "e;ext=1\r\ndata: twelve\n\n\r\n" + "1B\r\nevent: next\ndata: sixteen\n\n\r\n" +
			"0\r\nTrailer: x\r\n\r\n",
		want: []string{"head", `message "twelve"`, `next "sixteen"`, "end"},
	}, {
		name: "a refusal",
		in: "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nContent-Length: 56\r\n\r\n" +
			`{"errors":[{"message":"no","extensions":{"code":"RATE_LIMITED"}}]}`,
		want: []string{"error: HTTP 429 Too Many Requests: "}, // the body arrives with the head or not
	}, {
		name: "not an event stream",
		in:   "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked("{}"),
		want: []string{`error: HTTP 200 with Content-Type "application/json", not text/event-stream`},
	}, {
		name: "not chunked",
		in:   "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: 4\r\n\r\n:\n\n",
		want: []string{`error: HTTP 200 with Transfer-Encoding "", not chunked`},
	}, {
		name: "a bad chunk size",
		in:   streamHead + "x\r\n",
		want: []string{"head", `error: chunk size: unexpected 'x'`},
	}, {
		name: "chunk data longer than its size",
		in:   streamHead + "2\r\n:\n\n\r\n",
		want: []string{"head", `error: chunk data: '\n' where CRLF ends it`},
	}, {
		name: "data after the end",
		in:   streamHead + lastChunk + "HTTP",
		want: []string{"head", "end", "error: data after the response's end"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for _, pieces := range splits(tt.in) {
				got := parseAll(&sseParser{}, pieces...)
				if strings.HasPrefix(tt.name, "a refusal") && len(got) == 1 {
					// The body is in the error as far as it came with the head.
					got[0] = got[0][:min(len(got[0]), len(tt.want[0]))]
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Fatalf("pieces %q:\n got %q\nwant %q", pieces, got, tt.want)
				}
			}
		})
	}
}

func TestSSEParserRefusalCarriesTheBody(t *testing.T) {
	t.Parallel()
	in := "HTTP/1.1 429 Too Many Requests\r\nContent-Length: 13\r\n\r\n{\"errors\":[]}"
	got := parseAll(&sseParser{}, in)
	want := []string{`error: HTTP 429 Too Many Requests: {"errors":[]}`}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestSSEParserLimits(t *testing.T) {
	t.Parallel()
	head := "HTTP/1.1 200 OK\r\n" + strings.Repeat("X-Pad: 0123456789\r\n", maxHeadBytes/10)
	if got := parseAll(&sseParser{}, head); len(got) != 1 || !strings.Contains(got[0], "response head of over") {
		t.Errorf("an endless head: %q", got)
	}
	if got := parseAll(&sseParser{}, streamHead+"FFFFFFFFFF\r\n"); len(got) != 2 || !strings.Contains(got[1], "chunk of over") {
		t.Errorf("a huge chunk: %q", got)
	}
	line := strings.Repeat("d", 64<<10)
	var pieces []string
	for range maxLineBytes/len(line) + 1 {
		pieces = append(pieces, chunked(line))
	}
	if got := parseAll(&sseParser{}, append([]string{streamHead}, pieces...)...); len(got) != 2 || !strings.Contains(got[1], "line of over") {
		t.Errorf("an endless line: %q", got)
	}
}

func TestSSEParserReset(t *testing.T) {
	t.Parallel()
	var p sseParser
	first := parseAll(&p, streamHead+chunked("event: next\ndata: 1\n\nevent: next\ndata: par"))
	if want := []string{"head", `next "1"`}; !reflect.DeepEqual(first, want) {
		t.Fatalf("first response: got %q, want %q", first, want)
	}
	if !p.subscribed() {
		t.Fatal("not subscribed after the head")
	}
	p.reset() // the connection dropped mid-event: a new response starts clean
	if p.subscribed() {
		t.Fatal("subscribed after reset")
	}
	second := parseAll(&p, streamHead+chunked("event: next\ndata: 2\n\n")+lastChunk)
	if want := []string{"head", `next "2"`, "end"}; !reflect.DeepEqual(second, want) {
		t.Errorf("second response: got %q, want %q", second, want)
	}
}

// TestReadStream reads a response as the server writes it, split at every
// byte, through the connection's handling: scores counted, the cursor
// kept for a reconnection, and the end of the stream.
func TestReadStream(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 7, 5, 19, 4, 116401000, time.UTC)
	score := func(id int, cursor string, computed time.Time) string {
		return fmt.Sprintf("event: next\ndata: {\"data\":{\"riskScoreUpdated\":{\"cursor\":%q,\"riskScore\":{\"score\":%d,"+
			"\"computedAt\":%q,\"protocol\":{\"slug\":\"vesu\"}}}}}\n\n", cursor, id, computed.Format(time.RFC3339Nano))
	}
	body := chunked(score(1, "ZXY6Mzk2", at), ":\n\n", score(2, "ZXY6Mzk4", at.Add(5*time.Second)))
	from, until := at.Add(-time.Second).UnixNano(), at.Add(time.Minute).UnixNano()
	for _, end := range []struct {
		name, bytes string
		want        error
	}{
		{"without complete", lastChunk, errEndedWithoutComplete},
		{"with complete", chunked("event: complete\ndata:\n\n") + lastChunk, errStreamComplete},
	} {
		for _, pieces := range splits(streamHead + body + end.bytes) {
			subscribed := make(chan error, 1)
			c := &genConn{sse: &sseParser{}, subscribed: subscribed}
			var err error
			for _, piece := range pieces {
				if err = c.readStream([]byte(piece), at.Add(10*time.Second), from, until, nil); err != nil {
					break
				}
			}
			if !errors.Is(err, end.want) {
				t.Fatalf("%s, pieces %q: err %v, want %v", end.name, pieces, err, end.want)
			}
			if len(subscribed) != 1 || <-subscribed != nil || c.subscribed != nil {
				t.Fatalf("%s, pieces %q: the head was not reported once", end.name, pieces)
			}
			if c.n != 2 || !reflect.DeepEqual(c.ids, []int32{396, 398}) || c.cursor != "ZXY6Mzk4" ||
				!reflect.DeepEqual(c.lat, []int32{10000, 5000}) {
				t.Fatalf("%s, pieces %q: n %d, ids %v, cursor %q, latencies %v", end.name, pieces, c.n, c.ids, c.cursor, c.lat)
			}
		}
	}
}

// TestSSERequest checks that an event stream subscribes with the document
// and variables of the WebSocket path: liveQuery first, then resumeQuery
// after the last cursor.
func TestSSERequest(t *testing.T) {
	t.Parallel()
	target, err := parseSSETarget("http://127.0.0.1:8080/graphql")
	if err != nil {
		t.Fatal(err)
	}
	var ws struct {
		Payload map[string]any `json:"payload"`
	}
	if err := json.Unmarshal([]byte(subscription), &ws); err != nil {
		t.Fatalf("the WebSocket subscribe message: %v", err)
	}
	for _, tt := range []struct {
		cursor string
		want   map[string]any
	}{
		{"", ws.Payload},
		{"ZXY6Mzk2", map[string]any{"query": resumeQuery, "variables": map[string]any{"after": "ZXY6Mzk2"}}},
	} {
		req := string(sseRequest(target, tt.cursor))
		head, body, ok := strings.Cut(req, "\r\n\r\n")
		wantHead := "POST /graphql HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Type: application/json\r\n" +
			"Accept: text/event-stream\r\nContent-Length: " + fmt.Sprint(len(body))
		if !ok || head != wantHead {
			t.Errorf("cursor %q: head %q, want %q", tt.cursor, head, wantHead)
		}
		var got map[string]any
		if err := json.Unmarshal([]byte(body), &got); err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("cursor %q: body %s (%v), want %v", tt.cursor, body, err, tt.want)
		}
	}
	if ws.Payload["query"] != liveQuery {
		t.Errorf("the WebSocket path subscribes with %v, not liveQuery", ws.Payload["query"])
	}
}

// TestReadStreamRefusal checks that an answer that is no event stream is a
// refusal, which a reconnection reports, and that the initial dialling
// is not told the connection subscribed.
func TestReadStreamRefusal(t *testing.T) {
	t.Parallel()
	subscribed := make(chan error, 1)
	c := &genConn{sse: &sseParser{}, subscribed: subscribed}
	err := c.readStream([]byte("HTTP/1.1 429 Too Many Requests\r\nContent-Length: 2\r\n\r\n{}"), time.Now(), 0, 1, nil)
	if !errors.As(err, new(*refusal)) || err.Error() != "subscribe: HTTP 429 Too Many Requests: {}" {
		t.Errorf("err %v, want a refusal", err)
	}
	if len(subscribed) != 0 || c.subscribed == nil || c.sse.subscribed() {
		t.Error("a refused connection is taken as subscribed")
	}
}
