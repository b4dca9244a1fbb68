package server

import (
	"context"
	"encoding/json"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/server/wire"
	"github.com/obsqra/obsqra/subscription"
)

// DefaultSSEHeartbeat is the interval between the comments an event stream
// sends while it has nothing else to send, so that proxies that close idle
// connections (often after 30 to 60 s) leave it open.
const DefaultSSEHeartbeat = 12 * time.Second

// mediaEventStream is the media type of server-sent events.
const mediaEventStream = "text/event-stream"

// eventStreams runs operations whose request accepts text/event-stream as
// graphql-sse's "distinct connections" mode: one operation per request
// (POST with a JSON body, or GET with the query in the URL), each result an
// "event: next" with the result as data, then "event: complete".
//
// A subscription runs for as long as the client reads: until its stream
// ends (with its subscription.End error sent as a last next), the client
// goes away (the request's context), or the server starts shutting down
// (the response then ends without complete, as a WebSocket's close 1001
// does, so that the client reconnects, from its last cursor). Unlike on a
// WebSocket, every stream runs its own execution: streams are not shared
// between clients.
type eventStreams struct {
	heartbeat    time.Duration
	writeTimeout time.Duration
	shuttingDown <-chan struct{}
	log          *slog.Logger
	presentError func(context.Context, error) *gqlerror.Error
	recover      func(context.Context, any) error
}

// acceptsEventStream reports whether the Accept header accept names
// text/event-stream.
func acceptsEventStream(accept string) bool {
	for part := range strings.SplitSeq(accept, ",") {
		if mt, _, err := mime.ParseMediaType(strings.TrimSpace(part)); err == nil && mt == mediaEventStream {
			return true
		}
	}
	return false
}

// serve answers r, a request for an event stream. A request that is not
// GraphQL over HTTP is answered as on plain HTTP, in media; everything
// else, an operation refused before it executes included, is answered
// with a stream (as graphql-sse's own server does), whose next carries the
// errors with their codes.
func (s *eventStreams) serve(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor, media string) {
	params, rerr := streamParams(r)
	if rerr != nil {
		writeRequestError(w, media, rerr.status, rerr.code, rerr.message)
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	done := ctx.Done() // ctx is reassigned below: the goroutine keeps this one's
	go func() {
		select {
		case <-s.shuttingDown:
			cancel()
		case <-done:
		}
	}()
	ctx, end := subscription.NewContext(ctx)
	ctx = graphql.StartOperationTrace(ctx)
	rc, errs := exec.CreateOperationContext(ctx, params)
	if errs == nil && r.Method == http.MethodGet && rc.Operation.Operation == ast.Mutation {
		w.Header().Set("Allow", "POST")
		writeRequestError(w, media, http.StatusMethodNotAllowed, codeMethodNotAllowed,
			"a mutation cannot be sent with GET: use POST")
		return
	}

	st := newEventStream(w, s.writeTimeout, cancel)
	stopHeartbeat := st.heartbeat(ctx, s.heartbeat)
	defer stopHeartbeat()
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
	if rc.Operation.Operation == ast.Subscription {
		// As a WebSocket's connection_init does: a refused token does not
		// subscribe anonymously.
		if _, err := obsqra.Viewer(ctx); err != nil {
			st.next(ctx, &graphql.Response{Errors: gqlerror.List{s.presentError(ctx, err)}})
			st.complete()
			return
		}
	}
	// The operation's context may end with its results (a query's
	// deadline): whether the stream was cut short is the stream's.
	responses, opCtx := exec.DispatchOperation(graphql.WithOperationContext(ctx, rc), rc)
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
		// The stream ended on its own (a subscriber too slow for its
		// buffer, say): the client learns why, and from where to resume.
		st.next(ctx, &graphql.Response{Errors: gqlerror.List{s.presentError(ctx, err)}})
	}
	st.complete()
}

// streamParams reads the operation of r as httpTransport does: from the
// URL of a GET, from the JSON body of a POST (one operation: a batch cannot
// be streamed).
func streamParams(r *http.Request) (*graphql.RawParams, *requestError) {
	start := graphql.Now()
	var params *graphql.RawParams
	switch r.Method {
	case http.MethodGet:
		var rerr *requestError
		if params, rerr = queryParams(r); rerr != nil {
			return nil, rerr
		}
	case http.MethodPost:
		body, rerr := jsonBody(r)
		if rerr != nil {
			return nil, rerr
		}
		var ok bool
		if params, ok = decodeParams(body); !ok {
			return nil, &requestError{http.StatusBadRequest, codeBadRequest,
				malformedRequest + "; a batch cannot be sent as an event stream"}
		}
	default:
		return nil, &requestError{http.StatusMethodNotAllowed, codeMethodNotAllowed,
			r.Method + " is not allowed on /graphql: use POST, or GET for a query"}
	}
	params.Headers = r.Header
	params.ReadTime = graphql.TraceTiming{Start: start, End: graphql.Now()}
	return params, nil
}

// eventStream is the response of one event stream. Its writes are
// serialised (the heartbeat writes beside the operation), each bounded by
// a write deadline; the first that fails cancels the operation.
type eventStream struct {
	mu      sync.Mutex
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	failed  bool
	cancel  context.CancelFunc
}

// newEventStream writes the stream's header: 200, text/event-stream, and
// no caching or buffering by proxies.
func newEventStream(w http.ResponseWriter, timeout time.Duration, cancel context.CancelFunc) *eventStream {
	st := &eventStream{w: w, rc: http.NewResponseController(w), timeout: timeout, cancel: cancel}
	h := w.Header()
	h.Set("Content-Type", mediaEventStream+"; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx
	w.WriteHeader(http.StatusOK)
	st.write(nil)
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

// next sends resp as an event next.
func (st *eventStream) next(ctx context.Context, resp *graphql.Response) {
	data, err := json.Marshal(resp)
	if err != nil {
		data, _ = json.Marshal(wire.Response(wire.Internal(obsqra.ClientFromContext(ctx).RequestID)))
	}
	b := make([]byte, 0, len(data)+len("event: next\ndata: \n\n"))
	b = append(b, "event: next\ndata: "...)
	b = append(b, data...)
	b = append(b, "\n\n"...)
	st.write(b)
}

// complete sends the event complete, the stream's last.
func (st *eventStream) complete() { st.write([]byte("event: complete\ndata:\n\n")) }

// heartbeat sends a comment every interval until ctx is done or the
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
				st.write([]byte(":\n\n"))
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}
