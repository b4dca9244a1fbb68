//go:build linux

package main

import (
	"bufio"
	crand "crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/sys/unix"

	"github.com/obsqra/obsqra"
)

// The load generator shares the server's two cores, so it reads the way a
// load generator should: once a connection is subscribed, its socket is
// handed to one epoll loop, which reads each socket that has data once and
// parses the frames itself. A goroutine per connection, parked and woken by
// Go's poller for each delivery, read twice per wake (the second read
// finding nothing) and cost about as much CPU as the server.

// generate holds conns connections to url (subscribers over -transport:
// WebSockets, or event streams, see sse.go), prints "ready …" once they are
// all up, reads from its standard input the window whose scores it counts
// ("window FROM UNTIL", in Unix nanoseconds), and after the window the
// reference ("reference ID ID …": the ids of every score committed in it,
// "reference -" when there is none), against which it checks that each
// connection received every score once and in order; then it prints its
// report as JSON. With -reconnect, a connection the server ends (a restart
// closes a WebSocket with 1001, and ends an event stream without its
// complete) reconnects at once, resuming after the cursor of the last score
// it received, as a graphql-ws or graphql-sse client does.
func generate(args []string) error {
	fs := flag.NewFlagSet("generate", flag.ContinueOnError)
	url := fs.String("url", "", "the server's GraphQL URL: ws:// for -transport ws, http:// for sse")
	transport := fs.String("transport", transportWS, "ws: a WebSocket per subscriber (graphql-transport-ws); sse: an HTTP/1.1 POST per subscriber answered with an event stream (graphql-sse)")
	conns := fs.Int("conns", 5000, "connections")
	reconnect := fs.Bool("reconnect", false, "reconnect a connection the server ends, resuming after its last cursor")
	redialers := fs.Int("redialers", 512, "reconnections in flight at once")
	if err := fs.Parse(args); err != nil {
		return err
	}
	rep := report{Conns: *conns, MinPerConn: -1, DropReasons: map[string]int{}}
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return fmt.Errorf("epoll: %w", err)
	}
	defer unix.Close(epfd)
	// The loop reads from the first connection on (pings must be answered
	// while the others connect), and counts only once the window is known.
	g := generator{epfd: epfd, reconnect: *reconnect, reasons: map[string]int{}}
	g.from.Store(1<<62 - 1)
	g.until.Store(1<<62 - 1)
	g.stop.Store(1<<62 - 1)
	g.byFD = map[int32]*genConn{}
	g.events = map[string]bool{}
	g.redial = make(chan *genConn, *conns)
	// dial opens a connection and subscribes after cursor (unless it is
	// empty), returning its socket for the loop.
	var dial func(cursor string) (int, error)
	switch *transport {
	case transportWS:
		dialer := websocket.Dialer{HandshakeTimeout: 30 * time.Second, Subprotocols: []string{"graphql-transport-ws"},
			ReadBufferSize: 1024, WriteBufferSize: 512}
		dial = func(cursor string) (int, error) { return subscribe(&dialer, *url, cursor) }
	case transportSSE:
		target, err := parseSSETarget(*url)
		if err != nil {
			return err
		}
		dial = func(cursor string) (int, error) { return dialSSE(target, cursor) }
	default:
		return fmt.Errorf("-transport %q: ws or sse", *transport)
	}
	var redialing sync.WaitGroup
	if *reconnect {
		for range *redialers {
			redialing.Go(func() { g.redialLoop(dial) })
		}
	}
	looped := make(chan error, 1)
	go func() { looped <- g.loop() }()
	for i := range *conns {
		fd, err := dial("")
		if err != nil {
			rep.Errors = append(rep.Errors, fmt.Sprintf("connection %d: %v", i, err))
			continue
		}
		// One connection records which scores arrived.
		c := &genConn{fd: fd, recorder: i == 0}
		// An event stream is subscribed once the loop has read its
		// response's head: the next connection waits for it, as the
		// WebSocket dialling waits for its connection_ack.
		var subscribed chan error
		if *transport == transportSSE {
			subscribed = make(chan error, 1)
			c.sse, c.subscribed = &sseParser{}, subscribed
		}
		if err := g.add(c); err != nil {
			rep.Errors = append(rep.Errors, fmt.Sprintf("connection %d: %v", i, err))
			continue
		}
		if subscribed != nil {
			if err := awaitSubscribed(subscribed); err != nil {
				rep.Errors = append(rep.Errors, fmt.Sprintf("connection %d: %v", i, err))
				continue
			}
		}
		g.mu.Lock()
		g.all = append(g.all, c)
		g.mu.Unlock()
		rep.Connected++
	}
	fmt.Printf("ready: %d of %d connections\n", rep.Connected, *conns)
	in := bufio.NewReader(os.Stdin)
	var from, until int64
	if _, err := fmt.Fscanf(in, "window %d %d\n", &from, &until); err != nil {
		return fmt.Errorf("read the window: %w", err)
	}
	g.from.Store(from)
	g.until.Store(until)
	// Reading goes on for a grace period after the window, so that the
	// last of its scores arrive.
	g.stop.Store(time.Unix(0, until).Add(grace).UnixNano())
	if err := <-looped; err != nil {
		return err
	}
	close(g.redial)
	redialing.Wait() // the redialers give up at the stop time
	rep.Dropped = g.dropped
	rep.Errors = append(rep.Errors, g.errors...)
	rep.DropReasons = g.reasons
	rep.RedialFailures = int(g.redialFailures.Load())
	for _, c := range g.all {
		if !c.done {
			unix.Close(c.fd)
		}
		if c.n == 0 {
			rep.Errors = append(rep.Errors, fmt.Sprintf("a connection received no score in the window; it received %v", c.kinds))
		}
		rep.LatencyMs = append(rep.LatencyMs, c.lat...)
		rep.Deliveries += c.n
		rep.Replayed += c.replayed
		if rep.MinPerConn < 0 || c.n < rep.MinPerConn {
			rep.MinPerConn = c.n
		}
		rep.MaxPerConn = max(rep.MaxPerConn, c.n)
		if c.drops > 0 {
			rep.DroppedConns++
			rep.DroppedAtMs = append(rep.DroppedAtMs, c.droppedAt/1e6)
			if c.reconnectedAt > 0 {
				rep.ReconnectedAtMs = append(rep.ReconnectedAtMs, c.reconnectedAt/1e6)
			}
			if c.liveAt > 0 {
				rep.LiveAtMs = append(rep.LiveAtMs, c.liveAt/1e6)
			}
		}
	}
	rep.Events = len(g.events)
	line, err := in.ReadString('\n')
	if err != nil {
		rep.Errors = append(rep.Errors, "no reference of the scores committed: "+err.Error())
	} else if ref, ok := parseReference(line); ok {
		rep.Check = checkOnce(g.all, ref)
	}
	return json.NewEncoder(os.Stdout).Encode(rep)
}

