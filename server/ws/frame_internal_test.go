package ws

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestWriteFrames: frames of every length encoding (7-bit, 16-bit and
// 64-bit lengths, at their limits), written together in one call among
// control frames, reach a standard client intact and in order.
func TestWriteFrames(t *testing.T) {
	sizes := []int{0, 1, 125, 126, 127, 0xFFFF, 0x10000, 300_000}
	payload := func(n int) []byte { return bytes.Repeat([]byte{byte('a' + n%26)}, n) }
	wrote := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			wrote <- err
			return
		}
		defer ws.Close()
		frames := [][]byte{pingFrame}
		for _, n := range sizes {
			// A frame built from parts, as a shared stream builds them.
			p := payload(n)
			frames = append(frames, newFrame(opText, p[:n/2], p[n/2:]))
		}
		frames = append(frames, closeFrame(closeGoingAway, strings.Repeat("é", 100)))
		wrote <- writeFrames(context.Background(), ws.NetConn(), frames, 10*time.Second)
		time.Sleep(100 * time.Millisecond) // let the client read before the connection closes
	}))
	defer srv.Close()

	c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pinged := false
	c.SetPingHandler(func(string) error { pinged = true; return nil })
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for _, n := range sizes {
		typ, got, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("message of %d bytes: %v", n, err)
		}
		if typ != websocket.TextMessage || !bytes.Equal(got, payload(n)) {
			t.Fatalf("message of %d bytes: type %d, %d bytes, not the payload", n, typ, len(got))
		}
	}
	_, _, err = c.ReadMessage()
	ce, ok := errors.AsType[*websocket.CloseError](err)
	if !ok || ce.Code != closeGoingAway || ce.Text != truncateReason(strings.Repeat("é", 100)) {
		t.Fatalf("after the messages: %v, want close 1001 with the reason cut to a whole character", err)
	}
	if !pinged {
		t.Error("the ping before the messages did not arrive")
	}
	if err := <-wrote; err != nil {
		t.Fatalf("writeFrames: %v", err)
	}
}

// TestWriteNoWait: a write that the socket takes only in part reports what
// is left, cut inside a frame, and writing that after it delivers every
// byte once, in order.
func TestWriteNoWait(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	client, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	srv := <-accepted
	if srv == nil {
		t.Fatal("accept failed")
	}
	defer srv.Close()
	raw, err := srv.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}

	// 16 MiB in frames of 1,001 bytes: more than any socket buffer takes
	// at once, and no frame boundary falls on a round number.
	var frames [][]byte
	var want bytes.Buffer
	for i := 0; want.Len() < 16<<20; i++ {
		f := newFrame(opText, bytes.Repeat([]byte{byte(i)}, 997))
		frames = append(frames, f)
		want.Write(f)
	}
	rest, cut, err := writeNoWait(raw, frames, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(rest) == 0 {
		t.Fatal("the socket took 16 MiB at once; the test cannot see a partial write")
	}
	left := 0
	for _, f := range rest {
		left += len(f)
	}
	if cut != (left%len(frames[1]) != 0) {
		t.Errorf("cut = %v with %d bytes left in frames of %d", cut, left, len(frames[1]))
	}
	written := want.Len() - left
	if written <= 0 {
		t.Fatalf("wrote %d bytes", written)
	}
	go func() {
		for len(rest) > 0 {
			batch := rest[:min(len(rest), maxIovecs)]
			if err := writeFrames(context.Background(), srv, batch, 10*time.Second); err != nil {
				return
			}
			rest = rest[len(batch):]
		}
	}()
	got := make([]byte, want.Len())
	_ = client.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.ReadFull(client, got); err != nil {
		t.Fatalf("read: %v", err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatal("the bytes read are not the frames written, in order")
	}
}
