package ws

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"

	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/server/wire"
)

// authenticate turns token into a principal; a panic of the authenticator
// is an internal error.
func (c *conn) authenticate(token string) (p *obsqra.Principal, err error) {
	return c.authenticateCtx(c.ctx, token)
}

func (c *conn) authenticateCtx(ctx context.Context, token string) (p *obsqra.Principal, err error) {
	return c.t.authenticate(ctx, token, c.requestID())
}

// authenticate checks token with the configured authenticator, whose panic
// is an error (logged with requestID, that of the connection or stream
// asking).
func (t *Transport) authenticate(ctx context.Context, token, requestID string) (p *obsqra.Principal, err error) {
	defer func() {
		if v := recover(); v != nil {
			t.log.ErrorContext(ctx, "panic authenticating a long-lived connection", "request_id", requestID,
				"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			p, err = nil, errors.New("authenticator panicked")
		}
	}()
	return t.cfg.Authenticate(ctx, token)
}

// authorize returns ctx with the connection's principal as it is now: a
// signed-in connection's token is checked again, so an operation runs for
// the user, role and session as they are, not as they were at
// connection_init. A token refused now (its session ended, its user
// deactivated) closes the connection with 4403; ok is then false, and so
// it is when the check could not be made (the operation has been answered
// with the error) or ctx ended meanwhile.
func (c *conn) authorize(ctx context.Context, op *operation) (_ context.Context, ok bool) {
	if c.token == "" {
		return ctx, true
	}
	p, err := c.authenticateCtx(ctx, c.token)
	switch {
	case ctx.Err() != nil:
		return ctx, false
	case err != nil && refusal(err):
		c.refuse(err)
		return ctx, false
	case err != nil:
		c.finishOperation(op, "error", c.marshalErrors(gqlerror.List{c.t.cfg.PresentError(ctx, err)}))
		return ctx, false
	}
	c.principal.Store(p)
	return obsqra.NewContextWithPrincipal(ctx, p), true
}

// recheck checks the connection's token again after a change of its
// user's account: a refused token closes it with 4403 and the reason; an
// accepted one updates the principal (a new role applies to the next
// operation). It reports false when the check could not be made (the
// database did not answer), so that it is tried again.
//
// checked holds the answers for tokens already checked in this pass, so
// that the sockets of one session cost one check.
func (c *conn) recheck(ctx context.Context, checked map[string]authAnswer) bool {
	if !c.acked.Load() || c.token == "" {
		return true
	}
	ans, ok := checked[c.token]
	if !ok {
		ans.p, ans.err = c.authenticateCtx(ctx, c.token)
		checked[c.token] = ans
	}
	p, err := ans.p, ans.err
	switch {
	case c.ctx.Err() != nil:
		return true // closed meanwhile
	case err != nil && refusal(err):
		c.refuse(err)
	case err != nil:
		c.t.log.WarnContext(c.ctx, "websocket recheck failed", "request_id", c.requestID(), "error", err.Error())
		return false
	default:
		c.principal.Store(p)
	}
	return true
}

// authAnswer is what checking a token answered.
type authAnswer struct {
	p   *obsqra.Principal
	err error
}

// refuse closes the connection whose credentials were refused with 4403 and
// the error's message; an internal error is logged and closes it with 4500.
// A check cancelled because the connection closed meanwhile (the server is
// shutting down) refuses nothing and is no error.
func (c *conn) refuse(err error) {
	if wire.Cancelled(c.ctx, err) {
		return
	}
	switch {
	case refusal(err):
		c.fail(closeForbidden, "Forbidden: "+obsqra.ErrorMessage(err))
	case obsqra.ErrorCode(err) == obsqra.EUNAVAILABLE:
		// The token could not be checked, not refused: the client tries
		// again later (1013), as after a slow consumer.
		c.t.log.WarnContext(c.ctx, "websocket authentication unavailable", "request_id", c.requestID(), "error", err.Error())
		c.fail(closeTryAgainLater, reasonUnavailable)
	default:
		c.t.log.ErrorContext(c.ctx, "websocket authentication failed", "request_id", c.requestID(), "error", err.Error())
		c.fail(closeInternalError, reasonInternal)
	}
}

// refusal reports whether err refuses the credentials (the token is bad,
// its session ended, its user is deactivated), as opposed to a check that
// could not be made (the database did not answer, an internal error).
func refusal(err error) bool {
	switch obsqra.ErrorCode(err) {
	case obsqra.EUNAUTHENTICATED, obsqra.EFORBIDDEN:
		return true
	}
	return false
}
