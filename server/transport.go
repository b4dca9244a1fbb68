package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/ratelimit"
	"github.com/obsqra/obsqra/server/wire"
)

// DefaultBatchMax bounds the operations of one batched POST: Apollo's
// BatchHttpLink sends up to 10 by default.
const DefaultBatchMax = 10

// The media types of a GraphQL response (GraphQL over HTTP).
const (
	mediaJSON            = "application/json"
	mediaGraphQLResponse = "application/graphql-response+json"
)

// Extension codes of the errors the HTTP transport writes itself.
const (
	codeBadRequest           = "BAD_REQUEST"
	codeBatchTooLarge        = "BATCH_TOO_LARGE"
	codeMethodNotAllowed     = "METHOD_NOT_ALLOWED"
	codeUnsupportedMediaType = "UNSUPPORTED_MEDIA_TYPE"
	codeUnavailable          = "SERVICE_UNAVAILABLE"
	codeSubscriptionStream   = "SUBSCRIPTION_NEEDS_STREAM"
)

// httpTransport is /graphql over plain HTTP, in place of gqlgen's GET and
// POST transports, following GraphQL over HTTP:
//
//   - POST with Content-Type application/json carries one operation (a
//     JSON object) or a batch (a JSON array of up to batchMax objects),
//     answered with one response or an array of responses in order; GET
//     carries one query in its URL (never a mutation: 405, Allow: POST).
//   - The response's media type is the first of application/json and
//     application/graphql-response+json that Accept names (application/json
//     when it names neither explicitly, e.g. */* or nothing).
//   - A request error, one that stops an operation before it executes
//     (the document does not parse or validate, is over a limit,
//     complexity included, or its variables do not fit), is HTTP 400 under
//     application/graphql-response+json and 200 under application/json,
//     and its response has no data entry. An operation that executes is
//     200 under both, whatever errors its fields raise.
//   - A request that is not GraphQL over HTTP (a body that is not the JSON
//     of a request, no query, another method or content type, a batch too
//     large) is 4xx under both, with a code saying why.
//
// A batch's operations run one after the other, each with its own
// document limits and its own errors; the request's limits (its body, its
// deadline of requestTimeout) bound the batch as a whole. A batch that is
// well-formed is 200 under both media types, since each of its operations
// reports its own errors in its own response.
type httpTransport struct {
	batchMax       int
	requestTimeout time.Duration
	// charge charges operations to the request's budget (Server.charge);
	// nil charges nothing.
	charge func(ctx context.Context, rcs ...*graphql.OperationContext) (*ratelimit.Decision, error)
	// presentError is the server's error presenter.
	presentError func(ctx context.Context, err error) *gqlerror.Error
	// streams answers an operation whose results are streamed (stream.go).
	streams *eventStreams
	// cache answers a request again from its kept answer (readcache.go),
	// or is nil.
	cache *ReadCache
	// limits are the cost budgets that charge (and refund) cached answers
	// as they would the operations, or nil.
	limits *RateLimits
}

var _ graphql.Transport = httpTransport{}

// Supports takes every request the WebSocket transport did not: anything
// other than GET and POST is answered 405 here, in the GraphQL error shape.
func (httpTransport) Supports(*http.Request) bool { return true }

