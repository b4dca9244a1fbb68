package ws

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/server/wire"
	"github.com/obsqra/obsqra/subscription"
)

// sharedStreams runs a subscription once per distinct (document, operation
// name, variables, viewer) and sends each of its events to every
// subscriber of it, on any connection: 15,000 sockets watching the same
// risk scores cost one execution and one JSON encoding per event, not
// 15,000. A stream is shared only when its resolver says so
// (subscription.Share: it streams only what happens from now on), and only
// once it has started, so a subscriber never joins a stream that replays
// history meant for someone else.
type sharedStreams struct {
	mu sync.Mutex
	m  map[string]*sharedStream
	// starting holds, by key, the streams whose resolver has not yet said
	// whether they may be shared: a subscriber asking the same waits for
	// that instead of starting an execution of its own for life.
	starting map[string]*sharedStream
	// wg counts the running executions, so shutdown can wait for them;
	// running counts them too, for Stats.
	wg      sync.WaitGroup
	running atomic.Int64
	// members counts the subscribers of every stream, by memberKind.
	members [memberKinds]atomic.Int64
}

// memberKind is the transport of a subscriber, an index of
// sharedStreams.members.
type memberKind int

// The memberKinds.
const (
	webSocketMember memberKind = iota
	sseMember
	multipartMember
	memberKinds
)

// kindOf is the memberKind of sub.
func kindOf(sub subscriber) memberKind {
	if h, ok := sub.(*httpStream); ok {
		if transportOf(h.format) == TransportSSE {
			return sseMember
		}
		return multipartMember
	}
	return webSocketMember
}

// sharedStream is one running execution and its subscribers.
type sharedStream struct {
	// key is the stream's key in sharedStreams (guarded by its mu); params
	// are the operation's, for the public key.
	key    string
	params *graphql.RawParams
	cancel context.CancelFunc
	// decided is closed once the resolver has run (the stream is then
	// published or not).
	decided    chan struct{}
	decideOnce sync.Once

	mu      sync.Mutex
	members map[subscriber]struct{}
	ended   bool
}

// subscriber is one member of a shared stream: an operation of a
// WebSocket connection (member), or an HTTP stream (httpStream).
type subscriber interface {
	// frameKey is the same for subscribers whose frames of one result are
	// the same bytes, which are then framed once for all of them.
	frameKey() []byte
	// frame returns the frame of a result, the result's JSON.
	frame(result []byte) []byte
	// enqueue queues frames to be written, unless the subscriber has left
	// or its queue is over its bound (it then ends); it reports whether
	// its writer has to be woken by writeNow after this burst.
	enqueue(frames [][]byte) (wake bool)
	// writeNow writes what is queued without waiting, or has it written.
	writeNow()
	// finish sends the stream's end: typ "complete", or "error" with the
	// errors' JSON.
	finish(typ string, errors json.RawMessage)
	// done is closed once the subscriber has left: it then leaves the
	// stream.
	done() context.Context
	// stop ends the subscriber's part in the stream, once finish is sent.
	stop()
}

// member is a WebSocket subscriber of a shared stream: an operation of a
// connection.
type member struct {
	c  *conn
	op *operation
	// prefix is the start of every next message to it, up to the payload.
	prefix []byte
}

var _ subscriber = (*member)(nil)

func newMember(c *conn, op *operation) *member {
	id, _ := json.Marshal(op.id)
	typ := "next"
	if c.legacy {
		typ = "data"
	}
	prefix := append([]byte(`{"id":`), id...)
	prefix = append(prefix, `,"type":"`+typ+`","payload":`...)
	return &member{c: c, op: op, prefix: prefix}
}

func (m *member) frameKey() []byte { return m.prefix }

func (m *member) frame(result []byte) []byte { return newFrame(opText, m.prefix, result, closingBrace) }

func (m *member) enqueue(frames [][]byte) bool { return m.c.enqueueOperationFrames(m.op, frames) }

func (m *member) writeNow() { m.c.writeNow() }

func (m *member) finish(typ string, errors json.RawMessage) { m.c.finishOperation(m.op, typ, errors) }

func (m *member) done() context.Context { return m.op.ctx }

func (m *member) stop() { m.op.cancel() }

