package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/graph"
	"github.com/obsqra/obsqra/server"
)

const loginMutation = `mutation { login(input: {email: "ada@example.com", password: "pw"}) { accessToken } }`

func TestErrorPresenterDomainCodes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err      error
		wantCode string
		wantMsg  string
		wantExt  map[string]any // more extensions that must be present
	}{
		{err: obsqra.Errorf(obsqra.EUNAUTHENTICATED, "wrong email or password"), wantCode: "UNAUTHENTICATED", wantMsg: "wrong email or password"},
		{err: obsqra.Errorf(obsqra.EFORBIDDEN, "admins only"), wantCode: "FORBIDDEN", wantMsg: "admins only"},
		{err: obsqra.Errorf(obsqra.EINVALID, "email is not an address"), wantCode: "BAD_USER_INPUT", wantMsg: "email is not an address"},
		{err: obsqra.Errorf(obsqra.ENOTFOUND, "no such user"), wantCode: "NOT_FOUND", wantMsg: "no such user"},
		{err: obsqra.Errorf(obsqra.ECONFLICT, "email already registered"), wantCode: "CONFLICT", wantMsg: "email already registered"},
		{err: obsqra.Errorf(obsqra.ERATELIMIT, "too many attempts"), wantCode: "RATE_LIMITED", wantMsg: "too many attempts"},
		{
			err:      &obsqra.Error{Code: obsqra.ERATELIMIT, Message: "slow down", RetryAfterSeconds: 30},
			wantCode: "RATE_LIMITED", wantMsg: "slow down", wantExt: map[string]any{"retryAfter": float64(30)},
		},
		{
			// Wrapped with %w on its way up, as services do.
			err:      fmt.Errorf("log in ada: %w", obsqra.Errorf(obsqra.EINVALID, "password too short")),
			wantCode: "BAD_USER_INPUT", wantMsg: "password too short",
		},
	}
	for _, tt := range tests {
		t.Run(tt.wantCode+" "+tt.wantMsg, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			b.resolver.login = func(context.Context, graph.LoginInput) (*obsqra.AuthPayload, error) { return nil, tt.err }

			rec, res := b.graphQL(t, loginMutation, nil)

			if rec.Code != http.StatusOK {
				t.Errorf("status = %d, want 200", rec.Code)
			}
			e := onlyError(t, res)
			if e.Message != tt.wantMsg || e.Extensions["code"] != tt.wantCode {
				t.Errorf("error = %q %v, want %q %s", e.Message, e.Extensions, tt.wantMsg, tt.wantCode)
			}
			if fmt.Sprint(e.Path) != "[login]" {
				t.Errorf("path = %v, want [login]", e.Path)
			}
			for k, v := range tt.wantExt {
				if e.Extensions[k] != v {
					t.Errorf("extensions.%s = %v, want %v", k, e.Extensions[k], v)
				}
			}
			if _, ok := e.Extensions["retryAfter"]; ok && tt.wantExt == nil {
				t.Errorf("extensions.retryAfter = %v, want none", e.Extensions["retryAfter"])
			}
			if _, ok := e.Extensions["requestId"]; ok {
				t.Errorf("a domain error carries requestId %v; only internal errors do", e.Extensions["requestId"])
			}
		})
	}
}

// TestErrorPresenterUnavailable: a database that did not answer is
// SERVICE_UNAVAILABLE with retryAfter, still HTTP 200 (the other fields of
// the response stand), and its cause reaches the log but not the client.
func TestErrorPresenterUnavailable(t *testing.T) {
	t.Parallel()
	b := setup(t)
	cause := fmt.Errorf("load user: %w (dial 10.0.0.7:5432: hunter2)", context.DeadlineExceeded)
	b.resolver.login = func(context.Context, graph.LoginInput) (*obsqra.AuthPayload, error) {
		return nil, fmt.Errorf("log in: %w", &obsqra.Error{Code: obsqra.EUNAVAILABLE, Message: "try again shortly", RetryAfterSeconds: 5, Err: cause})
	}

	rec, res := b.graphQL(t, loginMutation, nil)

	if rec.Code != http.StatusOK {
		t.Errorf("status = %d, want 200", rec.Code)
	}
	e := onlyError(t, res)
	if e.Message != "try again shortly" || e.Extensions["code"] != "SERVICE_UNAVAILABLE" || e.Extensions["retryAfter"] != float64(5) {
		t.Errorf("error = %q %v, want SERVICE_UNAVAILABLE with retryAfter 5", e.Message, e.Extensions)
	}
	if strings.Contains(rec.Body.String(), "hunter2") {
		t.Errorf("response leaks the cause: %s", rec.Body)
	}
	logged := b.logs.entries(t, "graphql: database unavailable")
	if len(logged) != 1 || !strings.Contains(fmt.Sprint(logged[0]["error"]), "hunter2") {
		t.Errorf("unavailable log = %v, want the cause", logged)
	}
}

