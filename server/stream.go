package server

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/server/wire"
	"github.com/obsqra/obsqra/server/ws"
	"github.com/obsqra/obsqra/subscription"
)

// DefaultSSEHeartbeat is the interval between the heartbeats a stream
// sends while it has nothing else to send, so that proxies that close idle
// connections (often after 30 to 60 s) leave it open.
const DefaultSSEHeartbeat = 12 * time.Second

// eventStreams runs operations whose results are streamed over one HTTP
// response, in one of the wire.StreamFormats: graphql-sse's "distinct
// connections" mode (one operation per request, POST with a JSON body or
// GET with the query in the URL, each result an "event: next", then
// "event: complete"), Apollo's multipart subscriptions, and incremental
// delivery (@defer) as multipart/mixed.
//
// A subscription runs for as long as the client reads: until its stream
// ends (with its subscription.End error sent as a last result), the client
// goes away (the request's context), or the server starts shutting down
// (the response then ends without its complete, as a WebSocket's close
// 1001 does, so that the client reconnects, from its last cursor).
type eventStreams struct {
	// subscriptions serves subscriptions (the WebSocket transport, whose
	// shared streams and limits they share).
	subscriptions *ws.Transport
	heartbeat     time.Duration
	writeTimeout  time.Duration
	// shuttingDown is done once the server is going away.
	shuttingDown context.Context
	log          *slog.Logger
	presentError func(context.Context, error) *gqlerror.Error
	recover      func(context.Context, any) error
	// open counts the responses streaming here now (not the
	// subscriptions', which their transport counts), by streamKind.
	open [streamKinds]atomic.Int64
}

// streamKind is the transport of a streamed response, an index of
// eventStreams.open.
type streamKind int

// The streamKinds.
const (
	sseStream streamKind = iota
	multipartStream
	streamKinds
)

// serve answers r with the results of the operation rc, or with its
// refusal errs, as a stream in format. A subscription is served by the
// subscriptions' transport, which runs it once for all its subscribers and
// bounds what each may hold; the rest (a query or mutation over
// graphql-sse, a deferred query, a refusal) runs here, for this request
// alone.
func (s *eventStreams) serve(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor, format *wire.StreamFormat, params *graphql.RawParams, rc *graphql.OperationContext, errs gqlerror.List) {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	// No goroutine waits for the shutdown: thousands of streams would
	// each hold one.
	defer context.AfterFunc(s.shuttingDown, cancel)()
	if errs == nil && rc.Operation.Operation == ast.Subscription {
		s.subscriptions.ServeHTTPStream(ctx, w, r, ws.HTTPStream{
			Format: format, Heartbeat: s.heartbeat, Exec: exec, Params: params, Op: rc,
		})
		return
	}
	kind := multipartStream
	if format == &wire.SSE {
		kind = sseStream
	}
	s.open[kind].Add(1)
	defer s.open[kind].Add(-1)
	ctx, end := subscription.NewContext(ctx)
	ctx = graphql.StartOperationTrace(ctx)

	st := newEventStream(w, format, s.writeTimeout, cancel)
	if format.Heartbeat != nil {
		stopHeartbeat := st.heartbeat(ctx, s.heartbeat)
		defer stopHeartbeat()
	}
	defer func() {
		// Resolvers' panics are recovered by the generated code; this is
		// for the rest (extensions, response handlers).
		if v := recover(); v != nil {
			st.next(ctx, &graphql.Response{Errors: gqlerror.List{s.presentError(ctx, s.recover(ctx, v))}})
			st.complete()
		}
	}()
	if errs != nil {
		st.next(ctx, exec.DispatchError(graphql.WithOperationContext(ctx, rc), errs))
		st.complete()
		return
	}
	// The operation's context may end with its results (a query's
	// deadline): whether the stream was cut short is the stream's.
	responses, opCtx := exec.DispatchOperation(graphql.WithOperationContext(ctx, rc), rc)
	if rc.Operation.Operation != ast.Subscription {
		// A query's or a mutation's result, or its increments (defer.go).
		s.results(ctx, opCtx, st, responses, deferred(rc))
		return
	}
	for {
		resp := responses(opCtx)
		if resp == nil {
			break
		}
		st.next(opCtx, resp)
	}
	if ctx.Err() != nil {
		// The client went away, or the server is shutting down: no
		// complete, so that a client still there reconnects.
		return
	}
	if err := end.Err(); err != nil {
		st.next(ctx, &graphql.Response{Errors: gqlerror.List{s.presentError(ctx, err)}})
	}
	st.complete()
}

// eventStream is the response of one event stream. Its writes are
// serialised (the heartbeat writes beside the operation), each bounded by
// a write deadline; the first that fails cancels the operation.
type eventStream struct {
	format  *wire.StreamFormat
	mu      sync.Mutex
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	failed  bool
	cancel  context.CancelFunc
}

// newEventStream writes the stream's header: 200, the format's media
// type, and no caching or buffering by proxies.
func newEventStream(w http.ResponseWriter, format *wire.StreamFormat, timeout time.Duration, cancel context.CancelFunc) *eventStream {
	st := &eventStream{format: format, w: w, rc: http.NewResponseController(w), timeout: timeout, cancel: cancel}
	h := w.Header()
	h.Set("Content-Type", format.ContentType)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx
	w.WriteHeader(http.StatusOK)
	st.write(format.Start)
	return st
}

// write writes b and flushes it. The server's WriteTimeout would cut the
// stream short: each write gets its own deadline instead (an error means
// the ResponseWriter cannot set one, as in tests' recorders).
func (st *eventStream) write(b []byte) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.failed {
		return
	}
	_ = st.rc.SetWriteDeadline(time.Now().Add(st.timeout))
	var err error
	if len(b) > 0 {
		_, err = st.w.Write(b)
	}
	if err == nil {
		err = st.rc.Flush()
	}
	if err != nil {
		st.failed = true
		st.cancel() // the client is gone or does not read
	}
}

// next sends resp as the stream's next result.
func (st *eventStream) next(ctx context.Context, resp *graphql.Response) {
	data, err := json.Marshal(resp)
	if err != nil {
		client := obsqra.ClientFromContext(ctx)
		data, _ = json.Marshal(wire.Response(wire.Internal(client.RequestID, client.TraceID)))
	}
	st.write(st.format.Frame(data))
}

// complete ends the stream: the client is not to reconnect.
func (st *eventStream) complete() { st.write(st.format.Complete) }

// heartbeat sends the format's heartbeat every interval until ctx is done or the
// returned stop is called; stop returns once the heartbeat no longer
// writes.
func (st *eventStream) heartbeat(ctx context.Context, interval time.Duration) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-done:
				return
			case <-t.C:
				st.write(st.format.Heartbeat)
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}
