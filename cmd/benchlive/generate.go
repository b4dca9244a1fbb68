package main

import (
	crand "crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/sys/unix"
)

// The load generator shares the server's two cores, so it reads the way a
// load generator should: once a connection is subscribed, its socket is
// handed to one epoll loop, which reads each socket that has data once and
// parses the frames itself. A goroutine per connection, parked and woken by
// Go's poller for each delivery, read twice per wake (the second read
// finding nothing) and cost about as much CPU as the server.

// generate holds conns connections to url, prints "ready …" once they are
// all up, reads from its standard input the window whose scores it counts
// ("window FROM UNTIL", in Unix nanoseconds), and after it prints its
// report as JSON.
func generate(args []string) error {
	fs := flag.NewFlagSet("generate", flag.ContinueOnError)
	url := fs.String("url", "", "the server's WebSocket URL")
	conns := fs.Int("conns", 5000, "connections")
	if err := fs.Parse(args); err != nil {
		return err
	}
	rep := report{Conns: *conns, MinPerConn: -1}
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return fmt.Errorf("epoll: %w", err)
	}
	defer unix.Close(epfd)
	// The loop reads from the first connection on (pings must be answered
	// while the others connect), and counts only once the window is known.
	var g generator
	g.from.Store(1<<62 - 1)
	g.until.Store(1<<62 - 1)
	g.stop.Store(1<<62 - 1)
	g.byFD = map[int32]*genConn{}
	g.events = map[string]bool{}
	looped := make(chan error, 1)
	go func() { looped <- g.loop(epfd) }()
	dialer := websocket.Dialer{HandshakeTimeout: 30 * time.Second, Subprotocols: []string{"graphql-transport-ws"},
		ReadBufferSize: 1024, WriteBufferSize: 512}
	for i := range *conns {
		fd, err := subscribe(&dialer, *url)
		if err != nil {
			rep.Errors = append(rep.Errors, fmt.Sprintf("connection %d: %v", i, err))
			continue
		}
		g.mu.Lock()
		// One connection records which scores arrived.
		g.byFD[int32(fd)] = &genConn{fd: fd, recorder: len(g.byFD) == 0}
		g.mu.Unlock()
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(fd)}
		if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
			unix.Close(fd)
			g.mu.Lock()
			delete(g.byFD, int32(fd))
			g.mu.Unlock()
			rep.Errors = append(rep.Errors, fmt.Sprintf("connection %d: epoll: %v", i, err))
			continue
		}
		rep.Connected++
	}
	fmt.Printf("ready: %d of %d connections\n", rep.Connected, *conns)
	var from, until int64
	if _, err := fmt.Fscanf(os.Stdin, "window %d %d\n", &from, &until); err != nil {
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
	rep.Dropped = g.dropped
	rep.Errors = append(rep.Errors, g.errors...)
	for _, c := range g.byFD {
		unix.Close(c.fd)
		if c.n == 0 {
			rep.Errors = append(rep.Errors, fmt.Sprintf("a connection received no score in the window; it received %v", c.kinds))
		}
		rep.LatencyMs = append(rep.LatencyMs, c.lat...)
		rep.Deliveries += c.n
		if rep.MinPerConn < 0 || c.n < rep.MinPerConn {
			rep.MinPerConn = c.n
		}
		rep.MaxPerConn = max(rep.MaxPerConn, c.n)
	}
	rep.Events = len(g.events)
	return json.NewEncoder(os.Stdout).Encode(rep)
}

// generator is the state the epoll loop shares with the dialling.
type generator struct {
	from, until, stop atomic.Int64 // Unix nanoseconds

	mu   sync.Mutex
	byFD map[int32]*genConn

	// The loop's own.
	events  map[string]bool // scores the recorder received, by cursor
	dropped int
	errors  []string
}

// loop reads every socket that has data until the stop time.
func (g *generator) loop(epfd int) error {
	runtime.LockOSThread()
	ready := make([]unix.EpollEvent, 1024)
	buf := make([]byte, 64<<10)
	for time.Now().UnixNano() < g.stop.Load() {
		n, err := unix.EpollWait(epfd, ready, 100)
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
				c.done = true
				unix.EpollCtl(epfd, unix.EPOLL_CTL_DEL, c.fd, nil)
				g.dropped++
				g.errors = append(g.errors, err.Error())
			}
		}
	}
	return nil
}

// subscribe opens a connection, initialises it, subscribes, and returns a
// socket of its own (non-blocking) on which the events will arrive.
func subscribe(dialer *websocket.Dialer, url string) (int, error) {
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
	if err := c.WriteMessage(websocket.TextMessage, []byte(subscription)); err != nil {
		return -1, fmt.Errorf("subscribe: %w", err)
	}
	raw, err := c.NetConn().(interface {
		SyscallConn() (syscall.RawConn, error)
	}).SyscallConn()
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
	n        int64  // scores received in the window
	lat      []int32
	kinds    []string // the first messages, for a report of what went wrong
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
		computed, err := time.Parse(time.RFC3339Nano, string(field(m, `"computedAt":"`)))
		if err != nil {
			return nil
		}
		if at := computed.UnixNano(); at < from || at >= until {
			return nil // outside the measured window
		}
		c.n++
		c.lat = append(c.lat, int32(now.Sub(computed).Milliseconds()))
		if c.recorder {
			events[string(field(m, `"cursor":"`))] = true
		}
	case "error", "complete":
		return fmt.Errorf("%s: %.200s", msgType, m)
	}
	return nil
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