func TestErrorPresenterInternal(t *testing.T) {
	t.Parallel()
	for _, err := range []error{
		fmt.Errorf("query users: pq: password authentication failed for user hunter2"),
		obsqra.Errorf(obsqra.EINTERNAL, "hunter2 leaked"),
	} {
		t.Run(err.Error(), func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			b.resolver.login = func(context.Context, graph.LoginInput) (*obsqra.AuthPayload, error) { return nil, err }

			rec, res := b.graphQL(t, loginMutation, nil)

			id := rec.Header().Get("X-Request-ID")
			e := onlyError(t, res)
			if e.Message != "internal error" || e.Extensions["code"] != "INTERNAL_SERVER_ERROR" || e.Extensions["requestId"] != id {
				t.Errorf("error = %q %v, want internal error with requestId %s", e.Message, e.Extensions, id)
			}
			if fmt.Sprint(e.Path) != "[login]" {
				t.Errorf("path = %v, want [login]", e.Path)
			}
			if strings.Contains(rec.Body.String(), "hunter2") {
				t.Errorf("response leaks the internal error: %s", rec.Body)
			}
			logged := b.logs.entries(t, "graphql internal error")
			if len(logged) != 1 || logged[0]["request_id"] != id || !strings.Contains(fmt.Sprint(logged[0]["error"]), "hunter2") {
				t.Errorf("internal error log = %v, want the real error with request id %s", logged, id)
			}
		})
	}
}

// TestErrorPresenterCancellation: an operation cancelled under its
// resolvers (the client went away) is no error, and is logged once at
// debug level however many fields it fails; context.Canceled while the
// request still runs, and a deadline, are internal errors as before.
func TestErrorPresenterCancellation(t *testing.T) {
	t.Parallel()
	// Two fields that fail: mutations run one after the other, the second
	// after the client has gone.
	const twoLogins = `mutation {
		a: login(input: {email: "ada@example.com", password: "pw"}) { accessToken }
		b: login(input: {email: "ada@example.com", password: "pw"}) { accessToken } }`
	tests := []struct {
		name string
		// login fails the field; cancel cancels the request's context.
		login                 func(ctx context.Context, cancel context.CancelFunc) error
		timeout               time.Duration // of the request's context, when set
		wantErrors, wantDebug int
	}{
		{
			name: "the client went away",
			login: func(ctx context.Context, cancel context.CancelFunc) error {
				cancel() // while the resolver reads the database
				<-ctx.Done()
				return fmt.Errorf("find user: %w", ctx.Err())
			},
			wantErrors: 0, wantDebug: 1,
		},
		{
			name: "context canceled while the request runs",
			login: func(context.Context, context.CancelFunc) error {
				return fmt.Errorf("find user: %w", context.Canceled)
			},
			wantErrors: 2,
		},
		{
			name: "a server-side timeout",
			login: func(context.Context, context.CancelFunc) error {
				return fmt.Errorf("find user: %w", context.DeadlineExceeded)
			},
			wantErrors: 2,
		},
		{
			name: "the request's deadline passed",
			login: func(ctx context.Context, _ context.CancelFunc) error {
				<-ctx.Done()
				return fmt.Errorf("find user: %w", ctx.Err())
			},
			// Long enough that the operation starts before it passes, even
			// on a loaded machine (a deadline that passes before the
			// operation runs is answered SERVICE_UNAVAILABLE by the
			// transport, without a resolver error to log); the resolver then
			// waits for it.
			timeout:    500 * time.Millisecond,
			wantErrors: 2,
		},
		{
			name: "the client went away during a deadline",
			login: func(ctx context.Context, cancel context.CancelFunc) error {
				cancel()
				return fmt.Errorf("find user: %w", context.DeadlineExceeded)
			},
			wantErrors: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.timeout > 0 {
				ctx, cancel = context.WithTimeout(ctx, tt.timeout)
				defer cancel()
			}
			b.resolver.login = func(ctx context.Context, _ graph.LoginInput) (*obsqra.AuthPayload, error) {
				return nil, tt.login(ctx, cancel)
			}
			body, _ := json.Marshal(map[string]any{"query": twoLogins})
			req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/graphql", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			b.serve(req)

			if got := b.logs.levels(t, "ERROR"); len(got) != tt.wantErrors {
				t.Errorf("ERROR lines = %v, want %d", got, tt.wantErrors)
			}
			if got := b.logs.entries(t, "graphql operation cancelled"); len(got) != tt.wantDebug {
				t.Errorf("cancellation lines = %v, want %d", got, tt.wantDebug)
			} else if len(got) == 1 && (got[0]["level"] != "DEBUG" || !strings.Contains(fmt.Sprint(got[0]["error"]), "context canceled")) {
				t.Errorf("cancellation line = %v, want DEBUG with the error", got[0])
			}
		})
	}
}

