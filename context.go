package obsqra

import (
	"context"
	"net/netip"
	"time"
)

type contextKey int

const (
	userContextKey contextKey = iota + 1
	authErrorContextKey
	clientContextKey
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

// NewContextWithAuthError returns a copy of ctx recording that the request
// presented credentials that were refused (an invalid or expired access
// token). Operations that need no user (login, refreshSession) proceed;
// everything that would read the user reports err, so the client knows to
// refresh instead of silently being treated as anonymous.
func NewContextWithAuthError(ctx context.Context, err error) context.Context {
	return context.WithValue(ctx, authErrorContextKey, err)
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
	// TraceID is the W3C trace id (32 hex digits) of the request's trace
	// when the server traces it, "" otherwise: internal errors and error
	// reports quote it beside RequestID.
	TraceID string
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

// Viewer returns the signed-in user of ctx, or nil (and no error) for an
// anonymous request: what an operation open to everyone reads to tailor
// its answer. Viewer and RequireUser are the two ways to read who a
// request acts for; neither ignores refused credentials.
// Errors: the refusal of credentials that were presented but invalid, so a
// client with an expired token is told to refresh it rather than served
// as a stranger.
func Viewer(ctx context.Context) (*User, error) {
	p, err := principal(ctx)
	if p == nil {
		return nil, err
	}
	return p.User, err
}

// principal returns the principal of ctx (nil when anonymous) or the
// refusal of the credentials the request presented.
func principal(ctx context.Context) (*Principal, error) {
	if err, _ := ctx.Value(authErrorContextKey).(error); err != nil {
		return nil, err
	}
	p, _ := ctx.Value(userContextKey).(*Principal)
	if p == nil || p.User == nil {
		return nil, nil
	}
	return p, nil
}

// RequireUser returns the signed-in principal of ctx. Errors: the refusal
// of credentials that were presented but invalid; EUNAUTHENTICATED when the
// request is anonymous.
func RequireUser(ctx context.Context) (*Principal, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	if p == nil {
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