// parseReference parses "reference ID ID …"; ok is false for
// "reference -" or anything malformed.
func parseReference(line string) ([]int32, bool) {
	fields := strings.Fields(line)
	if len(fields) == 0 || fields[0] != "reference" || len(fields) == 2 && fields[1] == "-" {
		return nil, false
	}
	ref := make([]int32, 0, len(fields)-1)
	for _, f := range fields[1:] {
		id, err := strconv.ParseInt(f, 10, 32)
		if err != nil {
			return nil, false
		}
		ref = append(ref, int32(id))
	}
	return ref, true
}

// onceCheck is how the scores each connection received in the window
// compare with those committed in it: exactly once each, in order.
type onceCheck struct {
	Reference  int   `json:"reference"`  // scores committed in the window
	Exact      int   `json:"exact"`      // connections that received exactly those, in order
	Gaps       int   `json:"gaps"`       // connections that missed a score before one they received
	Missing    int64 `json:"missing"`    // such scores, over all connections
	Late       int   `json:"late"`       // connections still without the last scores when they stopped reading
	LateScores int64 `json:"lateScores"` // such scores, over all connections
	Dups       int   `json:"dups"`       // connections that received one twice
	Duplicates int64 `json:"duplicates"` // deliveries of a score already received
	Unordered  int   `json:"unordered"`  // connections that received one after a later one
	Unexpected int64 `json:"unexpected"` // deliveries of a score not in the reference
}