func TestResolverPanic(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.resolver.login = func(context.Context, graph.LoginInput) (*obsqra.AuthPayload, error) {
		panic("nil map in login, secret=hunter2")
	}

	rec, res := b.graphQL(t, loginMutation, nil)

	id := rec.Header().Get("X-Request-ID")
	e := onlyError(t, res)
	if e.Message != "internal error" || e.Extensions["code"] != "INTERNAL_SERVER_ERROR" || e.Extensions["requestId"] != id || len(e.Extensions) != 2 {
		t.Errorf("error = %q %v, want internal error with only code and requestId %s", e.Message, e.Extensions, id)
	}
	if strings.Contains(rec.Body.String(), "hunter2") {
		t.Errorf("response leaks the panic: %s", rec.Body)
	}
	logged := b.logs.entries(t, "panic in graphql resolver")
	if len(logged) != 1 || logged[0]["request_id"] != id ||
		!strings.Contains(fmt.Sprint(logged[0]["panic"]), "hunter2") || !strings.Contains(fmt.Sprint(logged[0]["stack"]), "server_test") {
		t.Errorf("panic log = %v, want the panic and its stack with request id %s", logged, id)
	}
	if n := len(b.logs.entries(t, "graphql internal error")); n != 0 {
		t.Errorf("the panic is logged again as an internal error (%d entries); log once", n)
	}

	// The server keeps serving.
	b.resolver.login = nil
	rec, res = b.graphQL(t, loginMutation, nil)
	noErrors(t, rec, res)
}

// TestErrorPresenterArgumentCoercion covers a scalar's or enum's
// UnmarshalGQL error: generated code passes it through graphql.ErrorOnPath,
// which wraps it in a *gqlerror.Error that has the field's path.
func TestErrorPresenterArgumentCoercion(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.resolver.login = func(ctx context.Context, _ graph.LoginInput) (*obsqra.AuthPayload, error) {
		var f obsqra.Felt
		return nil, graphql.ErrorOnPath(ctx, f.UnmarshalGQL("0xnot-hex"))
	}

	_, res := b.graphQL(t, loginMutation, nil)

	e := onlyError(t, res)
	if e.Extensions["code"] != "BAD_USER_INPUT" || !strings.HasPrefix(e.Message, `"0xnot-hex" is not a felt`) {
		t.Errorf("error = %q %v, want the felt's message as BAD_USER_INPUT", e.Message, e.Extensions)
	}
	if fmt.Sprint(e.Path) != "[login]" {
		t.Errorf("path = %v, want [login]", e.Path)
	}
}

