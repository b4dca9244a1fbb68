// Package rest serves the REST API of the product this server replaces,
// under /api/v1, for the clients that still call it: the same paths,
// methods, parameters, field names, statuses and error bodies, answered by
// the same domain services as the GraphQL API. A route is a thin mapping,
// like a resolver: it reads its parameters, calls a service and writes the
// original's shape. Every rule stays in its service.
//
// Each route is declared once, in the table of routes.go: its parameters
// and body fields (which parse and validate the request, in the original's
// 422 shape), its cost in the server's budgets, and the Go type of its
// answer. The OpenAPI document at /api/v1/openapi.json is generated from
// that table, so it cannot drift from what the routes do.
package rest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/account"
	"github.com/obsqra/obsqra/advisor"
	"github.com/obsqra/obsqra/ledger"
	"github.com/obsqra/obsqra/market"
	"github.com/obsqra/obsqra/portfolio"
)

// Prefix is where the API is served; /health stays at the root.
const Prefix = "/api/v1"

// DefaultTimeout bounds a request's work when API.Timeout is zero: the
// GraphQL API's request timeout.
const DefaultTimeout = 10 * time.Second

// Budget charges a request's cost to its caller's budget: the server's cost
// budgets, shared with the GraphQL API (server.Server implements it). It
// sets the rate-limit headers on h and returns an ERATELIMIT error (with
// RetryAfterSeconds) when the budget is spent.
type Budget interface {
	ChargeRequest(ctx context.Context, cost int64, h http.Header) error
}

// API is the REST API over the domain services. Set its fields before the
// first request; Handler builds the routes once.
type API struct {
	Accounts  *account.Service
	Market    *market.Service
	Advisor   *advisor.Service
	Portfolio *portfolio.Service
	Ledger    *ledger.Service
	// Budget charges each request's cost; nil charges nothing.
	Budget Budget
	// Log receives internal errors (default: discard).
	Log *slog.Logger
	// Timeout bounds each request's work (default DefaultTimeout): a
	// service that does not answer within it fails the request with 503.
	Timeout time.Duration
	// Version is the API version in the OpenAPI document.
	Version string
	// Now is the clock of the windows of days (default time.Now).
	Now func() time.Time

	once    sync.Once
	table   []*route
	openAPI []byte
}

// ServeHTTP answers every request under Prefix.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.once.Do(a.build)
	path := r.URL.Path
	if path == Prefix+"/openapi.json" {
		a.serveOpenAPI(w, r)
		return
	}
	rt, pathValue, allowed := a.match(r.Method, path)
	if rt == nil && !allowed {
		// Starlette's redirect_slashes: the same path with the trailing
		// slash toggled, when that one exists, keeping the query.
		other := strings.TrimSuffix(path, "/")
		if other == path {
			other = path + "/"
		}
		if r2, _, ok := a.match(r.Method, other); r2 != nil || ok {
			u := *r.URL
			u.Path = other
			// No body, as Starlette's RedirectResponse.
			w.Header().Set("Location", u.RequestURI())
			w.WriteHeader(http.StatusTemporaryRedirect)
			return
		}
	}
	switch {
	case rt == nil && allowed:
		writeDetail(w, http.StatusMethodNotAllowed, "Method Not Allowed", "")
	case rt == nil:
		writeDetail(w, http.StatusNotFound, "Not Found", "")
	default:
		a.serve(w, r, rt, pathValue)
	}
}

// match returns the route of method and path with the value of its path
// parameter, or nil and whether the path exists under another method.
func (a *API) match(method, path string) (rt *route, pathValue string, otherMethod bool) {
	rest, ok := strings.CutPrefix(path, Prefix)
	if !ok {
		return nil, "", false
	}
	if method == http.MethodHead {
		method = http.MethodGet
	}
	segs := strings.Split(rest, "/") // once, for every route
	for _, c := range a.table {
		v, ok := c.matchPath(segs)
		if !ok {
			continue
		}
		if c.method == method {
			return c, v, false
		}
		otherMethod = true
	}
	return nil, "", otherMethod
}

// call is one request to a route, once its inputs are parsed.
type call struct {
	ctx  context.Context
	r    *http.Request
	user *obsqra.User
	in   inputs
	path string
}