// streamKey identifies a subscription's execution: its document, operation
// name, variables (encoded with sorted keys) and viewer.
func streamKey(params *graphql.RawParams, viewer int64) string {
	vars, _ := json.Marshal(params.Variables)
	h := sha256.New()
	for _, part := range []string{params.Query, params.OperationName, string(vars), strconv.FormatInt(viewer, 10)} {
		h.Write([]byte(strconv.Itoa(len(part)) + ":" + part))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// join adds sub to the running shared stream of key and returns the
// stream, or nil when there is none to join.
func (ss *sharedStreams) join(key string, sub subscriber) *sharedStream {
	ss.mu.Lock()
	st := ss.m[key]
	ss.mu.Unlock()
	if st == nil {
		return nil
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.ended {
		return nil
	}
	st.members[sub] = struct{}{}
	return st
}

// publicViewer stands for every viewer in the key of a stream whose
// resolver declared it public (no user id is negative).
const publicViewer = -1

// publish makes st joinable under its key, or under the public key of its
// operation when public, unless another stream of that key already is.
func (ss *sharedStreams) publish(st *sharedStream, public bool) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if public {
		st.key = streamKey(st.params, publicViewer)
	}
	if ss.m == nil {
		ss.m = make(map[string]*sharedStream)
	}
	if _, taken := ss.m[st.key]; !taken {
		ss.m[st.key] = st
	}
}

// claim records st as the starting stream of its key and returns nils,
// unless a stream of its key (or of public, its operation's public key) is
// published, or another of its key is starting: it then reports the one
// to join, or returns the one whose decision to wait for, and st is not
// recorded.
func (ss *sharedStreams) claim(st *sharedStream, public string) (pending *sharedStream, published bool) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.m[st.key] != nil || ss.m[public] != nil {
		return nil, true
	}
	if other := ss.starting[st.key]; other != nil {
		return other, false
	}
	if ss.starting == nil {
		ss.starting = make(map[string]*sharedStream)
	}
	ss.starting[st.key] = st
	return nil, false
}

// decide ends st's start: published when shareable, and those waiting for
// it look again. It may be called more than once; the first call counts.
func (ss *sharedStreams) decide(st *sharedStream, shareable, public bool) {
	st.decideOnce.Do(func() {
		ss.mu.Lock()
		if ss.starting[st.key] == st {
			delete(ss.starting, st.key)
		}
		ss.mu.Unlock()
		if shareable {
			ss.publish(st, public)
		}
		close(st.decided)
	})
}

// unpublish forgets st, if it is the stream of its key.
func (ss *sharedStreams) unpublish(st *sharedStream) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.m[st.key] == st {
		delete(ss.m, st.key)
	}
}

// leave removes m from st; the last member to leave stops the execution.
func (ss *sharedStreams) leave(st *sharedStream, m subscriber) {
	st.mu.Lock()
	delete(st.members, m)
	last := len(st.members) == 0 && !st.ended
	if last {
		st.ended = true
	}
	st.mu.Unlock()
	if last {
		ss.unpublish(st)
		st.cancel()
	}
}

// appendMembers appends the members at this moment to buf.
func (st *sharedStream) appendMembers(buf []subscriber) []subscriber {
	st.mu.Lock()
	defer st.mu.Unlock()
	for m := range st.members {
		buf = append(buf, m)
	}
	return buf
}

// runSubscription runs the subscription op of c as a stream others may
// share (subscribe); op is the stream's from then on.
func (c *conn) runSubscription(authCtx context.Context, viewer *obsqra.User, op *operation, params *graphql.RawParams, rc *graphql.OperationContext) {
	c.t.subscribe(authCtx, viewer, newMember(c, op), c.exec, params, rc)
}

