package server

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/server/wire"
)

// maxRequestIDLen bounds an incoming X-Request-ID that is reused as is.
const maxRequestIDLen = 64

// requestID gives every request an id: the caller's X-Request-ID when it is
// sane, a new random one otherwise. The id is echoed in the response and
// travels in the context with the client's address and scheme (clientOf),
// which every limit per address reads, over HTTP and WebSocket alike.
func (s *Server) requestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-ID")
		if !validRequestID(id) {
			id = rand.Text()
		}
		w.Header().Set("X-Request-ID", id)
		address, scheme := s.clientOf(r)
		s.annotateRequest(r.Context(), id)
		ctx := obsqra.NewContextWithClient(r.Context(), &obsqra.Client{
			Address:   address,
			Scheme:    scheme,
			RequestID: id,
			TraceID:   traceIDOf(r.Context()),
		})
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// validRequestID reports whether id is 1 to 64 characters of A–Z, a–z, 0–9,
// '-' and '_': safe in logs and headers, and short.
func validRequestID(id string) bool {
	if id == "" || len(id) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// requestIDOf returns the request id that requestID put in r's context.
func requestIDOf(r *http.Request) string {
	return obsqra.ClientFromContext(r.Context()).RequestID
}

// recoverPanic answers a panic below it with a 500 that carries only the
// request and trace ids, and logs and reports the panic with its stack.
func (s *Server) recoverPanic(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler { //nolint:errorlint // net/http compares it the same way
				panic(v)
			}
			client := obsqra.ClientFromContext(r.Context())
			s.log.ErrorContext(r.Context(), "panic serving http request",
				"request_id", client.RequestID, "method", r.Method, "path", r.URL.Path,
				"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			s.reportPanic(r.Context(), v)
			wire.WriteJSON(w, http.StatusInternalServerError, wire.Response(wire.Internal(client.RequestID, client.TraceID)))
		}()
		next.ServeHTTP(w, r)
	})
}

// accessLog logs one line per request once it is answered.
func (s *Server) accessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &recorder{ResponseWriter: w}
		if r.URL.Path == "/graphql" {
			rec.gql.metrics = s.cfg.Metrics
		}
		completed := false
		// Deferred so that a panicking request is logged too, as the 500
		// that recoverPanic is about to answer.
		defer func() {
			status := rec.status
			switch {
			case !completed:
				status = http.StatusInternalServerError
			case status == 0:
				status = http.StatusOK
			}
			took := time.Since(start)
			rec.gql.record(status, took, completed)
			s.recordStatus(r.Context(), status)
			s.log.InfoContext(r.Context(), "http request",
				"request_id", requestIDOf(r),
				"method", r.Method,
				"path", r.URL.Path,
				"status", status,
				"duration_ms", took.Milliseconds(),
				"bytes", rec.bytes)
		}()
		next.ServeHTTP(rec, r)
		completed = true
	})
}

// recorder remembers the status and size of a response, and what the
// metrics learn of a GraphQL request (see graphQLRequestOf).
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
	gql    graphQLRequest
}

// WriteHeader records the first status code and passes it on.
func (w *recorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

// Write counts the bytes written; a write before WriteHeader is a 200.
func (w *recorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// SwitchingProtocols records the 101 of a WebSocket upgrade, which the
// upgrader writes on the hijacked connection, past every response writer.
func (w *recorder) SwitchingProtocols() { w.status = http.StatusSwitchingProtocols }

// Flush lets streaming transports flush through the recorder.
func (w *recorder) Flush() { _ = http.NewResponseController(w.ResponseWriter).Flush() }

// Unwrap lets http.ResponseController reach the connection (deadlines,
// hijacking for WebSocket).
func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// limitBody refuses request bodies over MaxBodyBytes with a 413. A declared
// Content-Length is checked up front; a body without one (chunked) is cut
// at the limit, and whatever the handler below then writes is replaced by
// the same 413, since gqlgen would report the read error as a 200.
func (s *Server) limitBody(next http.Handler) http.Handler {
	limit := s.cfg.MaxBodyBytes
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rest := strings.HasPrefix(r.URL.Path, "/api/v1/")
		if r.ContentLength > limit {
			writeTooLarge(w, limit, rest)
			return
		}
		if r.Body == nil || r.Body == http.NoBody {
			next.ServeHTTP(w, r)
			return
		}
		lw := &limitWriter{ResponseWriter: w, limit: limit, rest: rest}
		r.Body = &limitedBody{ReadCloser: http.MaxBytesReader(w, r.Body, limit), exceeded: &lw.exceeded}
		next.ServeHTTP(lw, r)
	})
}

