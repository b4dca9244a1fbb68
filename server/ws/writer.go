package ws

import (
	"encoding/json"
	"time"

	"github.com/obsqra/obsqra/server/wire"
)

// writeLoop is the connection's only writer. It writes whatever is queued
// when woken, all of it in one system call, sends pings, and ends once ctx
// is done and the close frame is out (or cannot go out).
func (c *conn) writeLoop() {
	defer close(c.writerDone)
	ping := time.NewTicker(c.t.cfg.KeepAlive)
	defer ping.Stop()
	failed := false
	for {
		// A closed connection takes priority over queued messages.
		select {
		case <-c.ctx.Done():
			c.writeClose(failed)
			return
		default:
		}
		var err error
		select {
		case <-c.ctx.Done():
			continue
		case <-c.wake:
			c.wmu.Lock()
			q := c.takeQueue()
			if c.ctx.Err() != nil {
				// Closing: the close frame goes next, not the backlog. The
				// backlog goes back, for a close that flushes the message
				// explaining it.
				c.requeue(q)
			} else if q = c.withPartial(q); len(q) > 0 {
				err = writeFrames(c.ctx, c.ws.NetConn(), q, c.t.cfg.WriteTimeout)
			}
			c.wmu.Unlock()
		case <-ping.C:
			frames := [][]byte{pingFrame}
			if c.legacy && c.acked.Load() {
				frames = append(frames, legacyKeepAliveFrame)
			}
			c.wmu.Lock()
			err = writeFrames(c.ctx, c.ws.NetConn(), c.withPartial(frames), c.t.cfg.WriteTimeout)
			c.wmu.Unlock()
		}
		if err != nil {
			failed = true
			c.terminate(closeInfo{code: closeAbnormal, reason: "write failed", err: err})
		}
	}
}

// legacyKeepAlive is graphql-ws's keep-alive message.
var (
	legacyKeepAlive      = []byte(`{"type":"ka"}`)
	legacyKeepAliveFrame = newFrame(opText, legacyKeepAlive)
)

// writeClose writes what must precede the close frame and the close frame,
// in one system call, and then gives the peer closeGrace to answer it.
func (c *conn) writeClose(writeFailed bool) {
	ci := c.closed
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if !ci.noFrame && !writeFailed {
		frames := c.withPartial(nil)
		if ci.flush {
			frames = append(frames, c.takeQueue()...)
		}
		if ci.echo {
			frames = append(frames, closeFrame(ci.code, ""))
		} else {
			frames = append(frames, closeFrame(ci.code, ci.reason))
		}
		// ctx is done: the close gets one timeout, whatever the peer takes.
		_ = writeFrames(c.ctx, c.ws.NetConn(), frames, c.t.cfg.WriteTimeout)
	}
	c.deadlineMu.Lock()
	c.closing = true
	_ = c.ws.SetReadDeadline(time.Now().Add(closeGrace))
	c.deadlineMu.Unlock()
}

// enqueue queues the text message msg for the writer without ever
// blocking (see enqueueFrame).
func (c *conn) enqueue(msg []byte) { c.enqueueFrame(newFrame(opText, msg), true) }

// enqueueFrame queues frame for the writer without ever blocking (see
// enqueueFrames).
func (c *conn) enqueueFrame(frame []byte, wake bool) (first bool) {
	return c.enqueueFrames([][]byte{frame}, wake)
}

// enqueueFrames queues frames for the writer without ever blocking: a
// client whose queue would pass WSSendBuffer bytes is too slow and is
// closed (frames larger than that still go, alone). With wake the writer is
// woken; without, the caller must wake it (wakeWriter) when it reports
// first: the frames are the first in the queue, so no one else will. A
// caller queueing to many connections wakes each writer once at the end,
// and each writes its whole queue in one system call.
func (c *conn) enqueueFrames(frames [][]byte, wake bool) (first bool) {
	size := 0
	for _, f := range frames {
		size += len(f)
	}
	c.qmu.Lock()
	if c.ctx.Err() != nil {
		c.qmu.Unlock()
		return false
	}
	if c.queued > 0 && c.queued+size > c.t.cfg.SendBuffer {
		c.qmu.Unlock()
		if c.terminate(closeInfo{code: closeTryAgainLater, reason: reasonSlowConsumer}) {
			c.t.cfg.SlowConsumer(TransportWebSocket)
		}
		return false
	}
	first = len(c.queue) == 0
	c.queue = append(c.queue, frames...)
	c.queued += size
	c.qmu.Unlock()
	if wake {
		c.wakeWriter()
	}
	return first
}

// writeNow writes the queue from the calling goroutine when that takes no
// waiting: the writer is idle and the socket takes it all. Whatever is
// left, the writer is woken to write. A shared stream's burst goes out
// this way: one goroutine writing to thousands of sockets costs far less
// than waking thousands of writers.
func (c *conn) writeNow() {
	if c.raw == nil || !c.wmu.TryLock() {
		c.wakeWriter()
		return
	}
	q := c.takeQueue()
	if len(q) == 0 && c.partial == nil {
		c.wmu.Unlock()
		return
	}
	if c.ctx.Err() != nil {
		c.requeue(q)
		c.wmu.Unlock()
		c.wakeWriter() // it writes the close
		return
	}
	// writeFrames leaves no deadline behind that would refuse this write.
	headCut := c.partial != nil
	rest, cut, err := writeNoWait(c.raw, c.withPartial(q), headCut)
	if err == nil {
		if cut {
			c.partial, rest = rest[0], rest[1:]
		}
		c.requeue(rest)
	}
	c.wmu.Unlock()
	switch {
	case err != nil:
		// The socket is broken: no close frame can follow.
		c.terminate(closeInfo{code: closeAbnormal, reason: "write failed", noFrame: true, err: err})
	case cut || len(rest) > 0:
		c.wakeWriter()
	}
}

// withPartial returns frames preceded by the tail of a frame begun, if
// any, which it forgets. The caller holds wmu and writes what it returns.
func (c *conn) withPartial(frames [][]byte) [][]byte {
	if c.partial == nil {
		return frames
	}
	p := c.partial
	c.partial = nil
	return append([][]byte{p}, frames...)
}

// wakeWriter tells writeLoop there is something queued.
func (c *conn) wakeWriter() {
	select {
	case c.wake <- struct{}{}:
	default: // the writer is awake already
	}
}

// requeue puts messages the writer took back at the front of the queue.
func (c *conn) requeue(frames [][]byte) {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	for _, f := range frames {
		c.queued += len(f)
	}
	c.queue = append(frames, c.queue...)
}

// takeQueue hands the writer everything queued, leaving an empty queue
// that holds no memory.
func (c *conn) takeQueue() [][]byte {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	q := c.queue
	c.queue, c.queued = nil, 0
	return q
}

// send queues a message of type typ.
func (c *conn) send(id, typ string, payload json.RawMessage) {
	b, err := json.Marshal(message{ID: id, Type: typ, Payload: payload})
	if err != nil {
		c.t.log.ErrorContext(c.ctx, "marshal websocket message", "request_id", c.requestID(), "type", typ, "error", err.Error())
		c.terminate(closeInfo{code: closeInternalError, reason: reasonInternal, err: err})
		return
	}
	c.enqueue(b)
}

// fail closes the connection after a protocol error. On graphql-ws a
// connection_error message tells why first, as that subprotocol does.
func (c *conn) fail(code int, reason string) {
	if c.legacy {
		b, _ := json.Marshal(wire.Error{Message: reason})
		c.send("", "connection_error", b)
	}
	c.terminate(closeInfo{code: code, reason: reason, flush: true})
}
