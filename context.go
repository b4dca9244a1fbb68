package obsqra

import (
	"context"
	"sync"
	"time"
)

type contextKey int

const (
	userContextKey contextKey = iota + 1
	authErrorContextKey
	clientContextKey
	streamEndContextKey
)

// Principal is who a request acts for: the authenticated user and the
// session (refresh-token family) their access token belongs to.
type Principal struct {
	User      *User
	SessionID string
	// ExpiresAt is when the credentials stop being valid (the access
	// token's expiry or its session's, whichever comes first): a
	// long-lived connection, such as a WebSocket, must end then.
	ExpiresAt time.Time
}

// NewContextWithPrincipal returns a copy of ctx that carries p.
func NewContextWithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, userContextKey, p)
}

// PrincipalFromContext returns the principal of ctx, or nil when the request
// is anonymous.
func PrincipalFromContext(ctx context.Context) *Principal {
	p, _ := ctx.Value(userContextKey).(*Principal)
	return p
}

// UserFromContext returns the signed-in user of ctx, or nil when anonymous.
func UserFromContext(ctx context.Context) *User {
	if p := PrincipalFromContext(ctx); p != nil {
		return p.User
	}
	return nil
}

// UserIDFromContext returns the signed-in user's id, or 0 when anonymous.
func UserIDFromContext(ctx context.Context) int64 {
	if u := UserFromContext(ctx); u != nil {
		return u.ID
	}
	return 0
}

// NewContextWithAuthError returns a copy of ctx recording that the request
// presented credentials that were refused (an invalid or expired access
// token). Operations that need no user (login, refreshSession) proceed;
// everything that would read the user reports err, so the client knows to
// refresh instead of silently being treated as anonymous.
func NewContextWithAuthError(ctx context.Context, err error) context.Context {
	return context.WithValue(ctx, authErrorContextKey, err)
}

// AuthErrorFromContext returns the error recorded by NewContextWithAuthError,
// or nil.
func AuthErrorFromContext(ctx context.Context) error {
	err, _ := ctx.Value(authErrorContextKey).(error)
	return err
}

// Client describes where a request comes from; rate limits key on it.
type Client struct {
	// Address is the client's IP address, without the port.
	Address string
	// RequestID identifies the request in logs and error responses.
	RequestID string
}

// NewContextWithClient returns a copy of ctx that carries c.
func NewContextWithClient(ctx context.Context, c *Client) context.Context {
	return context.WithValue(ctx, clientContextKey, c)
}

// ClientFromContext returns the client of ctx; never nil.
func ClientFromContext(ctx context.Context) *Client {
	if c, ok := ctx.Value(clientContextKey).(*Client); ok && c != nil {
		return c
	}
	return &Client{}
}

// RequireUser returns the signed-in principal of ctx. Errors: the refusal
// of credentials that were presented but invalid; EUNAUTHENTICATED when the
// request is anonymous.
func RequireUser(ctx context.Context) (*Principal, error) {
	if err := AuthErrorFromContext(ctx); err != nil {
		return nil, err
	}
	p := PrincipalFromContext(ctx)
	if p == nil || p.User == nil {
		return nil, Errorf(EUNAUTHENTICATED, "sign in first")
	}
	return p, nil
}

// RequireAdmin returns the signed-in principal of ctx when it is an admin;
// what names the operation for the refusal, e.g. "change risk parameters".
// Errors: as RequireUser; EFORBIDDEN for a user who is not an admin.
func RequireAdmin(ctx context.Context, what string) (*Principal, error) {
	p, err := RequireUser(ctx)
	if err != nil {
		return nil, err
	}
	if !p.User.IsAdmin() {
		return nil, Errorf(EFORBIDDEN, "only admins may %s", what)
	}
	return p, nil
}

// StreamEnd records why a subscription's stream of events ended before its
// client stopped it (a subscriber too slow for its buffer, say): the
// transport sends that error as the operation's last message instead of a
// plain completion.
type StreamEnd struct {
	mu  sync.Mutex
	err error
}

// NewContextWithStreamEnd returns a copy of ctx in which a subscription can
// report why its stream ended (EndStream), and the record the transport
// reads when the stream is over.
func NewContextWithStreamEnd(ctx context.Context) (context.Context, *StreamEnd) {
	e := new(StreamEnd)
	return context.WithValue(ctx, streamEndContextKey, e), e
}

// EndStream records err as why the subscription of ctx ended; the first
// error recorded wins. Without a StreamEnd in ctx it does nothing.
func EndStream(ctx context.Context, err error) {
	if e, ok := ctx.Value(streamEndContextKey).(*StreamEnd); ok && err != nil {
		e.mu.Lock()
		defer e.mu.Unlock()
		if e.err == nil {
			e.err = err
		}
	}
}

// Err returns the error recorded by EndStream, or nil.
func (e *StreamEnd) Err() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.err
}