func TestBadEnumArgument(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const inline = `mutation { updatePreferences(input: {riskTolerance: EXTREME}) { id } }`
	const withVariables = `mutation($rt: RiskTolerance) { updatePreferences(input: {riskTolerance: $rt}) { id } }`

	for _, tc := range []struct {
		query string
		vars  map[string]any
	}{{inline, nil}, {withVariables, map[string]any{"rt": "EXTREME"}}} {
		rec, res := b.graphQL(t, tc.query, tc.vars)
		e := onlyError(t, res)
		if rec.Code != http.StatusOK || e.Extensions["code"] != "GRAPHQL_VALIDATION_FAILED" || !strings.Contains(e.Message, "EXTREME") {
			t.Errorf("%s %v = %d %q %v, want 200 GRAPHQL_VALIDATION_FAILED naming EXTREME", tc.query, tc.vars, rec.Code, e.Message, e.Extensions)
		}
	}
}

func TestParseError(t *testing.T) {
	t.Parallel()
	b := setup(t)
	rec, res := b.graphQL(t, `{ me { id `, nil)
	e := onlyError(t, res)
	if rec.Code != http.StatusOK || e.Extensions["code"] != "GRAPHQL_PARSE_FAILED" {
		t.Errorf("unterminated query = %d %q %v, want 200 GRAPHQL_PARSE_FAILED", rec.Code, e.Message, e.Extensions)
	}
}

func TestGETQuery(t *testing.T) {
	t.Parallel()
	b := setup(t)
	req := httpGET("/graphql?query=" + queryEscape(`{ me { email } }`))
	req.Header.Set("Authorization", "Bearer "+goodToken)
	req.Header.Set("Apollo-Require-Preflight", "true") // see TestCSRFPrevention
	rec := b.serve(req)
	if res := decodeResult(t, rec); rec.Code != http.StatusOK || string(res.Data) != `{"me":{"email":"ada@example.com"}}` {
		t.Errorf("GET /graphql = %d %s, want ada's email", rec.Code, rec.Body)
	}

	req = httpGET("/graphql?query=" + queryEscape(loginMutation))
	req.Header.Set("Apollo-Require-Preflight", "true")
	rec = b.serve(req)
	if rec.Code == http.StatusOK {
		t.Errorf("a mutation over GET = %d %s, want it refused", rec.Code, rec.Body)
	}
}

// treeSchema is a recursive schema for depth tests (the real schema is not
// deep enough yet). It validates like any schema; executing answers a
// fixed response, which is all the limits need.
type treeSchema struct{ schema *ast.Schema }

func newTreeSchema() treeSchema {
	return treeSchema{gqlparser.MustLoadSchema(&ast.Source{Name: "tree.graphqls", Input: `
		type Query { tree: Tree }
		type Tree { child: Tree  leaf: Int }
	`})}
}

func (s treeSchema) Schema() *ast.Schema { return s.schema }

func (treeSchema) Complexity(context.Context, string, string, int, map[string]any) (int, bool) {
	return 0, false
}

func (treeSchema) Exec(context.Context) graphql.ResponseHandler {
	return graphql.OneShot(&graphql.Response{Data: json.RawMessage(`{"tree":null}`)})
}

// chain returns n nested fields: child { child { … { leaf } } }.
func chain(n int) string {
	if n <= 1 {
		return "leaf"
	}
	return "child { " + chain(n-1) + " }"
}

