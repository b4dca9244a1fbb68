package ws

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/server/wire"
)

// HTTPStream is a subscription to serve over one HTTP response.
type HTTPStream struct {
	// Format frames its results.
	Format *wire.StreamFormat
	// Heartbeat is the interval of the format's heartbeats, written while
	// nothing else is.
	Heartbeat time.Duration
	// Exec executes it; Params and Op are the subscription, parsed and
	// validated.
	Exec   graphql.GraphExecutor
	Params *graphql.RawParams
	Op     *graphql.OperationContext
}

// ServeHTTPStream serves the subscription s over w until it ends, as a
// subscriber of the shared streams, with what a WebSocket's subscription
// has: one execution per distinct document, variables and viewer; the
// send buffer (a client that falls further behind has its response cut,
// without complete, so that it reconnects from its last cursor); the limit
// of connections per client address, which counts streams with sockets
// (one more is answered 429 with RATE_LIMITED before the stream starts);
// and the end of the stream when its credentials expire or are refused by
// a Recheck, with the refusal as its last result and then complete (so
// that the client does not reconnect with them).
//
// ctx is the request's context, with its principal or authentication
// error; it ends when the client goes away or the server goes away, which
// cuts the response without complete. The response is the caller's until
// ServeHTTPStream returns.
func (t *Transport) ServeHTTPStream(ctx context.Context, w http.ResponseWriter, r *http.Request, s HTTPStream) {
	addr := obsqra.ClientFromContext(ctx).LimitKey()
	if !t.sockets.reserve(addr, t.cfg.MaxConnsPerAddress) {
		w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds))
		wire.WriteJSON(w, http.StatusTooManyRequests, wire.Response(wire.Error{
			Message: fmt.Sprintf("at most %d WebSockets and event streams may be open from one address; close one first",
				t.cfg.MaxConnsPerAddress),
			Extensions: map[string]any{"code": "RATE_LIMITED", "retryAfter": retryAfterSeconds},
		}))
		return
	}
	defer t.sockets.release(addr)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	h := &httpStream{
		t:      t,
		format: s.Format,
		key:    []byte("http:" + s.Format.Name),
		w:      w,
		rc:     http.NewResponseController(w),
		ctx:    ctx,
		cancel: cancel,
		wake:   make(chan struct{}, 1),
	}
	hdr := w.Header()
	hdr.Set("Content-Type", s.Format.ContentType)
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Accel-Buffering", "no") // nginx
	w.WriteHeader(http.StatusOK)
	if !h.write(s.Format.Start) {
		return
	}

	viewer, err := obsqra.Viewer(ctx)
	if err != nil {
		// As a WebSocket's connection_init does: a refused token does
		// not subscribe anonymously.
		h.refuse(err)
		h.writeLoop(s.Heartbeat)
		return
	}
	if viewer != nil {
		p, _ := obsqra.RequireUser(ctx) // cannot fail: there is a viewer
		h.principal.Store(p)
		h.token, _ = wire.BearerToken(r.Header.Get("Authorization"))
		if !p.ExpiresAt.IsZero() {
			left := p.ExpiresAt.Sub(t.cfg.Now())
			if left <= 0 {
				h.refuse(errExpired)
				h.writeLoop(s.Heartbeat)
				return
			}
			expiry := t.cfg.AfterFunc(left, func() { h.refuse(errExpired) })
			defer expiry.Stop()
		}
	}
	if !t.sockets.addStream(h) {
		return // the server is going away
	}
	defer t.sockets.removeStream(h)

	t.subscribe(ctx, viewer, h, s.Exec, s.Params, s.Op)
	h.writeLoop(s.Heartbeat)
	if h.cutOff.Load() {
		// The writer may have set a deadline after cut did.
		_ = h.rc.SetWriteDeadline(time.Now())
		return
	}
	// The HTTP server ends the response after this returns (the chunked
	// body's last chunk): it gets a deadline of its own, not what is left
	// of the last write's, which may have passed on a quiet stream.
	_ = h.rc.SetWriteDeadline(time.Now().Add(t.cfg.WriteTimeout))
}

// errExpired ends a stream whose credentials expired.
var errExpired = obsqra.Errorf(obsqra.EUNAUTHENTICATED, "the access token expired: sign in again and subscribe again")

// httpStream is a subscriber of a shared stream over an HTTP response. Its
// frames wait in a queue bounded by the transport's SendBuffer, written by
// the request's own goroutine (writeLoop), each write with its own
// deadline.
type httpStream struct {
	t      *Transport
	format *wire.StreamFormat
	key    []byte
	w      http.ResponseWriter
	rc     *http.ResponseController
	// ctx ends when the stream does; cancel ends it.
	ctx    context.Context
	cancel context.CancelFunc
	// token and principal are the credentials it subscribed with (none
	// when anonymous), checked again by Recheck.
	token     string
	principal atomic.Pointer[obsqra.Principal]

	mu     sync.Mutex
	queue  [][]byte
	queued int
	// last is set once the stream's last frames are queued: nothing more
	// is, and the writer returns once they are written.
	last bool
	wake chan struct{}
	// cutOff is set once the stream is cut (cut).
	cutOff atomic.Bool
}

var _ subscriber = (*httpStream)(nil)