// codePayloadTooLarge is the code of a body over the limit.
const codePayloadTooLarge = "PAYLOAD_TOO_LARGE"

// writeTooLarge answers 413 with a GraphQL-shaped error, or for the REST
// API (rest) with its {"detail", "code"}.
func writeTooLarge(w http.ResponseWriter, limit int64, rest bool) {
	if rest {
		wire.WriteJSON(w, http.StatusRequestEntityTooLarge, struct {
			Detail string `json:"detail"`
			Code   string `json:"code"`
		}{"request body too large (limit " + strconv.FormatInt(limit, 10) + " bytes)", codePayloadTooLarge})
		return
	}
	graphQLRequestOf(w).replace(codePayloadTooLarge)
	wire.WriteJSON(w, http.StatusRequestEntityTooLarge, wire.Response(wire.Error{
		Message:    "request body too large (limit " + strconv.FormatInt(limit, 10) + " bytes)",
		Extensions: map[string]any{"code": codePayloadTooLarge},
	}))
}

// limitedBody records that its reader hit the size limit.
type limitedBody struct {
	io.ReadCloser
	exceeded *atomic.Bool
}

// Read reads from the limited body, noting when the limit is hit.
func (b *limitedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		b.exceeded.Store(true)
	}
	return n, err
}

// limitWriter replaces the response with a 413 once the body was too large.
type limitWriter struct {
	http.ResponseWriter
	limit    int64
	rest     bool
	exceeded atomic.Bool
	replaced bool
}

// replace writes the 413 instead of the handler's response, once.
func (w *limitWriter) replace() {
	if !w.replaced {
		w.replaced = true
		writeTooLarge(w.ResponseWriter, w.limit, w.rest)
	}
}

// WriteHeader passes code on, or answers 413 once the body was too large.
func (w *limitWriter) WriteHeader(code int) {
	if w.exceeded.Load() {
		w.replace()
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

// Write passes b on, or drops it after answering 413 once the body was too
// large.
func (w *limitWriter) Write(b []byte) (int, error) {
	if w.exceeded.Load() {
		w.replace()
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

// Flush lets streaming transports flush through the writer.
func (w *limitWriter) Flush() { _ = http.NewResponseController(w.ResponseWriter).Flush() }

// Unwrap lets http.ResponseController reach the connection.
func (w *limitWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// authenticate attaches the caller's principal to the context when the
// request carries a valid bearer token. A refused or malformed credential
// does not stop the request: it is recorded with NewContextWithAuthError,
// so that login and refreshSession still work with a stale token attached
// while anything that reads the user reports the error. No Authorization
// header means an anonymous request.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		header := r.Header.Get("Authorization")
		if header == "" {
			next.ServeHTTP(w, r)
			return
		}
		ctx := r.Context()
		token, ok := wire.BearerToken(header)
		if !ok {
			ctx = obsqra.NewContextWithAuthError(ctx, obsqra.Errorf(obsqra.EUNAUTHENTICATED,
				"the Authorization header must be Bearer followed by an access token"))
		} else if p, err := s.principalFor(ctx, token); err != nil {
			ctx = obsqra.NewContextWithAuthError(ctx, err)
		} else {
			ctx = obsqra.NewContextWithPrincipal(ctx, p)
		}
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// principalFor authenticates an access token, over HTTP or a WebSocket,
// within RequestTimeout (it reads the token's session). An authenticator
// that returns neither a principal nor an error is an internal error.
func (s *Server) principalFor(ctx context.Context, token string) (*obsqra.Principal, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	p, err := s.auth.Authenticate(ctx, token)
	if err == nil && (p == nil || p.User == nil) {
		return nil, errors.New("authenticator returned no principal and no error")
	}
	return p, err
}