// checkOnce compares every connection's scores with ref (ascending ids).
func checkOnce(conns []*genConn, ref []int32) *onceCheck {
	chk := &onceCheck{Reference: len(ref)}
	index := make(map[int32]int, len(ref))
	for i, id := range ref {
		index[id] = i
	}
	seen := make([]bool, len(ref))
	for _, c := range conns {
		clear(seen)
		var got, dups, unexpected int64
		unordered := false
		last := -1 // the latest score received, as an index in ref
		for i, id := range c.ids {
			if i > 0 && id < c.ids[i-1] {
				unordered = true
			}
			j, ok := index[id]
			switch {
			case !ok:
				unexpected++
			case seen[j]:
				dups++
			default:
				seen[j] = true
				got++
				last = max(last, j)
			}
		}
		// A score missing before the latest one received is a gap; one
		// after it may only be late (still on its way at the stop).
		var missing, late int64
		for j, ok := range seen {
			switch {
			case ok:
			case j < last:
				missing++
			default:
				late++
			}
		}
		if missing > 0 {
			chk.Gaps++
			chk.Missing += missing
		}
		if late > 0 {
			chk.Late++
			chk.LateScores += late
		}
		if dups > 0 {
			chk.Dups++
			chk.Duplicates += dups
		}
		if unordered {
			chk.Unordered++
		}
		chk.Unexpected += unexpected
		if got == int64(len(ref)) && dups == 0 && unexpected == 0 && !unordered {
			chk.Exact++
		}
	}
	return chk
}

// generator is the state the epoll loop shares with the dialling.
type generator struct {
	epfd      int
	reconnect bool

	from, until, stop atomic.Int64 // Unix nanoseconds

	mu   sync.Mutex
	byFD map[int32]*genConn
	all  []*genConn

	// redial takes the connections to reconnect (each at most once at a
	// time, so it never fills).
	redial         chan *genConn
	redialFailures atomic.Int64

	// The loop's own.
	events  map[string]bool // scores the recorder received, by cursor
	dropped int
	reasons map[string]int // drops by reason
	errors  []string
}

// maxErrors bounds the errors a generator reports one by one: a restart
// drops every connection with the same one.
const maxErrors = 20

// add registers a subscribed connection with the loop.
func (g *generator) add(c *genConn) error {
	g.mu.Lock()
	g.byFD[int32(c.fd)] = c
	g.mu.Unlock()
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(c.fd)}
	if err := unix.EpollCtl(g.epfd, unix.EPOLL_CTL_ADD, c.fd, &ev); err != nil {
		g.mu.Lock()
		delete(g.byFD, int32(c.fd))
		g.mu.Unlock()
		unix.Close(c.fd)
		return fmt.Errorf("epoll: %w", err)
	}
	return nil
}

// loop reads every socket that has data until the stop time.
func (g *generator) loop() error {
	runtime.LockOSThread()
	ready := make([]unix.EpollEvent, 1024)
	buf := make([]byte, 64<<10)
	for time.Now().UnixNano() < g.stop.Load() {
		n, err := unix.EpollWait(g.epfd, ready, 100)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return fmt.Errorf("epoll wait: %w", err)
		}
		from, until := g.from.Load(), g.until.Load()
		for _, ev := range ready[:n] {
			g.mu.Lock()
			c := g.byFD[ev.Fd]
			g.mu.Unlock()
			if c == nil || c.done {
				continue
			}
			if err := c.read(buf, from, until, g.events); err != nil {
				g.drop(c, err)
			}
		}
	}
	return nil
}

// drop forgets a connection the server ended, and hands it to the
// redialers when reconnecting. An event stream that ends before its
// response's head was never subscribed: see failedSubscribe.
func (g *generator) drop(c *genConn, err error) {
	c.done = true
	unix.EpollCtl(g.epfd, unix.EPOLL_CTL_DEL, c.fd, nil)
	g.mu.Lock()
	delete(g.byFD, int32(c.fd))
	g.mu.Unlock()
	unix.Close(c.fd)
	if c.sse != nil && !c.sse.subscribed() {
		g.failedSubscribe(c, err)
		return
	}
	g.dropped++
	reason := err.Error()
	g.reasons[reason[:min(len(reason), 120)]]++
	if !g.reconnect && len(g.errors) < maxErrors {
		g.errors = append(g.errors, reason) // when reconnecting, the reasons say all
	}
	c.drops++
	c.droppedAt = time.Now().UnixNano()
	c.reconnectedAt, c.liveAt = 0, 0
	if g.reconnect {
		g.redial <- c
	}
}