func (h *httpStream) frameKey() []byte { return h.key }

func (h *httpStream) frame(result []byte) []byte { return h.format.Frame(result) }

func (h *httpStream) enqueue(frames [][]byte) bool {
	size := 0
	for _, f := range frames {
		size += len(f)
	}
	h.mu.Lock()
	if h.last || h.ctx.Err() != nil {
		h.mu.Unlock()
		return false
	}
	if h.queued > 0 && h.queued+size > h.t.cfg.SendBuffer {
		h.mu.Unlock()
		// A slow consumer: cut, so that it reconnects from its last
		// cursor, as a socket's 1013 does.
		h.t.log.InfoContext(h.ctx, "event stream cut: slow consumer", "request_id", obsqra.ClientFromContext(h.ctx).RequestID,
			"format", h.format.Name, "queued_bytes", h.queued)
		if h.cut() {
			h.t.cfg.SlowConsumer(transportOf(h.format))
		}
		return false
	}
	first := len(h.queue) == 0
	h.queue = append(h.queue, frames...)
	h.queued += size
	h.mu.Unlock()
	return first
}

// cut ends the stream at once, without writing what is queued: its
// client does not read, so the writer's write in progress fails now
// rather than at its deadline, and so does whatever the HTTP server would
// write after it (the end of the chunked body): the connection is closed.
// It reports whether the stream was not cut already.
func (h *httpStream) cut() (first bool) {
	first = !h.cutOff.Swap(true)
	_ = h.rc.SetWriteDeadline(time.Now())
	h.cancel()
	return first
}

// writeNow wakes the writer: an HTTP response is written by its handler's
// goroutine.
func (h *httpStream) writeNow() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

func (h *httpStream) finish(typ string, errors json.RawMessage) {
	var frames [][]byte
	if typ == "error" {
		frames = append(frames, h.format.Frame(errorsResult(errors)))
	}
	h.end(append(frames, h.format.Complete))
}

func (h *httpStream) done() context.Context { return h.ctx }

// stop does nothing: a stream that ended has queued its last frames
// (finish), and the writer returns once they are written.
func (h *httpStream) stop() {}

// refuse ends the stream with err, a refusal of its credentials, as its
// last result.
func (h *httpStream) refuse(err error) {
	b := h.t.marshalErrors(h.ctx, gqlerror.List{h.t.cfg.PresentError(h.ctx, err)})
	h.finish("error", b)
}

// end queues frames as the stream's last, unless it has ended already.
func (h *httpStream) end(frames [][]byte) {
	h.mu.Lock()
	if h.last {
		h.mu.Unlock()
		return
	}
	h.last = true
	h.queue = append(h.queue, frames...)
	h.mu.Unlock()
	h.writeNow()
}

// errorsResult is the result holding only errs, a JSON array.
func errorsResult(errs json.RawMessage) []byte {
	b := make([]byte, 0, len(`{"errors":}`)+len(errs))
	b = append(b, `{"errors":`...)
	b = append(b, errs...)
	return append(b, '}')
}

// writeLoop writes the queue as it fills, and the heartbeat while it does
// not, until the last frames are written, a write fails, or the stream's
// context ends.
func (h *httpStream) writeLoop(heartbeat time.Duration) {
	var tick <-chan time.Time
	if h.format.Heartbeat != nil && heartbeat > 0 {
		t := time.NewTicker(heartbeat)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-h.ctx.Done():
			return
		case <-tick:
			if !h.write(h.format.Heartbeat) {
				return
			}
		case <-h.wake:
			h.mu.Lock()
			q, last := h.queue, h.last
			h.queue, h.queued = nil, 0
			h.mu.Unlock()
			for _, f := range q {
				if !h.write(f) {
					return
				}
			}
			if last {
				return
			}
		}
	}
}

// write writes b and flushes, within the transport's WriteTimeout (the
// server's own would cut a long stream); a failure ends the stream.
func (h *httpStream) write(b []byte) bool {
	_ = h.rc.SetWriteDeadline(time.Now().Add(h.t.cfg.WriteTimeout))
	var err error
	if len(b) > 0 {
		_, err = h.w.Write(b)
	}
	if err == nil {
		err = h.rc.Flush()
	}
	if err != nil {
		h.cancel() // the client is gone or does not read
		return false
	}
	return true
}

// recheck checks the stream's credentials again (checked holds the
// answers of this recheck so far, by token): a refusal ends it. It reports
// false when the check could not be made.
func (h *httpStream) recheck(ctx context.Context, checked map[string]authAnswer) bool {
	if h.token == "" {
		return true
	}
	ans, ok := checked[h.token]
	if !ok {
		ans.p, ans.err = h.t.authenticate(ctx, h.token, obsqra.ClientFromContext(h.ctx).RequestID)
		checked[h.token] = ans
	}
	switch {
	case h.ctx.Err() != nil:
	case ans.err != nil && refusal(ans.err):
		h.refuse(ans.err)
	case ans.err != nil:
		h.t.log.WarnContext(h.ctx, "event stream recheck failed", "request_id", obsqra.ClientFromContext(h.ctx).RequestID,
			"error", ans.err.Error())
		return false
	default:
		h.principal.Store(ans.p)
	}
	return true
}
