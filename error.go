// Package obsqra holds the domain of the Obsqra backend: plain types, enums,
// error codes and the user-in-context helpers. It imports the standard
// library only; every other package of the project builds on it.
package obsqra

import (
	"errors"
	"fmt"
)

// Error codes. Each maps to one public name (PublicCode), GraphQL's
// extensions.code and the REST API's code; anything that is not an *Error
// is EINTERNAL.
const (
	EINVALID         = "invalid"
	ENOTFOUND        = "not_found"
	ECONFLICT        = "conflict"
	EUNAUTHENTICATED = "unauthenticated"
	EFORBIDDEN       = "forbidden"
	ERATELIMIT       = "rate_limited"
	// EUNAVAILABLE: a dependency (the database) did not answer in time or
	// refused the connection. Trying again later may succeed; what the
	// request wrote is either absent or, if it committed, complete.
	EUNAVAILABLE = "unavailable"
	EINTERNAL    = "internal"
)

// publicCodes are the names clients see of the codes they may see.
var publicCodes = map[string]string{
	EUNAUTHENTICATED: "UNAUTHENTICATED",
	EFORBIDDEN:       "FORBIDDEN",
	EINVALID:         "BAD_USER_INPUT",
	ENOTFOUND:        "NOT_FOUND",
	ECONFLICT:        "CONFLICT",
	ERATELIMIT:       "RATE_LIMITED",
	EUNAVAILABLE:     "SERVICE_UNAVAILABLE",
}

// PublicCode is the name clients see of code, as GraphQL's
// extensions.code and the REST API's code: "" for a code whose error they
// never see as such (EINTERNAL, or none of the E* constants).
func PublicCode(code string) string { return publicCodes[code] }

// Error is an error whose message may be shown to the client. Code is one of
// the E* constants. Any other error is internal and its text never leaves
// the server.
type Error struct {
	Code    string
	Message string
	// RetryAfterSeconds, when positive, tells a rate-limited client, or one
	// refused for an unavailable dependency, how long to wait before trying
	// again.
	RetryAfterSeconds int
	// Reason, when set, is a machine-readable refinement of Code that
	// clients may branch on (extensions.reason), such as
	// ReasonEmailNotVerified.
	Reason string
	// Err is the cause, for the log; the client never sees it. Unwrap
	// returns it, so errors.Is finds, say, context.DeadlineExceeded.
	Err error
}

// Unwrap returns the cause of e, or nil.
func (e *Error) Unwrap() error { return e.Err }

// Error implements the error interface.
func (e *Error) Error() string {
	return fmt.Sprintf("obsqra error: code=%s message=%s", e.Code, e.Message)
}

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code string, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, "" for a nil
// error and EINTERNAL for any other error.
func ErrorCode(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the client-facing message of the first *Error in
// err's chain, or "internal error" for any other error.
func ErrorMessage(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}

// ReasonEmailNotVerified is the Reason of refusing to sign in a user whose
// email address must be verified first.
const ReasonEmailNotVerified = "EMAIL_NOT_VERIFIED"