// failedSubscribe handles an event stream refused or cut before its
// response's head: the dialling of an initial connection learns it; a
// reconnection is a failed attempt, tried again after a pause, as a
// refused dial is. A connection cut before any answer is a restart's
// (the old server's listener closing with connections in its backlog);
// an answer that is no event stream (a refusal) is reported as an error.
func (g *generator) failedSubscribe(c *genConn, err error) {
	if c.subscribed != nil {
		c.subscribed <- err
		c.subscribed = nil
		return
	}
	g.redialFailures.Add(1)
	if errors.As(err, new(*refusal)) && len(g.errors) < maxErrors {
		g.errors = append(g.errors, "reconnection: "+err.Error())
	}
	if g.reconnect {
		c.retry = true
		g.redial <- c
	}
}

// redialLoop reconnects the connections dropped with dial, each resuming
// after the last score it received, retrying every 100-200 ms while the
// server refuses (it is restarting) until the stop time.
func (g *generator) redialLoop(dial func(cursor string) (int, error)) {
	for c := range g.redial {
		if c.retry {
			c.retry = false
			time.Sleep(100*time.Millisecond + time.Duration(mrand.Int64N(int64(100*time.Millisecond))))
		}
		for time.Now().UnixNano() < g.stop.Load() {
			fd, err := dial(c.cursor)
			if err != nil {
				g.redialFailures.Add(1)
				time.Sleep(100*time.Millisecond + time.Duration(mrand.Int64N(int64(100*time.Millisecond))))
				continue
			}
			c.fd, c.done, c.pending = fd, false, c.pending[:0]
			if c.sse != nil {
				c.sse.reset() // subscribed again once the loop reads the response's head
			} else {
				c.reconnectedAt = time.Now().UnixNano()
			}
			if g.add(c) != nil {
				g.redialFailures.Add(1)
				continue
			}
			break
		}
	}
}

// subscribe opens a connection, initialises it, subscribes (after cursor,
// unless it is empty), and returns a socket of its own (non-blocking) on
// which the events will arrive.
func subscribe(dialer *websocket.Dialer, url, cursor string) (int, error) {
	c, _, err := dialer.Dial(url, nil)
	if err != nil {
		return -1, fmt.Errorf("dial: %w", err)
	}
	defer c.Close() // the socket lives on as the duplicate
	// The protocol wants the ack before the subscribe (else 4401).
	if err := c.WriteMessage(websocket.TextMessage, []byte(`{"type":"connection_init"}`)); err != nil {
		return -1, fmt.Errorf("init: %w", err)
	}
	if _, m, err := c.ReadMessage(); err != nil || !strings.Contains(string(m), `"connection_ack"`) {
		return -1, fmt.Errorf("init: %s %v", m, err)
	}
	msg := []byte(subscription)
	if cursor != "" {
		msg = fmt.Appendf(nil, `{"id":"1","type":"subscribe","payload":{"query":%q,"variables":{"after":%q}}}`, resumeQuery, cursor)
	}
	if err := c.WriteMessage(websocket.TextMessage, msg); err != nil {
		return -1, fmt.Errorf("subscribe: %w", err)
	}
	return dupNonblock(c.NetConn())
}