// serve runs route rt: authenticate, charge, validate, run, answer.
func (a *API) serve(w http.ResponseWriter, r *http.Request, rt *route, pathValue string) {
	ctx, cancel := context.WithTimeout(r.Context(), a.timeout())
	defer cancel()
	c := &call{ctx: ctx, r: r, path: pathValue}

	var problems []problem
	token, tokenGiven := "", false
	if rt.auth {
		// The original read ?token= only; its clients sent a bearer
		// header. The query wins when both are there.
		if q := r.URL.Query(); q.Has("token") {
			token, tokenGiven = q.Get("token"), true
		} else if h := r.Header.Get("Authorization"); h != "" {
			scheme, cred, _ := strings.Cut(h, " ")
			token, tokenGiven = strings.TrimSpace(cred), true
			if !strings.EqualFold(scheme, "Bearer") {
				token = ""
			}
		}
		if !tokenGiven {
			problems = append(problems, problem{Type: "missing", Loc: []any{"query", "token"}, Msg: "Field required", Input: nil})
		}
	}
	var authErr error
	if tokenGiven {
		p, err := a.authenticate(ctx, token)
		if err != nil {
			authErr = err
		} else {
			c.user = p.User
			ctx = obsqra.NewContextWithPrincipal(ctx, p)
			c.ctx = ctx
		}
	}
	// The cost is charged before anything else runs, to the user's budget
	// or, anonymous or refused, to the client address's.
	if a.Budget != nil {
		if err := a.Budget.ChargeRequest(ctx, rt.cost, w.Header()); err != nil {
			a.writeError(w, r, err)
			return
		}
	}
	if authErr != nil && obsqra.ErrorCode(authErr) != obsqra.EUNAUTHENTICATED {
		a.writeError(w, r, authErr)
		return
	}
	// FastAPI's order: a missing token is reported with the other
	// problems of the request; a refused one answers 401 before them.
	if authErr != nil {
		writeDetail(w, http.StatusUnauthorized, "Unauthorized", obsqra.PublicCode(obsqra.EUNAUTHENTICATED))
		return
	}
	in, more := rt.parse(r)
	if rt.pathParam != nil {
		v, p := rt.pathParam.coerce(pathValue, []any{"path", rt.pathParam.name})
		if p != nil {
			problems = append(problems, *p)
		} else {
			in[rt.pathParam.name] = v
		}
	}
	problems = append(problems, more...)
	if len(problems) > 0 {
		writeProblems(w, problems)
		return
	}
	c.in = in
	out, err := rt.serve(a, c)
	if err != nil {
		if obsqra.ErrorCode(err) == obsqra.EINVALID {
			// Always the validation shape, naming the field when the
			// service's words say which.
			p, ok := rt.fields.problem(err)
			if !ok {
				p = problem{Type: "value_error", Loc: []any{"body"}, Msg: "Value error, " + obsqra.ErrorMessage(err)}
				if rt.body == nil {
					p.Loc = []any{"query"}
				}
			}
			writeProblems(w, []problem{p})
			return
		}
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *API) timeout() time.Duration {
	if a.Timeout > 0 {
		return a.Timeout
	}
	return DefaultTimeout
}

func (a *API) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

func (a *API) log() *slog.Logger {
	if a.Log != nil {
		return a.Log
	}
	return slog.New(slog.DiscardHandler)
}

// authenticate checks an access token by the account service's rules,
// which the GraphQL API's bearer tokens follow too.
func (a *API) authenticate(ctx context.Context, token string) (*obsqra.Principal, error) {
	if token == "" {
		return nil, obsqra.Errorf(obsqra.EUNAUTHENTICATED, "no access token")
	}
	p, err := a.Accounts.Authenticate(ctx, token)
	if err == nil && (p == nil || p.User == nil) {
		return nil, errors.New("rest: authenticator returned no principal and no error")
	}
	return p, err
}

// statuses are the HTTP statuses of the domain error codes clients see.
var statuses = map[string]int{
	obsqra.EINVALID:         http.StatusUnprocessableEntity,
	obsqra.EUNAUTHENTICATED: http.StatusUnauthorized,
	obsqra.EFORBIDDEN:       http.StatusForbidden,
	obsqra.ENOTFOUND:        http.StatusNotFound,
	// The original answered its one conflict (a taken email or wallet)
	// with 400.
	obsqra.ECONFLICT:    http.StatusBadRequest,
	obsqra.ERATELIMIT:   http.StatusTooManyRequests,
	obsqra.EUNAVAILABLE: http.StatusServiceUnavailable,
}

// errorBody is every error but a validation error: the original's detail
// and the GraphQL API's code; an internal error adds the request id.
type errorBody struct {
	Detail    string `json:"detail"`
	Code      string `json:"code,omitempty"`
	RequestID string `json:"request_id,omitempty"`
}

// writeError answers err: a domain error with its status, code and
// message; a deadline or cancellation as 503 (a stuck dependency) or not at
// all (the client left); anything else as a 500 that says nothing of the
// cause, which is logged.
func (a *API) writeError(w http.ResponseWriter, r *http.Request, err error) {
	ctx := r.Context()
	var e *obsqra.Error
	if errors.As(err, &e) {
		if status, ok := statuses[e.Code]; ok {
			if e.RetryAfterSeconds > 0 && (e.Code == obsqra.ERATELIMIT || e.Code == obsqra.EUNAVAILABLE) {
				w.Header().Set("Retry-After", strconv.Itoa(e.RetryAfterSeconds))
			}
			if e.Code == obsqra.EUNAVAILABLE && e.Err != nil {
				a.log().WarnContext(ctx, "rest: service unavailable", "request_id", obsqra.ClientFromContext(ctx).RequestID,
					"path", r.URL.Path, "error", e.Err.Error())
			}
			writeJSON(w, status, errorBody{Detail: e.Message, Code: obsqra.PublicCode(e.Code)})
			return
		}
	}
	id := obsqra.ClientFromContext(ctx).RequestID
	switch {
	case ctx.Err() != nil:
		// The client went away: nothing to answer, nothing to report.
		a.log().DebugContext(ctx, "rest: request cancelled", "request_id", id, "path", r.URL.Path)
		w.WriteHeader(499)
		return
	case errors.Is(err, context.DeadlineExceeded):
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, errorBody{
			Detail: fmt.Sprintf("the request did not finish within %s; try again", a.timeout()), Code: obsqra.PublicCode(obsqra.EUNAVAILABLE)})
		return
	}
	a.log().ErrorContext(ctx, "rest: internal error", "request_id", id, "path", r.URL.Path, "error", err.Error())
	writeJSON(w, http.StatusInternalServerError, errorBody{Detail: "Internal Server Error", Code: "INTERNAL_SERVER_ERROR", RequestID: id})
}

