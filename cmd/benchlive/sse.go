//go:build linux

package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
)

// With -transport sse every subscriber is one HTTP/1.1 request, POST
// /graphql with Accept: text/event-stream (graphql-sse's distinct
// connections mode), on a socket of its own. The server answers 200 with a
// chunked text/event-stream: each result an "event: next", a ":" comment
// as a heartbeat every 12 s, and "event: complete" at the end; when it
// shuts down, the response ends without the complete, and the subscriber
// reconnects after its last cursor. A complete, which the server sends
// only after an error (RATE_LIMITED for a reader too slow, with the cursor
// to resume from), is handled as the WebSocket path handles its complete:
// the subscriber resumes after its last cursor too. The epoll loop reads these responses
// as it reads WebSocket frames: each socket has a small sseParser, which
// takes whatever bytes a read returned, across chunk and event boundaries.

// Transports a generator subscribes over.
const (
	transportWS  = "ws"
	transportSSE = "sse"
)

// errStreamComplete is the end of an event stream with its complete: the
// server ended the subscription.
var errStreamComplete = errors.New("complete: the server ended the subscription")

// errEndedWithoutComplete is the end of an event stream without its
// complete, as when the server shuts down: the client reconnects after its
// last cursor.
var errEndedWithoutComplete = errors.New("read: the response ended without complete")

// refusal is a response to a subscription request that is not an event
// stream (or not a well-formed one): the server refused it.
type refusal struct{ err error }

func (r *refusal) Error() string { return "subscribe: " + r.err.Error() }
func (r *refusal) Unwrap() error { return r.err }

// sseTarget is where SSE subscribers send their requests.
type sseTarget struct {
	addr string // host:port to dial
	host string // the Host header
	path string // the request target
}

// parseSSETarget parses the server's http:// GraphQL URL.
func parseSSETarget(raw string) (sseTarget, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return sseTarget{}, err
	}
	if u.Scheme != "http" || u.Host == "" {
		return sseTarget{}, fmt.Errorf("%q: an http:// URL is needed for -transport sse", raw)
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	return sseTarget{addr: addr, host: u.Host, path: u.RequestURI()}, nil
}

// sseRequest is the whole request of a subscriber: the document and
// variables the WebSocket path subscribes with (resumeQuery after cursor,
// unless it is empty) as the JSON body of a POST.
func sseRequest(t sseTarget, cursor string) []byte {
	var body []byte
	var err error
	if cursor == "" {
		body, err = json.Marshal(struct {
			Query string `json:"query"`
		}{liveQuery})
	} else {
		body, err = json.Marshal(struct {
			Query     string            `json:"query"`
			Variables map[string]string `json:"variables"`
		}{resumeQuery, map[string]string{"after": cursor}})
	}
	if err != nil {
		panic(err) // strings always marshal
	}
	req := fmt.Appendf(nil, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"+
		"Accept: text/event-stream\r\nContent-Length: %d\r\n\r\n", t.path, t.host, len(body))
	return append(req, body...)
}

// dialSSE connects to t, sends the subscription request (after cursor,
// unless it is empty), and returns a socket of its own (non-blocking) on
// which the response will arrive, its head included.
func dialSSE(t sseTarget, cursor string) (int, error) {
	nc, err := net.DialTimeout("tcp", t.addr, 30*time.Second)
	if err != nil {
		return -1, fmt.Errorf("dial: %w", err)
	}
	defer nc.Close() // the socket lives on as the duplicate
	// A request of a few hundred bytes fits any fresh socket's buffer.
	if err := nc.SetWriteDeadline(time.Now().Add(30 * time.Second)); err != nil {
		return -1, err
	}
	if _, err := nc.Write(sseRequest(t, cursor)); err != nil {
		return -1, fmt.Errorf("request: %w", err)
	}
	return dupNonblock(nc)
}

// sseItem is what one call of sseParser.parse found.
type sseItem uint8

const (
	sseMore  sseItem = iota // nothing yet: the input ran out
	sseHead                 // the response's head: 200, text/event-stream, chunked
	sseEvent                // an event: its name and data
	sseEnd                  // the response's last chunk (and trailer)
)

// The states of an sseParser: where in the response the next byte is.
const (
	inHead      uint8 = iota // the status line and header fields
	inSize                   // a chunk's size, in hex
	inExtension              // a chunk extension, up to its CR
	inSizeLF                 // the LF of the chunk-size line
	inData                   // chunk data: left bytes more
	inDataCR                 // the CR after chunk data
	inDataLF                 // and its LF
	inTrailer                // trailer fields after the last chunk, up to a blank line
	inTrailerLF              // the LF of a trailer line
	ended                    // after the response
)

// Bounds of what an sseParser holds for one connection.
const (
	maxHeadBytes  = 16 << 10
	maxLineBytes  = 1 << 20
	maxChunkBytes = 1 << 30
)

