package ws

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// These tests drive a connection's writing by hand (no serve, no
// writeLoop: the test plays the writer), with a socket made full.

// wsPair upgrades a connection and returns the server's conn, not
// served, and the client.
func wsPair(t *testing.T) (*conn, *websocket.Conn) {
	t.Helper()
	tr := New(Config{SendBuffer: 64 << 20})
	got := make(chan *conn, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			t.Error(err)
			close(got)
			return
		}
		got <- newConn(tr, ws, r, protoTransportWS, nil)
	}))
	t.Cleanup(srv.Close)
	cl, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	c := <-got
	if c == nil {
		t.FailNow()
	}
	t.Cleanup(func() { c.ws.Close() })
	return c, cl
}

// queueUntilCut queues 16 MiB and has writeNow write what the socket
// takes until it has cut a frame.
func queueUntilCut(t *testing.T, c *conn) {
	t.Helper()
	var frames [][]byte
	for i, n := 0, 0; n < 16<<20; i++ {
		f := newFrame(opText, bytes.Repeat([]byte{'a' + byte(i%26)}, 997))
		frames = append(frames, f)
		n += len(f)
	}
	c.enqueueFrames(frames, false)
	for i := 0; i < 64 && c.partial == nil; i++ {
		c.writeNow()
	}
	if c.partial == nil {
		t.Fatal("the socket took whole frames every time; no frame was cut, so the test proves nothing")
	}
}

// TestCloseAfterCutFrame: when a frame was cut and the socket is still
// full at the next burst, the tail stays the one to write first, so a close
// that does not flush the queue still goes out after the whole frame and
// the client reads its code.
func TestCloseAfterCutFrame(t *testing.T) {
	c, cl := wsPair(t)
	queueUntilCut(t, c)
	c.writeNow() // the next burst: the socket is still full
	if c.partial == nil {
		t.Fatal("after a write the socket refused, the tail of the cut frame is no longer first")
	}
	c.terminate(closeInfo{code: closeTryAgainLater, reason: reasonSlowConsumer})
	wrote := make(chan struct{})
	go func() { c.writeClose(false); close(wrote) }()
	_ = cl.SetReadDeadline(time.Now().Add(20 * time.Second))
	var err error
	for err == nil {
		_, _, err = cl.ReadMessage()
	}
	<-wrote
	if ce, ok := errors.AsType[*websocket.CloseError](err); !ok || ce.Code != closeTryAgainLater {
		t.Fatalf("client read %v, want close 1013", err)
	}
}

// TestWriteFramesTimeoutPerProgress: a peer that keeps taking frames, each
// well within the timeout, is not cut off because the whole batch takes
// longer than one timeout.
func TestWriteFramesTimeoutPerProgress(t *testing.T) {
	srv, cli := net.Pipe()
	defer srv.Close()
	defer cli.Close()
	var frames [][]byte
	for range 200 {
		frames = append(frames, newFrame(opText, bytes.Repeat([]byte{'x'}, 997)))
	}
	go func() {
		buf := make([]byte, 1001)
		for {
			if _, err := cli.Read(buf); err != nil {
				return
			}
			time.Sleep(5 * time.Millisecond) // a frame every 5 ms: 1 s for all
		}
	}()
	if err := writeFrames(context.Background(), srv, frames, 300*time.Millisecond); err != nil {
		t.Fatalf("frames taken every 5 ms, timeout 300 ms: %v", err)
	}
	// Once the connection is ending, one timeout is all a write gets.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	frames = frames[:0]
	for range 200 {
		frames = append(frames, newFrame(opText, bytes.Repeat([]byte{'x'}, 997)))
	}
	if err := writeFrames(ctx, srv, frames, 100*time.Millisecond); err == nil {
		t.Fatal("a write of 1 s within 100 ms on an ending connection succeeded")
	}
}

// TestWriteNowBehindAnotherWriter: a write that does not wait returns,
// even when another write to the same socket (gorilla's, from the reading
// goroutine) is blocked on a full socket.
func TestWriteNowBehindAnotherWriter(t *testing.T) {
	c, cl := wsPair(t)
	// Fill the socket; the queue stays empty and no frame is cut.
	fill := func(size int) {
		f := newFrame(opText, make([]byte, size))
		for {
			rest, _, err := writeNoWait(c.raw, [][]byte{f}, false)
			if err != nil {
				t.Fatal(err)
			}
			if len(rest) == 1 && len(rest[0]) == len(f) {
				return // the socket took nothing
			}
		}
	}
	for range 10 {
		fill(1000)
		time.Sleep(50 * time.Millisecond) // the kernel grows the buffer
	}
	fill(0)
	// gorilla answers a message over its read limit with a close frame,
	// written with a deadline of its own (1 s): it blocks on the full
	// socket.
	c.ws.SetReadLimit(readLimit)
	go cl.WriteMessage(websocket.TextMessage, make([]byte, readLimit+1))
	go func() { _, _, _ = c.ws.ReadMessage() }()
	time.Sleep(300 * time.Millisecond) // gorilla's write is under way
	done := make(chan struct{})
	go func() {
		c.enqueueFrames([][]byte{newFrame(opText, []byte(`{}`))}, false)
		c.writeNow()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("writeNow blocked behind another writer on a full socket")
	}
}