// Do answers one HTTP request.
func (t httpTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	accept := r.Header.Get("Accept")
	media := responseMediaType(accept)
	streamed := wire.ParseAccept(accept)
	start := graphql.Now()
	var (
		params *graphql.RawParams
		cached *readRequest // the request's use of the read cache, or nil
	)
	switch r.Method {
	case http.MethodGet:
		var rerr *requestError
		if params, rerr = queryParams(r); rerr != nil {
			writeRequestError(w, media, rerr.status, rerr.code, rerr.message)
			return
		}
	case http.MethodPost:
		body, rerr := jsonBody(r)
		if rerr != nil {
			writeRequestError(w, media, rerr.status, rerr.code, rerr.message)
			return
		}
		body = bytes.TrimLeft(body, " \t\r\n")
		if len(body) > 0 && body[0] == '[' {
			if streamed.SSE {
				writeRequestError(w, media, http.StatusBadRequest, codeBadRequest,
					malformedRequest+"; a batch cannot be sent as an event stream")
				return
			}
			t.batch(w, r, exec, media, body, start)
			return
		}
		if t.cache != nil && !streamed.SSE && !streamed.MultipartIncremental && !streamed.MultipartSubscription {
			if cached = t.cache.begin(r.Context(), media, body); cached != nil {
				if e := cached.lookup(); e != nil {
					t.answerCached(w, r, media, e)
					return
				}
			}
		}
		var ok bool
		if params, ok = decodeParams(body); !ok {
			writeRequestError(w, media, http.StatusBadRequest, codeBadRequest, malformedBody)
			return
		}
	default:
		w.Header().Set("Allow", "GET, POST")
		writeRequestError(w, media, http.StatusMethodNotAllowed, codeMethodNotAllowed,
			r.Method+" is not allowed on /graphql: use POST, or GET for a query")
		return
	}
	params.Headers = r.Header
	params.ReadTime = graphql.TraceTiming{Start: start, End: graphql.Now()}

	ctx := r.Context()
	if t.streams != nil && (streamed.SSE || streamed.MultipartIncremental) {
		// A query may keep its @defer: its increments can be streamed
		// (defer.go).
		ctx = withIncrements(ctx)
	}
	rc, errs := exec.CreateOperationContext(ctx, params)
	g := graphQLRequestOf(w)
	g.operation(rc)
	format := streamFormat(streamed, rc, errs)
	if format == nil || t.streams == nil {
		format = nil
	}
	if errs == nil && r.Method == http.MethodGet && rc.Operation.Operation == ast.Mutation {
		// GET is safe: a mutation is never run by one. A subscription is
		// (an EventSource can only GET); without a stream it is refused
		// below, as by POST.
		w.Header().Set("Allow", "POST")
		writeRequestError(w, media, http.StatusMethodNotAllowed, codeMethodNotAllowed,
			"a mutation cannot be sent with GET: use POST")
		return
	}
	// What runs is charged first; a subscription without a stream is
	// refused below before it costs anything.
	if errs == nil && (format != nil || rc.Operation.Operation != ast.Subscription) {
		if !t.admit(r.Context(), w, media, 0, rc) {
			return
		}
	}
	if format != nil {
		if g != nil {
			g.stream = true
			g.noteErrors(errs)
		}
		t.streams.serve(w, r, exec, format, params, rc, errs)
		return
	}
	o := t.execute(r.Context(), exec, params, rc, errs, refuseSubscription)
	g.outcome(o)
	if cached != nil && errs == nil && !o.refused && o.transport == nil {
		cached.store(rc, o.resp)
	}
	o.write(w, media)
}

// answerCached answers with the kept answer e, charged to the request's
// budget as its operation would be (refused as it would be), its cost
// reported as executing it would report it.
func (t httpTransport) answerCached(w http.ResponseWriter, r *http.Request, media string, e *cacheEntry) {
	g := graphQLRequestOf(w)
	g.cached(e.opName)
	var report *costReport
	if t.charge != nil && t.limits != nil {
		rc := &graphql.OperationContext{}
		oc := &opCost{requested: e.requested, price: e.price}
		rc.Stats.SetExtension(costStats, oc)
		if !t.admit(r.Context(), w, media, 0, rc) {
			return
		}
		if oc.charged && !oc.neutral {
			rep := t.limits.settle(oc, actualCost(oc, e.data))
			report = &rep
		}
	}
	buf := make([]byte, 0, len(e.data)+128)
	buf = append(buf, `{"data":`...)
	buf = append(buf, e.data...)
	if report != nil {
		b, err := json.Marshal(report)
		if err != nil {
			panic(err) // integers and a string
		}
		buf = append(buf, `,"extensions":{"cost":`...)
		buf = append(buf, b...)
		buf = append(buf, '}')
	}
	buf = append(buf, '}')
	w.Header().Set("Content-Type", media)
	_, _ = w.Write(buf)
}