// writeDetail answers {"detail": detail} (and code, when set).
func writeDetail(w http.ResponseWriter, status int, detail, code string) {
	writeJSON(w, status, errorBody{Detail: detail, Code: code})
}

// writeJSON answers v as JSON with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		body = []byte(`{"detail":"Internal Server Error","code":"INTERNAL_SERVER_ERROR"}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// number is a JSON number written as Python's json module writes a float:
// always with a fraction or an exponent (25.0, 1e-05), as the original's
// numeric columns came out.
type number float64

// MarshalJSON writes n as Python's repr(float) does.
func (n number) MarshalJSON() ([]byte, error) {
	f := float64(n)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return []byte("null"), nil
	}
	abs := math.Abs(f)
	if abs != 0 && (abs < 1e-4 || abs >= 1e16) {
		s := strconv.FormatFloat(f, 'e', -1, 64)
		// Go writes 1e-05 and 1e+16 as Python does.
		return []byte(s), nil
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.ContainsAny(s, ".") {
		s += ".0"
	}
	return []byte(s), nil
}

// bpsPercent is a quantity in basis points as the original's percentage.
func bpsPercent(bps float64) number { return number(bps / 100) }

// datetime is a time written as the original wrote it: naive UTC from
// Python's isoformat(), microseconds only when there are some.
type datetime time.Time

// datetimePattern is datetime's form in the OpenAPI document.
const datetimePattern = `^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{6})?$`

// MarshalJSON writes t as "2025-12-08T14:05:33.671208".
func (t datetime) MarshalJSON() ([]byte, error) {
	u := time.Time(t).UTC().Truncate(time.Microsecond)
	layout := `"2006-01-02T15:04:05"`
	if u.Nanosecond() != 0 {
		layout = `"2006-01-02T15:04:05.000000"`
	}
	return []byte(u.Format(layout)), nil
}