func TestDepthLimit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		query    string
		maxDepth int    // 0 keeps the default, 12
		want     string // the error, "" when the query must pass
	}{
		{name: "12 deep", query: "{ tree { " + chain(11) + " } }"},
		{name: "13 deep", query: "{ tree { " + chain(12) + " } }", want: "query depth 13 exceeds the limit of 12"},
		{
			name:  "12 deep through a fragment and an inline fragment",
			query: "{ tree { ...Deep } } fragment Deep on Tree { child { ... on Tree { " + chain(10) + " } } }",
		},
		{
			name:  "13 deep through a fragment and an inline fragment",
			query: "{ tree { ...Deep } } fragment Deep on Tree { child { ... on Tree { " + chain(11) + " } } }",
			want:  "query depth 13 exceeds the limit of 12",
		},
		{
			// Six is 7 deep at the top and 9 deep under two children.
			name:     "a fragment spread at two depths counts the deeper",
			query:    "{ tree { ...Six child { child { ...Six } } } } fragment Six on Tree { " + chain(6) + " }",
			maxDepth: 8,
			want:     "query depth 9 exceeds the limit of 8",
		},
		{
			// __typename under the 12th field would be the 13th.
			name:  "__typename does not count",
			query: "{ tree { " + strings.Repeat("child { ", 11) + "__typename" + strings.Repeat(" }", 11) + " } }",
		},
		{
			name:  "introspection does not count",
			query: `{ tree { leaf } __type(name: "Tree") { fields { type { ` + strings.Repeat("ofType { ", 11) + "name" + strings.Repeat(" }", 13) + " } }",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setupSchema(t, newTreeSchema(), nil, func(c *server.Config) { c.MaxDepth = tt.maxDepth })

			rec, res := b.graphQL(t, tt.query, nil)

			if tt.want == "" {
				noErrors(t, rec, res)
				return
			}
			e := onlyError(t, res)
			if rec.Code != http.StatusOK || e.Message != tt.want || e.Extensions["code"] != "GRAPHQL_VALIDATION_FAILED" {
				t.Errorf("response = %d %q %v, want 200 %q GRAPHQL_VALIDATION_FAILED", rec.Code, e.Message, e.Extensions, tt.want)
			}
			if len(res.Data) != 0 && string(res.Data) != "null" {
				t.Errorf("data = %s, want none: nothing may run", res.Data)
			}
		})
	}
}

func TestDepthLimitRealSchema(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *server.Config) { c.MaxDepth = 3 })

	rec, res := b.graphQL(t, `{ me { preferences { riskTolerance } } }`, nil)
	noErrors(t, rec, res)

	_, res = b.graphQL(t, `mutation { login(input: {email: "a", password: "b"}) { user { preferences { riskTolerance } } } }`, nil)
	if e := onlyError(t, res); e.Message != "query depth 4 exceeds the limit of 3" {
		t.Errorf("error = %q, want depth 4 refused", e.Message)
	}
}

func TestFragmentCycle(t *testing.T) {
	t.Parallel()
	b := setupSchema(t, newTreeSchema(), nil)
	rec, res := b.graphQL(t, `{ tree { ...A } } fragment A on Tree { child { ...B } } fragment B on Tree { child { ...A } }`, nil)
	if e := onlyError(t, res); rec.Code != http.StatusOK || e.Extensions["code"] != "GRAPHQL_VALIDATION_FAILED" {
		t.Errorf("fragment cycle = %d %q %v, want 200 GRAPHQL_VALIDATION_FAILED", rec.Code, e.Message, e.Extensions)
	}
}

// aliases returns n aliased me fields.
func aliases(n int) string {
	var sb strings.Builder
	for i := range n {
		fmt.Fprintf(&sb, "a%d: me { id } ", i)
	}
	return sb.String()
}

func TestAliasLimit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		query string
		ok    bool
	}{
		{name: "30 aliases", query: "{ " + aliases(30) + "}", ok: true},
		{name: "31 aliases", query: "{ " + aliases(31) + "}"},
		{name: "an alias equal to the name is no alias", query: "{ me: me { id } " + aliases(30) + "}", ok: true},
		{name: "nested aliases count", query: "{ " + aliases(29) + "x: me { y: id z: email } }"},
		{
			name:  "a fragment's aliases count once per spread",
			query: "{ ...Sixteen ... on Query { ...Sixteen } } fragment Sixteen on Query { " + aliases(16) + "}",
		},
		{
			name:  "fragments spread exponentially stay cheap to measure",
			query: exponentialFragments(40, "x: me { id }"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)

			rec, res := b.graphQL(t, tt.query, nil, "Authorization", "Bearer "+goodToken)

			if tt.ok {
				noErrors(t, rec, res)
				return
			}
			e := onlyError(t, res)
			if rec.Code != http.StatusOK || e.Message != "query has more than 30 aliased fields" || e.Extensions["code"] != "GRAPHQL_VALIDATION_FAILED" {
				t.Errorf("response = %d %q %v, want 200 too many aliases GRAPHQL_VALIDATION_FAILED", rec.Code, e.Message, e.Extensions)
			}
		})
	}
}