// admit charges the operations rcs (one, or a batch's that run) to the
// request's budget and sets the rate limit header fields. When refused it
// answers (429 RATE_LIMITED with Retry-After, or 503 when the budget
// could not be read; a batch of n operations gets n such responses) and
// reports false.
func (t httpTransport) admit(ctx context.Context, w http.ResponseWriter, media string, n int, rcs ...*graphql.OperationContext) bool {
	if t.charge == nil || len(rcs) == 0 {
		return true
	}
	d, err := t.charge(ctx, rcs...)
	neutral := false
	if oc := costOf(rcs[0]); oc != nil {
		neutral = oc.neutral
	}
	setRateLimitHeaders(w.Header(), d, neutral)
	if err == nil {
		return true
	}
	status := http.StatusTooManyRequests
	if obsqra.ErrorCode(err) == obsqra.EUNAVAILABLE {
		status = http.StatusServiceUnavailable
	}
	e := t.presentError(ctx, err)
	graphQLRequestOf(w).fail(codeOf(e))
	body := wire.Response(wire.Error{Message: e.Message, Extensions: e.Extensions})
	var v any = body
	if n > 0 {
		all := make([]wire.Body, n)
		for i := range all {
			all[i] = body
		}
		v = all
	}
	wire.WriteJSONAs(w, status, media, v)
	return false
}

// streamFormat is the format in which to stream the results of the
// operation rc (or its refusal, errs), or nil to answer with one JSON
// response. An event stream is graphql-sse's, which streams every
// operation, refusals included; Apollo's multipart formats stream only
// what has more than one result: a subscription, and a query with an
// active @defer (see deferred), whose results come in increments. Any
// other query is plain JSON even when multipart is accepted: Apollo Client
// reads either, and sends Accept: multipart/mixed for @defer(if: false)
// too.
func streamFormat(a wire.Accepted, rc *graphql.OperationContext, errs gqlerror.List) *wire.StreamFormat {
	switch {
	case a.SSE:
		return &wire.SSE
	case errs != nil:
		return nil
	case rc.Operation.Operation == ast.Subscription:
		if a.MultipartSubscription {
			return &wire.MultipartSubscription
		}
	case a.MultipartIncremental && deferred(rc):
		return &wire.MultipartIncremental
	}
	return nil
}

// queryParams reads the operation a GET carries in its URL: query,
// operationName, and variables and extensions as JSON objects.
func queryParams(r *http.Request) (*graphql.RawParams, *requestError) {
	query, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, &requestError{http.StatusBadRequest, codeBadRequest, "the URL's query string is malformed"}
	}
	params := &graphql.RawParams{Query: query.Get("query"), OperationName: query.Get("operationName")}
	for name, dst := range map[string]any{"variables": &params.Variables, "extensions": &params.Extensions} {
		if v := query.Get(name); v != "" {
			if err := decodeJSON(strings.NewReader(v), dst); err != nil {
				return nil, &requestError{http.StatusBadRequest, codeBadRequest, "the " + name + " parameter is not a JSON object"}
			}
		}
	}
	return params, nil
}

// jsonBody checks that a POST's body is JSON and reads it (limitBody
// answers a body over the limit with its 413 first).
func jsonBody(r *http.Request) ([]byte, *requestError) {
	if ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || ct != mediaJSON {
		return nil, &requestError{http.StatusUnsupportedMediaType, codeUnsupportedMediaType,
			"a POST to /graphql must have Content-Type application/json"}
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, &requestError{http.StatusBadRequest, codeBadRequest, "the request body could not be read"}
	}
	return body, nil
}

// malformedBody is the message of a POST body that is not a request.
const malformedBody = malformedRequest + ", or an array of them"

// malformedRequest describes the one request object a body must hold.
const malformedRequest = "the request body is not a GraphQL request: a JSON object with a string \"query\" " +
	"and optional \"operationName\" (a string), \"variables\" and \"extensions\" (objects)"

