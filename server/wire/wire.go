// Package wire holds what the server's two transports, server (HTTP) and
// server/ws (WebSocket), write by hand outside gqlgen, so that both write
// it the same way: a GraphQL response holding only errors, the internal
// error a client may see, a JSON answer, and the token of an
// "Authorization: Bearer" value. Standard library only.
package wire

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// CodeInternal is the extensions.code of an error a client may not read.
const CodeInternal = "INTERNAL_SERVER_ERROR"

// InternalMessage is all a client learns of an internal error.
const InternalMessage = "internal error"

// Error is a GraphQL error as the server writes it outside gqlgen, the
// shape gqlgen's presenter writes too.
type Error struct {
	Message    string         `json:"message"`
	Extensions map[string]any `json:"extensions,omitempty"`
}

// Body is a GraphQL response that holds only errors.
type Body struct {
	Errors []Error `json:"errors"`
}

// Response returns a GraphQL response body holding e.
func Response(e Error) Body { return Body{Errors: []Error{e}} }

// Internal is the error a client gets for a failure it may not read: the
// request id, and the trace id of a traced request ("" for none), are what
// it can quote to the operators.
func Internal(requestID, traceID string) Error {
	e := Error{
		Message:    InternalMessage,
		Extensions: map[string]any{"code": CodeInternal, "requestId": requestID},
	}
	if traceID != "" {
		e.Extensions["traceId"] = traceID
	}
	return e
}

// WriteJSON answers status with v as JSON, never cached.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	WriteJSONAs(w, status, "application/json", v)
}

// WriteJSONAs is WriteJSON with the Content-Type mediaType, a JSON media
// type such as application/graphql-response+json.
func WriteJSONAs(w http.ResponseWriter, status int, mediaType string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only the server's own fixed shapes are written here.
		panic(fmt.Sprintf("marshal %T: %v", v, err))
	}
	w.Header().Set("Content-Type", mediaType)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// BearerToken returns the token of an "Authorization: Bearer <token>"
// value (a request's header, or a WebSocket's connection_init payload);
// the scheme is case-insensitive, and a token holding blanks is refused.
func BearerToken(header string) (string, bool) {
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	if token == "" || strings.ContainsAny(token, " \t") {
		return "", false
	}
	return token, true
}

// Cancelled reports whether err is the cancellation of the operation whose
// context is ctx: the client went away, which is not an error to report.
func Cancelled(ctx context.Context, err error) bool {
	return errors.Is(err, context.Canceled) && errors.Is(ctx.Err(), context.Canceled)
}