// subscribe runs the subscription rc for sub as a stream others may share:
// the execution belongs to the stream, not to sub, and goes on while any
// member remains. It returns at once; sub leaves when it is done (the
// client stops the operation, its connection ends), and is stopped when
// the stream ends.
//
// authCtx is the context with the principal the operation was authorised
// for, viewer that principal's user (nil when anonymous).
func (t *Transport) subscribe(authCtx context.Context, viewer *obsqra.User, sub subscriber, exec graphql.GraphExecutor, params *graphql.RawParams, rc *graphql.OperationContext) {
	var viewerID int64
	if viewer != nil {
		viewerID = viewer.ID
	}
	key, public := streamKey(params, viewerID), streamKey(params, publicViewer)
	ss := &t.streams
	for waited := false; ; {
		// The viewer's own stream, or one whose resolver said it is the
		// same for every viewer.
		for _, k := range []string{key, public} {
			if st := ss.join(k, sub); st != nil {
				t.watchMember(st, sub)
				return
			}
		}
		// A new stream, unless another subscriber of the same key started
		// one since the joins above: checking and claiming is one step, so
		// two subscribers arriving together do not both start one.
		st := &sharedStream{key: key, params: params, members: make(map[subscriber]struct{}), decided: make(chan struct{})}
		pending, published := ss.claim(st, public)
		switch {
		case published:
			continue // one was published since the joins above: join it
		case pending == nil || waited:
			t.startStream(authCtx, st, sub, exec, rc)
			return
		}
		select {
		case <-pending.decided:
			waited = true
		case <-sub.done().Done():
			return
		}
	}
}

// startStream starts the execution of st, a new stream, with sub its
// first member.
func (t *Transport) startStream(authCtx context.Context, st *sharedStream, sub subscriber, exec graphql.GraphExecutor, rc *graphql.OperationContext) {
	// Its context keeps the first subscriber's values (principal, request
	// id) but not its cancellation.
	sctx, cancel := context.WithCancel(context.WithoutCancel(authCtx))
	st.cancel = cancel
	st.members[sub] = struct{}{}
	t.watchMember(st, sub)
	t.streams.wg.Add(1)
	t.streams.running.Add(1)
	go func() {
		defer t.streams.wg.Done()
		defer t.streams.running.Add(-1)
		t.runStream(sctx, st, exec, rc)
	}()
}

// watchMember makes m leave the stream when it is done. It holds no
// goroutine per subscriber: with thousands of sockets, a waiting
// goroutine's stack would be most of a connection's memory.
func (t *Transport) watchMember(st *sharedStream, m subscriber) {
	count := &t.streams.members[kindOf(m)]
	count.Add(1)
	context.AfterFunc(m.done(), func() {
		t.streams.leave(st, m)
		count.Add(-1)
	})
}

// runStream executes a shared stream and sends every response to every
// member, each response encoded once.
func (t *Transport) runStream(ctx context.Context, st *sharedStream, exec graphql.GraphExecutor, rc *graphql.OperationContext) {
	ctx, state := subscription.NewContext(ctx)
	ctx = graphql.StartOperationTrace(ctx)
	end := func(typ string, payload json.RawMessage) {
		st.mu.Lock()
		st.ended = true
		members := make([]subscriber, 0, len(st.members))
		for m := range st.members {
			members = append(members, m)
		}
		st.mu.Unlock()
		t.streams.unpublish(st)
		for _, m := range members {
			// A stream that ends because the server is going away says
			// nothing: its socket closes with 1001, and the client
			// resubscribes when it reconnects. A complete would tell it
			// the subscription is over for good.
			if typ != "complete" || !t.cfg.ShuttingDown() {
				m.finish(typ, payload)
			}
			m.stop() // its part is over; its watch fires and finds the stream ended
		}
		st.cancel()
	}
	var burst streamBurst
	defer func() {
		if v := recover(); v != nil {
			err := t.cfg.Recover(ctx, v)
			burst.send(st)
			end("error", t.marshalErrors(ctx, gqlerror.List{t.cfg.PresentError(ctx, err)}))
		}
	}()
	defer t.streams.decide(st, false, false) // if the resolver never ran

	responses, ctx := exec.DispatchOperation(graphql.WithOperationContext(ctx, rc), rc)
	// The resolver has run: a stream that says it carries only what
	// happens from now on may take more subscribers.
	t.streams.decide(st, state.Shareable(), state.Public())
	for {
		resp := responses(ctx)
		if resp == nil {
			break
		}
		payload, err := json.Marshal(resp)
		if err != nil {
			t.log.ErrorContext(ctx, "marshal graphql response", "error", err.Error())
			client := obsqra.ClientFromContext(ctx)
			payload, _ = json.Marshal(wire.Response(wire.Internal(client.RequestID, client.TraceID)))
		}
		// The events of a commit are sent together: while more are ready,
		// they wait in the burst.
		if burst.add(payload) || !state.Backlog() {
			burst.send(st)
		}
	}
	burst.send(st)
	if err := state.Err(); err != nil {
		end("error", t.marshalErrors(ctx, gqlerror.List{t.cfg.PresentError(ctx, err)}))
		return
	}
	end("complete", nil)
}

