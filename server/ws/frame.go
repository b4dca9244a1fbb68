package ws

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"time"

	"github.com/gorilla/websocket"
)

// The connection's writer puts frames on the wire itself, every frame it
// has queued in one system call, rather than one gorilla write (one system
// call) per message: with thousands of subscribers of one stream, writes
// were most of the server's time (15,000 sockets, 10 events a tick: 150,000
// writes). gorilla still upgrades, reads, and answers protocol errors of
// the peer; the frames here are what RFC 6455 asks of a server: unmasked,
// uncompressed (the upgrader does not negotiate compression), one frame
// per message.

// Frame opcodes (RFC 6455 section 5.2).
const (
	opText  = websocket.TextMessage
	opClose = websocket.CloseMessage
	opPing  = websocket.PingMessage
	opPong  = websocket.PongMessage
)

// maxFrameHeader is the longest header of a server's frame: 2 bytes and
// an 8-byte length.
const maxFrameHeader = 10

// newFrame returns the frame of one message of type op whose payload is
// the concatenation of parts.
func newFrame(op int, parts ...[]byte) []byte {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	f := appendFrameHeader(make([]byte, 0, maxFrameHeader+n), op, n)
	for _, p := range parts {
		f = append(f, p...)
	}
	return f
}

// appendFrameHeader appends the header of a final, unmasked frame of type
// op with a payload of n bytes.
func appendFrameHeader(b []byte, op, n int) []byte {
	b = append(b, 0x80|byte(op))
	switch {
	case n < 126:
		return append(b, byte(n))
	case n <= 0xFFFF:
		return binary.BigEndian.AppendUint16(append(b, 126), uint16(n))
	default:
		return binary.BigEndian.AppendUint64(append(b, 127), uint64(n))
	}
}

// closeFrame returns the close frame with code and reason (cut to what a
// control frame holds); 1005 (no status) is the empty close frame.
func closeFrame(code int, reason string) []byte {
	return newFrame(opClose, websocket.FormatCloseMessage(code, truncateReason(reason)))
}

// pingFrame is the server's keep-alive ping, without application data.
var pingFrame = newFrame(opPing)

// writeFrames writes frames to nc, in one system call (writev) when the
// socket takes them. The peer has timeout to take some of them: while ctx
// is not done, each timeout in which it took some bytes gives it another,
// so a slow reader of a large backlog is not taken for a dead one. It
// leaves no deadline behind (writeNow's writes take none). It consumes
// frames (the slice, not the frames' bytes, which may be shared by other
// connections).
func writeFrames(ctx context.Context, nc net.Conn, frames [][]byte, timeout time.Duration) error {
	bufs := net.Buffers(frames)
	for {
		_ = nc.SetWriteDeadline(time.Now().Add(timeout))
		n, err := bufs.WriteTo(nc)
		if err == nil {
			break
		}
		if ne, ok := errors.AsType[net.Error](err); !ok || !ne.Timeout() || n == 0 || ctx.Err() != nil {
			return err
		}
	}
	_ = nc.SetWriteDeadline(time.Time{})
	return nil
}