func (t httpTransport) batch(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor, media string, body []byte, start time.Time) {
	var raws []json.RawMessage
	if err := json.Unmarshal(body, &raws); err != nil || len(raws) == 0 {
		writeRequestError(w, media, http.StatusBadRequest, codeBadRequest, malformedBody)
		return
	}
	if len(raws) > t.batchMax {
		writeRequestError(w, media, http.StatusBadRequest, codeBatchTooLarge,
			"a batch holds at most "+strconv.Itoa(t.batchMax)+" operations, this one "+strconv.Itoa(len(raws)))
		return
	}
	all := make([]*graphql.RawParams, len(raws))
	for i, raw := range raws {
		params, ok := decodeParams(raw)
		if !ok {
			writeRequestError(w, media, http.StatusBadRequest, codeBadRequest,
				"operation "+strconv.Itoa(i)+" of the batch: "+malformedBody)
			return
		}
		params.Headers = r.Header
		params.ReadTime = graphql.TraceTiming{Start: start, End: graphql.Now()}
		all[i] = params
	}
	// The batch as a whole gets the request's deadline; each operation
	// still gets its own (operationDeadline), inside it.
	ctx, cancel := context.WithTimeout(r.Context(), t.requestTimeout)
	defer cancel()
	// Every operation is validated first, and the batch's cost charged
	// whole: it runs entirely or not at all.
	rcs := make([]*graphql.OperationContext, len(all))
	errs := make([]gqlerror.List, len(all))
	charged := make([]*graphql.OperationContext, 0, len(all))
	for i, params := range all {
		rcs[i], errs[i] = exec.CreateOperationContext(ctx, params)
		if errs[i] == nil && rcs[i].Operation.Operation != ast.Subscription {
			charged = append(charged, rcs[i])
		}
	}
	if !t.admit(ctx, w, media, len(all), charged...) {
		return
	}
	out := make([]json.RawMessage, len(all))
	g := graphQLRequestOf(w)
	for i, params := range all {
		opStart := start
		if i > 0 {
			opStart = time.Now() // the first operation's time counts the batch's reading
		}
		var o outcome
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			o = outcome{resp: &graphql.Response{Errors: gqlerror.List{{
				Message:    "the batch's request timeout passed before this operation started",
				Extensions: map[string]any{"code": codeUnavailable},
			}}}}
		} else {
			o = t.execute(ctx, exec, params, rcs[i], errs[i], refuseSubscription)
		}
		g.recordOperation(rcs[i], o, time.Since(opStart))
		out[i] = o.body()
	}
	w.Header().Set("Content-Type", media)
	b, err := json.Marshal(out)
	if err != nil {
		panic(err) // the elements are JSON already
	}
	_, _ = w.Write(b)
}

// refuseSubscription refuses a subscription sent as plain JSON, at once:
// a JSON response can carry one result only, so gqlgen would wait for the
// first event and end the subscription there, and with no event coming the
// request would hang.
func refuseSubscription(op *ast.OperationDefinition) *requestError {
	if op.Operation != ast.Subscription {
		return nil
	}
	return &requestError{http.StatusBadRequest, codeSubscriptionStream,
		"a subscription needs a stream: subscribe over a WebSocket (graphql-transport-ws or graphql-ws), " +
			"or send it with Accept: text/event-stream (graphql-sse) or multipart/mixed;subscriptionSpec=1.0 " +
			"(Apollo Client's HttpLink)"}
}

// requestError is an error of the request itself, with its HTTP status.
type requestError struct {
	status        int
	code, message string
}

// outcome is the answer to one operation.
type outcome struct {
	resp *graphql.Response
	// refused is set when the operation did not execute: a request error.
	refused bool
	// transport, when set, is a request that is not GraphQL over HTTP,
	// answered with its status under both media types.
	transport *requestError
}

// run parses, validates and executes one operation. check, when set, may
// refuse the validated operation before it executes.
func (t httpTransport) run(ctx context.Context, exec graphql.GraphExecutor, params *graphql.RawParams, check func(*ast.OperationDefinition) *requestError) outcome {
	rc, errs := exec.CreateOperationContext(ctx, params)
	return t.execute(ctx, exec, params, rc, errs, check)
}