// dupNonblock returns a non-blocking duplicate of nc's socket, which lives
// on when nc is closed.
func dupNonblock(nc net.Conn) (int, error) {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return -1, fmt.Errorf("%T has no descriptor", nc)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	if cerr := raw.Control(func(s uintptr) { fd, err = unix.Dup(int(s)) }); cerr != nil {
		return -1, cerr
	}
	if err != nil {
		return -1, fmt.Errorf("dup: %w", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// genConn is a subscribed connection as the epoll loop reads it.
type genConn struct {
	fd       int
	recorder bool
	done     bool
	pending  []byte // the start of a frame not yet whole
	// sse is the response being read, when the connection is an event
	// stream (nil for a WebSocket).
	sse *sseParser
	// subscribed, set for an initial event stream until its response's
	// head is read, receives nil then, or why it failed.
	subscribed chan error
	// retry says the last reconnection failed: the next waits a little.
	retry bool
	n     int64 // scores received in the window
	lat   []int32
	kinds []string // the first messages, for a report of what went wrong

	cursor   string  // of the last score received: where a reconnection resumes
	ids      []int32 // event ids of the window's scores, in the order received
	replayed int64   // scores committed before the last drop, received after it (not in lat)
	drops    int
	// Of the last drop, in Unix nanoseconds: when it happened, when the
	// connection was back (subscribed again), and when it received the
	// first score committed after the drop (0 until then).
	droppedAt, reconnectedAt, liveAt int64
}

// read reads what the socket has, handles every whole frame, and keeps
// the rest. An error means the connection is gone.
func (c *genConn) read(buf []byte, from, until int64, events map[string]bool) error {
	n, err := unix.Read(c.fd, buf)
	if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read: %w", err)
	}
	if n == 0 {
		return errors.New("read: connection closed by the server")
	}
	now := time.Now()
	data := buf[:n]
	if c.sse != nil {
		return c.readStream(data, now, from, until, events)
	}
	if len(c.pending) > 0 {
		c.pending = append(c.pending, data...)
		data = c.pending
	}
	for {
		op, payload, size, ok := parseFrame(data)
		if !ok {
			break
		}
		if err := c.handle(op, payload, now, from, until, events); err != nil {
			return err
		}
		data = data[size:]
	}
	c.pending = append(c.pending[:0], data...)
	return nil
}

// parseFrame parses the unmasked frame at the start of b: its opcode,
// payload, and whole size; ok is false when b does not hold it all.
func parseFrame(b []byte) (op byte, payload []byte, size int, ok bool) {
	if len(b) < 2 {
		return 0, nil, 0, false
	}
	op = b[0] & 0x0F
	n, h := int(b[1]&0x7F), 2
	switch n {
	case 126:
		if len(b) < 4 {
			return 0, nil, 0, false
		}
		n, h = int(binary.BigEndian.Uint16(b[2:])), 4
	case 127:
		if len(b) < 10 {
			return 0, nil, 0, false
		}
		n, h = int(binary.BigEndian.Uint64(b[2:])), 10
	}
	if len(b) < h+n {
		return 0, nil, 0, false
	}
	return op, b[h : h+n], h + n, true
}

// handle handles one frame received at now.
func (c *genConn) handle(op byte, payload []byte, now time.Time, from, until int64, events map[string]bool) error {
	switch op {
	case websocket.PingMessage:
		return c.writeFrame(websocket.PongMessage, payload)
	case websocket.CloseMessage:
		code := 0
		if len(payload) >= 2 {
			code = int(binary.BigEndian.Uint16(payload))
		}
		return fmt.Errorf("read: closed by the server: %d %s", code, payload[min(2, len(payload)):])
	case websocket.TextMessage:
	default:
		return nil
	}
	m := payload
	msgType := string(field(m, `"type":"`))
	if len(c.kinds) < 2 {
		c.kinds = append(c.kinds, fmt.Sprintf("%s %.300s", msgType, m))
	}
	switch msgType {
	case "ping":
		return c.writeFrame(websocket.TextMessage, []byte(`{"type":"pong"}`))
	case "next":
		c.next(m, now, from, until, events)
	case "error", "complete":
		return fmt.Errorf("%s: %.200s", msgType, m)
	}
	return nil
}

// next counts a result m (a next message, or an event stream's next
// event) received at now: a score and its cursor, where a reconnection
// resumes. A result without a score (errors) is not counted.
func (c *genConn) next(m []byte, now time.Time, from, until int64, events map[string]bool) {
	computed, err := time.Parse(time.RFC3339Nano, string(field(m, `"computedAt":"`)))
	if err != nil {
		return
	}
	cursor := string(field(m, `"cursor":"`))
	c.cursor = cursor
	at := computed.UnixNano()
	if c.drops > 0 && c.liveAt == 0 && at > c.droppedAt {
		c.liveAt = now.UnixNano()
	}
	if at < from || at >= until {
		return // outside the measured window
	}
	c.n++
	if id, err := obsqra.ParseEventCursor(cursor); err == nil {
		c.ids = append(c.ids, int32(id))
	}
	if c.drops > 0 && at < c.droppedAt {
		c.replayed++ // its latency is the outage's
	} else {
		c.lat = append(c.lat, int32(now.Sub(computed).Milliseconds()))
	}
	if c.recorder {
		events[cursor] = true
	}
}

// writeFrame writes a client's (masked) frame of at most 125 bytes.
func (c *genConn) writeFrame(op int, payload []byte) error {
	if len(payload) > 125 {
		return fmt.Errorf("frame of %d bytes: only short frames are written", len(payload))
	}
	f := make([]byte, 0, 6+len(payload))
	f = append(f, 0x80|byte(op), 0x80|byte(len(payload)))
	var key [4]byte
	_, _ = crand.Read(key[:])
	f = append(f, key[:]...)
	for i, b := range payload {
		f = append(f, b^key[i%4])
	}
	// A short frame fits any socket buffer a live connection has.
	if _, err := unix.Write(c.fd, f); err != nil && !errors.Is(err, unix.EAGAIN) {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}