// Bounds of a burst: the events sent together, however many more are
// ready (a backfill commits thousands).
const (
	maxBurstEvents = 64
	maxBurstBytes  = 256 << 10
)

// streamBurst holds the events of a shared stream that are ready together
// and sends them to every member at once: one visit of each member, one
// queueing, one wake of its writer, which writes them in one system call.
// With 15,000 members and a commit of five events, that is 15,000 of each
// rather than 75,000.
type streamBurst struct {
	payloads [][]byte
	bytes    int
	// Kept between bursts, for their memory.
	members []subscriber
	byKey   map[string][][]byte
	unwoken []subscriber
}

// add adds an event's payload and reports whether the burst is full.
func (b *streamBurst) add(payload []byte) (full bool) {
	b.payloads = append(b.payloads, payload)
	b.bytes += len(payload)
	return len(b.payloads) >= maxBurstEvents || b.bytes >= maxBurstBytes
}

// send sends the burst's events to the members of st and empties it.
func (b *streamBurst) send(st *sharedStream) {
	if len(b.payloads) == 0 {
		return
	}
	// Members whose messages are the same bytes (the same operation id and
	// subprotocol: clients mostly number from 1; the same format of HTTP
	// stream) share the frames, encoded once for all of them. Members come
	// mostly in runs of one key, so the last one's frames are tried before
	// the map.
	if b.byKey == nil {
		b.byKey = make(map[string][][]byte, 2)
	}
	var lastKey []byte
	var frames [][]byte
	b.members = st.appendMembers(b.members[:0])
	for _, m := range b.members {
		if key := m.frameKey(); frames == nil || !bytes.Equal(key, lastKey) {
			var ok bool
			if frames, ok = b.byKey[string(key)]; !ok {
				frames = make([][]byte, len(b.payloads))
				for i, p := range b.payloads {
					frames[i] = m.frame(p)
				}
				b.byKey[string(key)] = frames
			}
			lastKey = key
		}
		if m.enqueue(frames) {
			b.unwoken = append(b.unwoken, m)
		}
	}
	writeAll(b.unwoken)
	clear(b.members)
	clear(b.unwoken)
	clear(b.byKey)
	clear(b.payloads)
	b.members, b.unwoken, b.payloads, b.bytes = b.members[:0], b.unwoken[:0], b.payloads[:0], 0
}

// writeAll writes the queues of subs, each without waiting (writeNow), on
// every processor: a burst to thousands of sockets is mostly system calls,
// which one goroutine would make one at a time.
func writeAll(subs []subscriber) {
	workers := min(runtime.GOMAXPROCS(0), len(subs)/minConnsPerWriter)
	if workers <= 1 {
		for _, c := range subs {
			c.writeNow()
		}
		return
	}
	var wg sync.WaitGroup
	per := (len(subs) + workers - 1) / workers
	for chunk := range slices.Chunk(subs, per) {
		wg.Go(func() {
			for _, c := range chunk {
				c.writeNow()
			}
		})
	}
	wg.Wait()
}

// minConnsPerWriter is the fewest connections worth a goroutine of
// writeAll.
const minConnsPerWriter = 256

// closingBrace ends a next message after its payload.
var closingBrace = []byte{'}'}

// marshalErrors returns the payload of an error message.
func (t *Transport) marshalErrors(ctx context.Context, errs gqlerror.List) json.RawMessage {
	b, err := json.Marshal(errs)
	if err != nil {
		t.log.ErrorContext(ctx, "marshal graphql errors", "request_id", obsqra.ClientFromContext(ctx).RequestID, "error", err.Error())
		client := obsqra.ClientFromContext(ctx)
		b, _ = json.Marshal([]wire.Error{wire.Internal(client.RequestID, client.TraceID)})
	}
	return b
}