// exponentialFragments returns a query whose fragment F0 spreads F1 twice,
// F1 spreads F2 twice, and so on: n fragments, 2^n copies of leaf once
// expanded. Measuring it must not expand it.
func exponentialFragments(n int, leaf string) string {
	var sb strings.Builder
	sb.WriteString("{ ...F0 }")
	for i := range n {
		fmt.Fprintf(&sb, " fragment F%d on Query { ...F%d ... on Query { ...F%d } }", i, i+1, i+1)
	}
	fmt.Fprintf(&sb, " fragment F%d on Query { %s }", n, leaf)
	return sb.String()
}

// TestExpandedFieldLimit guards gqlgen's complexity walk, which expands
// every fragment spread: 2^60 steps would never end.
func TestExpandedFieldLimit(t *testing.T) {
	t.Parallel()
	b := setup(t)

	rec, res := b.graphQL(t, exponentialFragments(60, "me { id }"), nil)

	e := onlyError(t, res)
	if rec.Code != http.StatusOK || e.Message != "query has more than 50000 fields once its fragments are expanded" ||
		e.Extensions["code"] != "GRAPHQL_VALIDATION_FAILED" {
		t.Errorf("response = %d %q %v, want 200 too many fields GRAPHQL_VALIDATION_FAILED", rec.Code, e.Message, e.Extensions)
	}

	// 2^3 merged copies of me { id } are 16 fields, well within bounds.
	rec, res = b.graphQL(t, exponentialFragments(3, "me { id }"), nil)
	noErrors(t, rec, res)
}

func TestComplexityLimit(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *server.Config) { c.ComplexityLimit = 5 })

	rec, res := b.graphQL(t, `{ me { id email fullName role } }`, nil)
	noErrors(t, rec, res)

	_, res = b.graphQL(t, `{ me { id email fullName role active } }`, nil)
	if e := onlyError(t, res); e.Message != "operation has complexity 6, which exceeds the limit of 5" || e.Extensions["code"] != "COMPLEXITY_LIMIT_EXCEEDED" {
		t.Errorf("error = %q %v, want complexity 6 refused", e.Message, e.Extensions)
	}
}

func readTestdata(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestIntrospection(t *testing.T) {
	t.Parallel()
	for _, file := range []string{"introspection.graphql", "introspection_full.graphql"} {
		t.Run(file, func(t *testing.T) {
			t.Parallel()
			b := setup(t) // default limits

			rec, res := b.graphQL(t, readTestdata(t, file), nil)

			noErrors(t, rec, res)
			var data struct {
				Schema struct {
					QueryType struct{ Name string }
					Types     []struct{ Name string }
				} `json:"__schema"`
			}
			if err := json.Unmarshal(res.Data, &data); err != nil {
				t.Fatal(err)
			}
			found := false
			for _, typ := range data.Schema.Types {
				found = found || typ.Name == "RiskTolerance"
			}
			if data.Schema.QueryType.Name != "Query" || !found {
				t.Errorf("introspection = %.300s, want the schema with RiskTolerance", res.Data)
			}
		})
	}
}

func TestIntrospectionDisabled(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *server.Config) { c.Introspection = false })
	for _, query := range []string{
		readTestdata(t, "introspection.graphql"),
		`{ __schema { queryType { name } } }`,
		`{ __type(name: "User") { name } }`,
		`{ me { id } ... on Query { t: __type(name: "User") { name } } }`,
	} {
		rec, res := b.graphQL(t, query, nil)
		e := onlyError(t, res)
		if rec.Code != http.StatusOK || e.Message != "introspection is disabled on this server" || e.Extensions["code"] != "GRAPHQL_VALIDATION_FAILED" {
			t.Errorf("%.60q = %d %q %v, want 200 introspection is disabled", query, rec.Code, e.Message, e.Extensions)
		}
	}

	// __typename is not introspection of the schema.
	rec, res := b.graphQL(t, `{ __typename me { __typename } }`, nil)
	noErrors(t, rec, res)
}

// httpGET is a GET as Apollo Client sends it: with a Content-Type, which
// a browser cannot send cross-origin without a preflight, so CSRF
// prevention lets it through.
func httpGET(target string) *http.Request {
	req := httptest.NewRequest(http.MethodGet, target, nil)
	req.Header.Set("Content-Type", "application/json")
	return req
}

func queryEscape(s string) string { return url.QueryEscape(s) }
