package obsqra

import (
	"context"
	"net/netip"
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
	// Address is the client's IP address, without the port or an IPv6
	// zone, IPv4-mapped IPv6 addresses written as IPv4: the TCP peer's, or,
	// when the peer is a trusted proxy (TRUSTED_PROXIES), the one its
	// forwarding headers name. Empty for a call from inside the server.
	Address string
	// Scheme is "https" or "http": how the client reached the server, or,
	// behind a trusted proxy, the proxy (X-Forwarded-Proto, or proto= in
	// Forwarded). Empty for a call from inside the server.
	Scheme string
	// RequestID identifies the request in logs and error responses.
	RequestID string
}

// LimitKey is what per-address limits (sign-in and registration throttles,
// sockets, subscriptions and memory per address) count the client under:
// its IPv4 address, or the /64 network of its IPv6 address. One IPv6
// host is routinely given a whole /64 and may pick any address in it, so
// limits per IPv6 address could be escaped by changing address; a /64 is
// what one subscriber holds. Address itself when it is not an IP address
// (empty for a call from inside the server).
func (c *Client) LimitKey() string {
	a, err := netip.ParseAddr(c.Address)
	if err != nil {
		return c.Address
	}
	a = a.Unmap()
	if a.Is4() {
		return a.String()
	}
	p, _ := a.WithZone("").Prefix(64) // cannot fail for an IPv6 address
	return p.String()
}

// Sleep waits d, or until ctx ends and then returns its error: the one
// context-aware wait of the services' retries and slowdowns (their clocks
// inject another in tests).
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
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

// Viewer returns the signed-in user of ctx, or nil for an anonymous
// request: what an operation open to everyone reads to tailor its answer.
// Errors: the refusal of credentials that were presented but invalid, so a
// client with an expired token is told to refresh it rather than served
// as a stranger.
func Viewer(ctx context.Context) (*User, error) {
	if err := AuthErrorFromContext(ctx); err != nil {
		return nil, err
	}
	return UserFromContext(ctx), nil
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

// StreamState is what a subscription tells the transport that runs it: why
// its stream ended before its client stopped it (a subscriber too slow for
// its buffer, say), sent as the operation's last message instead of a plain
// completion; and whether the stream may be shared.
type StreamState struct {
	mu        sync.Mutex
	err       error
	shareable bool
	public    bool
	backlog   func() bool
}

// NewContextWithStream returns a copy of ctx in which a subscription can
// report on its stream (EndStream, ShareStream), and the state the
// transport reads.
func NewContextWithStream(ctx context.Context) (context.Context, *StreamState) {
	st := new(StreamState)
	return context.WithValue(ctx, streamEndContextKey, st), st
}

// EndStream records err as why the subscription of ctx ended; the first
// error recorded wins. Without a StreamState in ctx it does nothing.
func EndStream(ctx context.Context, err error) {
	if st, ok := ctx.Value(streamEndContextKey).(*StreamState); ok && err != nil {
		st.mu.Lock()
		defer st.mu.Unlock()
		if st.err == nil {
			st.err = err
		}
	}
}

// ShareStream declares that the subscription of ctx streams only events
// from now on, the same for every subscriber with the same operation,
// variables and viewer: a transport may run it once and send its events to
// all of them, including subscribers that join later. A subscription that
// replays history or sends a snapshot first must not call it.
func ShareStream(ctx context.Context) {
	if st, ok := ctx.Value(streamEndContextKey).(*StreamState); ok {
		st.mu.Lock()
		defer st.mu.Unlock()
		st.shareable = true
	}
}

// SharePublicStream is ShareStream for a subscription whose events are the
// same for every viewer (market data): subscribers share it whoever they
// are, signed in or not.
func SharePublicStream(ctx context.Context) {
	if st, ok := ctx.Value(streamEndContextKey).(*StreamState); ok {
		st.mu.Lock()
		defer st.mu.Unlock()
		st.shareable, st.public = true, true
	}
}

// SetStreamBacklog gives the transport of the subscription of ctx a way to
// ask whether more events are ready to follow at once (a commit of
// several): it then sends them together. backlog must be quick, safe for
// concurrent use, and may report false when in doubt, never true unless
// the subscription's channel will yield a value or close without waiting.
func SetStreamBacklog(ctx context.Context, backlog func() bool) {
	if st, ok := ctx.Value(streamEndContextKey).(*StreamState); ok {
		st.mu.Lock()
		defer st.mu.Unlock()
		st.backlog = backlog
	}
}

// Backlog reports whether the subscription said more events are ready
// (SetStreamBacklog); false when it said nothing.
func (st *StreamState) Backlog() bool {
	st.mu.Lock()
	f := st.backlog
	st.mu.Unlock()
	return f != nil && f()
}

// Public reports whether SharePublicStream was called.
func (st *StreamState) Public() bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.public
}

// Err returns the error recorded by EndStream, or nil.
func (st *StreamState) Err() error {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.err
}

// Shareable reports whether ShareStream was called.
func (st *StreamState) Shareable() bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.shareable
}