// sseParser reads one event-stream response, as the bytes arrive: the
// head, then HTTP/1.1 chunked transfer coding, and in the chunks' data the
// event stream (lines ending in LF or CRLF; "event:" and "data:" fields,
// several data lines joined by LF; ":" comments skipped; a blank line ends
// an event). It keeps only what spans reads: the head until it is whole,
// a line not yet ended, and the event being read.
type sseParser struct {
	state uint8
	// left is, in inData, the chunk's bytes still to come; in inSize the
	// size read so far; in inTrailer the trailer line's length so far.
	left int
	head []byte // the head so far, nil once it is parsed
	line []byte // a line the chunk data has not ended yet
	name []byte // the event's name ("event:"), empty for the default
	data []byte // the event's data lines, each followed by LF
	// hasData says the event has a data field (its value may be empty,
	// as complete's is); dispatched that name and data were returned and
	// are to be cleared before the next line.
	hasData, dispatched bool
}

// subscribed reports whether the response's head has been parsed (and was
// an event stream).
func (p *sseParser) subscribed() bool { return p.state != inHead }

// reset readies p for a new response, keeping its buffers.
func (p *sseParser) reset() {
	*p = sseParser{line: p.line[:0], name: p.name[:0], data: p.data[:0]}
}

// parse reads b up to the end of the next item and returns how many bytes
// it consumed and the item: sseMore once it consumed all of b without
// completing one. After sseEvent, eventName and eventData are the event's
// until the next call. An error means the response is not an event
// stream, or not a well-formed one.
func (p *sseParser) parse(b []byte) (int, sseItem, error) {
	if p.dispatched {
		p.name, p.data, p.hasData, p.dispatched = p.name[:0], p.data[:0], false, false
	}
	i := 0
	for i < len(b) {
		switch p.state {
		case inHead:
			n, err := p.parseHead(b[i:])
			i += n
			if err != nil {
				return i, sseMore, err
			}
			if p.state != inHead {
				return i, sseHead, nil
			}
		case inSize:
			c := b[i]
			i++
			switch d := hexDigit(c); {
			case d >= 0:
				if p.left = p.left<<4 | d; p.left > maxChunkBytes {
					return i, sseMore, fmt.Errorf("chunk of over %d bytes", maxChunkBytes)
				}
			case c == ';' || c == ' ' || c == '\t':
				p.state = inExtension
			case c == '\r':
				p.state = inSizeLF
			default:
				return i, sseMore, fmt.Errorf("chunk size: unexpected %q", c)
			}
		case inExtension:
			if b[i] == '\r' {
				p.state = inSizeLF
			}
			i++
		case inSizeLF:
			if b[i] != '\n' {
				return i, sseMore, fmt.Errorf("chunk size: %q after CR", b[i])
			}
			i++
			if p.left == 0 {
				p.state = inTrailer // the last chunk
			} else {
				p.state = inData
			}
		case inData:
			n, event, err := p.parseLines(b[i:min(len(b), i+p.left)])
			i += n
			p.left -= n
			if p.left == 0 {
				p.state = inDataCR
			}
			if err != nil {
				return i, sseMore, err
			}
			if event {
				return i, sseEvent, nil
			}
		case inDataCR, inDataLF:
			want := byte('\r')
			if p.state == inDataLF {
				want = '\n'
			}
			if b[i] != want {
				return i, sseMore, fmt.Errorf("chunk data: %q where CRLF ends it", b[i])
			}
			i++
			if p.state++; p.state > inDataLF {
				p.state = inSize
			}
		case inTrailer:
			c := b[i]
			i++
			if c == '\r' {
				p.state = inTrailerLF
			} else {
				p.left++
			}
		case inTrailerLF:
			if b[i] != '\n' {
				return i, sseMore, fmt.Errorf("trailer: %q after CR", b[i])
			}
			i++
			if p.left == 0 {
				p.state = ended
				return i, sseEnd, nil
			}
			p.left, p.state = 0, inTrailer
		case ended:
			return i, sseMore, errors.New("data after the response's end")
		}
	}
	return i, sseMore, nil
}

// eventName is the name of the event parse returned ("message" when it had
// no event field, as in EventSource).
func (p *sseParser) eventName() []byte {
	if len(p.name) == 0 {
		return []byte("message")
	}
	return p.name
}

// eventData is the data of the event parse returned: its data lines
// joined by LF.
func (p *sseParser) eventData() []byte { return p.data[:max(0, len(p.data)-1)] }