// execute executes the operation rc that params created, or answers its
// refusal errs; check, when set, may refuse rc before it executes.
func (t httpTransport) execute(ctx context.Context, exec graphql.GraphExecutor, params *graphql.RawParams, rc *graphql.OperationContext, errs gqlerror.List, check func(*ast.OperationDefinition) *requestError) outcome {
	if errs != nil {
		if params.Query == "" && (onlyCode(errs, errcode.ParseFailed) || onlyCode(errs, errcode.ValidationFailed)) {
			// Nothing (an extension such as a persisted query included)
			// gave the operation a document: gqlgen then reports "no
			// operation provided". An extension's own error (such as
			// PERSISTED_QUERY_NOT_FOUND) has its own code and is kept.
			return outcome{transport: &requestError{http.StatusBadRequest, codeBadRequest, "the request has no query"}}
		}
		return outcome{resp: exec.DispatchError(graphql.WithOperationContext(ctx, rc), errs), refused: true}
	}
	if check != nil {
		if e := check(rc.Operation); e != nil {
			return outcome{transport: e}
		}
	}
	responses, ctx := exec.DispatchOperation(ctx, rc)
	resp := responses(ctx)
	if resp == nil {
		// gqlgen's answer to a context done before the operation ran: the
		// client went away, or a batch's deadline passed.
		return outcome{transport: &requestError{http.StatusServiceUnavailable, codeUnavailable,
			"the request timed out or was cancelled before this operation ran"}}
	}
	return outcome{resp: resp}
}

// write answers with o alone.
func (o outcome) write(w http.ResponseWriter, media string) {
	if o.transport != nil {
		writeRequestError(w, media, o.transport.status, o.transport.code, o.transport.message)
		return
	}
	w.Header().Set("Content-Type", media)
	if o.refused && media == mediaGraphQLResponse {
		w.WriteHeader(http.StatusBadRequest)
	}
	_, _ = w.Write(o.body())
}

// body is o's GraphQL response. A response of an operation that did not
// execute has no data entry, not a null one.
func (o outcome) body() json.RawMessage {
	if o.transport != nil {
		b, err := json.Marshal(wire.Response(wire.Error{Message: o.transport.message,
			Extensions: map[string]any{"code": o.transport.code}}))
		if err != nil {
			panic(err)
		}
		return b
	}
	var v any = o.resp
	if o.resp.Data == nil {
		v = struct {
			Errors     gqlerror.List  `json:"errors,omitempty"`
			Extensions map[string]any `json:"extensions,omitempty"`
		}{o.resp.Errors, o.resp.Extensions}
	}
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // gqlgen's own writer panics too: data is JSON already
	}
	return b
}

// writeRequestError answers a request that is not GraphQL over HTTP with
// status and one error of code.
func writeRequestError(w http.ResponseWriter, media string, status int, code, message string) {
	graphQLRequestOf(w).fail(code)
	wire.WriteJSONAs(w, status, media, wire.Response(wire.Error{Message: message, Extensions: map[string]any{"code": code}}))
}

// decodeParams decodes one request object; variables and extensions must
// be objects (or null), query and operationName strings (or null).
func decodeParams(b []byte) (*graphql.RawParams, bool) {
	params := &graphql.RawParams{}
	if err := decodeJSON(bytes.NewReader(b), params); err != nil {
		return nil, false
	}
	return params, true
}

// decodeJSON decodes exactly one JSON value, keeping numbers exact.
func decodeJSON(r io.Reader, v any) error {
	dec := json.NewDecoder(r)
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}

// responseMediaType is the media type of the response to a request with
// the Accept header accept: the first of application/json and
// application/graphql-response+json that it names, application/json when
// it names neither but a wildcard or nothing, and
// application/graphql-response+json otherwise (GraphQL over HTTP lets a
// server answer in it when it cannot honour Accept).
func responseMediaType(accept string) string {
	if strings.TrimSpace(accept) == "" {
		return mediaJSON
	}
	for part := range strings.SplitSeq(accept, ",") {
		mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		switch mt {
		case mediaJSON, "*/*", "application/*":
			return mediaJSON
		case mediaGraphQLResponse:
			return mediaGraphQLResponse
		}
	}
	return mediaGraphQLResponse
}

// onlyCode reports whether every error of errs has extensions.code code.
func onlyCode(errs gqlerror.List, code string) bool {
	for _, e := range errs {
		if c, _ := e.Extensions["code"].(string); c != code {
			return false
		}
	}
	return len(errs) > 0
}