// parseHead reads the head from b, up to its blank line, and checks it:
// 200, a text/event-stream, in chunks. It returns how many bytes of b
// belong to the head. Only a head that spans reads is copied: the events
// that follow it in the same read are not.
func (p *sseParser) parseHead(b []byte) (int, error) {
	blank := []byte("\r\n\r\n")
	end := -1 // in b, just after the blank line
	if old := len(p.head); old > 0 {
		// The blank line may begin in an earlier read.
		straddle := append(p.head[max(0, old-3):old:old], b[:min(3, len(b))]...)
		if k := bytes.Index(straddle, blank); k >= 0 {
			end = k + 4 - min(3, old)
		}
	}
	if end < 0 {
		if k := bytes.Index(b, blank); k >= 0 {
			end = k + 4
		}
	}
	if end < 0 {
		if len(p.head)+len(b) > maxHeadBytes {
			return len(b), fmt.Errorf("response head of over %d bytes", maxHeadBytes)
		}
		p.head = append(p.head, b...)
		return len(b), nil
	}
	used, rest := end, b[end:]
	head := string(append(p.head, b[:end]...))
	head = head[:len(head)-4]
	p.head = nil
	status, fields, _ := strings.Cut(head, "\r\n")
	proto, code, _ := strings.Cut(status, " ")
	if !strings.HasPrefix(proto, "HTTP/1.") {
		return used, fmt.Errorf("not an HTTP/1.x response: %.60q", status)
	}
	if code, _, _ = strings.Cut(code, " "); code != "200" {
		// The body, as far as it came, says why (a JSON error).
		return used, fmt.Errorf("HTTP %s: %.200s", strings.TrimPrefix(status, proto+" "), rest)
	}
	var contentType, encoding string
	for field := range strings.SplitSeq(fields, "\r\n") {
		name, value, _ := strings.Cut(field, ":")
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "content-type":
			contentType = strings.TrimSpace(value)
		case "transfer-encoding":
			encoding = strings.ToLower(strings.TrimSpace(value))
		}
	}
	if mt, _, _ := strings.Cut(contentType, ";"); !strings.EqualFold(strings.TrimSpace(mt), "text/event-stream") {
		return used, fmt.Errorf("HTTP 200 with Content-Type %q, not text/event-stream", contentType)
	}
	if encoding != "chunked" {
		return used, fmt.Errorf("HTTP 200 with Transfer-Encoding %q, not chunked", encoding)
	}
	p.state = inSize
	return used, nil
}

// parseLines reads the event stream's lines from b (chunk data) up to the
// blank line that ends an event, or all of b. It returns how many bytes
// it consumed and whether an event ended.
func (p *sseParser) parseLines(b []byte) (int, bool, error) {
	i := 0
	for i < len(b) {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			if len(p.line)+len(b)-i > maxLineBytes {
				return len(b), false, fmt.Errorf("event-stream line of over %d bytes", maxLineBytes)
			}
			p.line = append(p.line, b[i:]...)
			return len(b), false, nil
		}
		line := b[i : i+j]
		if len(p.line) > 0 {
			p.line = append(p.line, line...)
			line = p.line
		}
		i += j + 1
		event := p.field(bytes.TrimSuffix(line, []byte("\r")))
		p.line = p.line[:0]
		if event {
			p.dispatched = true
			return i, true, nil
		}
	}
	return i, false, nil
}

// field handles one line of the event stream, and reports whether it
// ended an event (a blank line after a data field).
func (p *sseParser) field(line []byte) bool {
	if len(line) == 0 {
		if p.hasData {
			return true
		}
		p.name = p.name[:0] // an event without data is not dispatched
		return false
	}
	if line[0] == ':' {
		return false // a comment: the heartbeat
	}
	name, value, _ := bytes.Cut(line, []byte(":"))
	value = bytes.TrimPrefix(value, []byte(" "))
	switch string(name) {
	case "event":
		p.name = append(p.name[:0], value...)
	case "data":
		p.data = append(append(p.data, value...), '\n')
		p.hasData = true
	}
	return false // id and retry mean nothing here
}

// hexDigit is c's value as a hex digit, or -1.
func hexDigit(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// sseHandshakeTimeout bounds how long an initial subscriber waits for its
// response's head, as the WebSocket dialer's HandshakeTimeout does.
const sseHandshakeTimeout = 30 * time.Second

// awaitSubscribed waits for the loop to read an initial event stream's
// response head, for at most sseHandshakeTimeout.
func awaitSubscribed(subscribed <-chan error) error {
	select {
	case err := <-subscribed:
		return err
	case <-time.After(sseHandshakeTimeout):
		return fmt.Errorf("subscribe: no response head after %v", sseHandshakeTimeout)
	}
}

// readStream handles what one read of an event stream returned, received
// at now: the response's head (the connection is subscribed), then its
// events. An error means the stream is over: its complete, its end
// without one, or a response that is not an event stream.
func (c *genConn) readStream(data []byte, now time.Time, from, until int64, events map[string]bool) error {
	for len(data) > 0 {
		n, item, err := c.sse.parse(data)
		data = data[n:]
		if err != nil {
			if !c.sse.subscribed() {
				return &refusal{err}
			}
			return fmt.Errorf("read: %w", err)
		}
		switch item {
		case sseHead:
			if c.subscribed != nil {
				c.subscribed <- nil
				c.subscribed = nil
			}
			if c.drops > 0 {
				c.reconnectedAt = now.UnixNano()
			}
		case sseEvent:
			name, m := c.sse.eventName(), c.sse.eventData()
			if len(c.kinds) < 2 {
				c.kinds = append(c.kinds, fmt.Sprintf("%s %.300s", name, m))
			}
			switch string(name) {
			case "next":
				c.next(m, now, from, until, events)
			case "complete":
				return errStreamComplete
			}
		case sseEnd:
			return errEndedWithoutComplete
		}
	}
	return nil
}
