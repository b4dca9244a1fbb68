package resolvers_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vektah/gqlparser/v2/ast"

	"github.com/obsqra/obsqra/resolvers"
	"github.com/obsqra/obsqra/store"
	"github.com/obsqra/obsqra/store/storetest"
)

// FuzzAPIInputs (issue 15) puts a fuzzed value at one input position of the
// schema and sends the request through the real handler on SQLite and, when
// it answers, PostgreSQL. The positions are every argument of every query
// and mutation and, within it, every input field and list element at any
// depth, read from the schema itself, so a new input is fuzzed without a
// change here. The other required arguments and fields get values that let
// the request through to the database where they can. The value goes in as
// a string variable, as any JSON value in a variable (when it is JSON), or
// as a string literal in the document (mode % 3).
//
// No answer may be an HTTP 5xx or an INTERNAL_SERVER_ERROR, and both
// databases must answer with the same error codes.
//
// `make test` runs the seed corpus (a few values per position, as fits its
// type, plus any entries in testdata/fuzz/FuzzAPIInputs); `make fuzz`
// fuzzes. An entry's position is an index into inputPositions: after the
// schema changes it may point elsewhere, which only makes it another test.
func FuzzAPIInputs(f *testing.F) {
	envs := []*fuzzEnv{newFuzzEnv(f, "sqlite", storetest.SQLite(f))}
	if db := storetest.PostgresIfReachable(f); db != nil {
		envs = append(envs, newFuzzEnv(f, "postgres", db))
	}
	schema := resolvers.NewExecutableSchema(&resolvers.Resolver{}).Schema()
	positions := inputPositions(schema)
	if len(positions) < 100 {
		f.Fatalf("found %d input positions in the schema, want every argument and input field", len(positions))
	}

	for i, p := range positions {
		for _, seed := range seedsFor(schema, p.typ) {
			f.Add(uint16(i), seed.mode, seed.value)
		}
	}

	f.Fuzz(func(t *testing.T, pos uint16, mode uint8, value string) {
		p := positions[int(pos)%len(positions)]
		var answers [][]string
		for _, e := range envs {
			codes := e.send(t, schema, p, mode%3, value)
			answers = append(answers, codes)
		}
		if len(answers) == 2 && !slices.Equal(answers[0], answers[1]) {
			t.Errorf("%s with %q (mode %d): sqlite answered %v, postgres %v", p, value, mode%3, answers[0], answers[1])
		}
	})
}

// fuzzEnv is the server over one database, with an admin signed in. A
// query is sent as reader; a mutation as a new user each time, since it
// may deactivate its user, change its password or end its sessions.
type fuzzEnv struct {
	name   string
	h      http.Handler
	admin  string
	reader fuzzUser
	// users counts the users made.
	users atomic.Int64
}

func newFuzzEnv(tb testing.TB, name string, db *store.DB) *fuzzEnv {
	tb.Helper()
	h, _ := newFullHandler(tb, db)
	e := &fuzzEnv{name: name, h: h}
	e.admin = registerVia(tb, h, "admin@example.com").AccessToken
	e.reader = e.newUser(tb)
	return e
}

// fuzzUser is a user requests are sent as.
type fuzzUser struct {
	n                         int64
	email, id, token, refresh string
}

// newUser registers a new user.
func (e *fuzzEnv) newUser(tb testing.TB) fuzzUser {
	tb.Helper()
	n := e.users.Add(1)
	reg := registerVia(tb, e.h, fmt.Sprintf("fuzz%d@example.com", n))
	return fuzzUser{n: n, email: reg.User.Email, id: reg.User.ID, token: reg.AccessToken, refresh: reg.RefreshToken}
}

// send sends the request of position p with value (again as the admin if
// the user may not), checks the answer and returns its error codes.
func (e *fuzzEnv) send(t *testing.T, schema *ast.Schema, p position, mode uint8, value string) []string {
	t.Helper()
	u := e.reader
	if p.op == "mutation" {
		u = e.newUser(t)
	}
	query, vars := buildRequest(schema, p, u, mode, value)
	codes := e.post(t, u.token, query, vars, p, value)
	if slices.Contains(codes, "FORBIDDEN") {
		codes = e.post(t, e.admin, query, vars, p, value)
	}
	return codes
}

func (e *fuzzEnv) post(t *testing.T, token, query string, vars map[string]any, p position, value string) []string {
	t.Helper()
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err != nil {
		t.Fatalf("%s: marshal the request: %v", p, err)
	}
	req := httptest.NewRequest(http.MethodPost, "/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	req.RemoteAddr = "203.0.113.5:4321"
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	var resp gqlResponse
	if rec.Code >= 500 || json.Unmarshal(rec.Body.Bytes(), &resp) != nil {
		t.Fatalf("%s on %s with %q: status %d, body %s\nrequest: %s", p, e.name, value, rec.Code, rec.Body, body)
	}
	var codes []string
	for _, g := range resp.Errors {
		code, _ := g.Extensions["code"].(string)
		if code == "INTERNAL_SERVER_ERROR" {
			t.Fatalf("%s on %s with %q: %+v\nrequest: %s", p, e.name, value, resp.Errors, body)
		}
		codes = append(codes, code)
	}
	return codes
}

// position is one place of the schema where a client puts a value: an
// argument of a root field, or an input field or list element within it.
type position struct {
	op    string // "query" or "mutation"
	field *ast.FieldDefinition
	arg   *ast.ArgumentDefinition
	// path leads from the argument to the position: input field names,
	// and "[]" for a list's element.
	path []string
	typ  *ast.Type
}

func (p position) String() string {
	s := p.field.Name + "(" + p.arg.Name
	for _, step := range p.path {
		if step == "[]" {
			s += step
		} else {
			s += "." + step
		}
	}
	return s + ": " + p.typ.String() + ")"
}

// inputPositions lists every position of the schema's queries and
// mutations, in the schema's order.
func inputPositions(schema *ast.Schema) []position {
	var out []position
	var walk func(p position, seen []string)
	walk = func(p position, seen []string) {
		out = append(out, p)
		if p.typ.Elem != nil {
			q := p
			q.path, q.typ = append(slices.Clone(p.path), "[]"), p.typ.Elem
			walk(q, seen)
			return
		}
		def := schema.Types[p.typ.NamedType]
		if def.Kind != ast.InputObject || slices.Contains(seen, def.Name) {
			return
		}
		for _, fd := range def.Fields {
			q := p
			q.path, q.typ = append(slices.Clone(p.path), fd.Name), fd.Type
			walk(q, append(slices.Clone(seen), def.Name))
		}
	}
	for _, root := range []struct {
		op  string
		def *ast.Definition
	}{{"query", schema.Query}, {"mutation", schema.Mutation}} {
		for _, fd := range root.def.Fields {
			if strings.HasPrefix(fd.Name, "__") {
				continue
			}
			for _, arg := range fd.Arguments {
				walk(position{op: root.op, field: fd, arg: arg, typ: arg.Type}, nil)
			}
		}
	}
	return out
}

// fuzzSeed is a corpus entry's mode and value.
type fuzzSeed struct {
	mode  uint8
	value string
}

// seedsFor returns the values the seed corpus puts at a position of type
// typ: a NUL character in every text, JSON, list and input object, values
// at the edges of the position's own type, and one value it takes (a
// start for the fuzzer on the path past validation).
func seedsFor(schema *ast.Schema, typ *ast.Type) []fuzzSeed {
	const asString, asJSON, asLiteral = 0, 1, 2
	if typ.Elem != nil {
		return []fuzzSeed{{asJSON, `["a\u0000b"]`}}
	}
	switch def := schema.Types[typ.NamedType]; {
	case def.Kind == ast.InputObject:
		return []fuzzSeed{{asJSON, `{"\u0000": "\u0000"}`}}
	case def.Name == "String" || def.Name == "ID":
		return []fuzzSeed{{asString, "a\x00b"}, {asLiteral, "\x00"}, {asString, "Ada ☃"}, {asString, strings.Repeat("é", 3000)}}
	case def.Name == "JSON":
		return []fuzzSeed{
			{asString, "a\x00b"},
			{asJSON, `{"a": [1.5, "b", {"c": null}]}`},
			{asJSON, `{"a": "\u0000"}`},
			{asJSON, `{"\u0000": {"b": [1, {"c\u0000": true}]}}`},
			{asJSON, `{"a": 1e999999, "b": -1e-999999}`},
			{asJSON, `{"b": [` + strings.Repeat("[", 500) + strings.Repeat("]", 500) + `]}`},
			{asJSON, `{"a": "\ud800", "b": "\uDFFF\uD800"}`},
		}
	case def.Name == "Int" || def.Name == "Float":
		return []fuzzSeed{{asJSON, "7"}, {asJSON, "9223372036854775808"}, {asJSON, "-1e400"}, {asJSON, "2147483648"}}
	case def.Name == "Boolean":
		return []fuzzSeed{{asJSON, "true"}}
	case def.Name == "Decimal":
		return []fuzzSeed{{asString, "a\x00b"}, {asJSON, "7"}, {asJSON, "1" + strings.Repeat("0", 100)}, {asString, "-0.0000000000000000001"}}
	case def.Name == "Time":
		return []fuzzSeed{{asString, "a\x00b"}, {asString, "0000-01-01T00:00:00Z"}, {asString, "2024-01-01T00:00:00.0000000001Z"}}
	case def.Name == "Date":
		return []fuzzSeed{{asString, "a\x00b"}, {asString, "0001-01-01"}, {asString, "9999-12-31"}}
	case def.Kind == ast.Enum:
		return []fuzzSeed{{asString, "a\x00b"}, {asLiteral, "\x00"}}
	}
	return []fuzzSeed{{asString, "a\x00b"}}
}

// enumValue is an enum value: a name in a literal, a string in variables.
type enumValue string

// fuzzValue stands for the fuzzed value while a request is built.
type fuzzValue struct{}

// buildRequest returns the document and variables of the request that
// puts value at p (mode 0: a string variable, 1: a JSON variable, 2: a
// string literal), with defaults for every other required argument and
// input field.
func buildRequest(schema *ast.Schema, p position, u fuzzUser, mode uint8, value string) (string, map[string]any) {
	var fuzzed any = value
	if mode == 1 && json.Valid([]byte(value)) {
		fuzzed = json.RawMessage(value)
	}
	var (
		decls, args []string
		vars        = map[string]any{}
	)
	for i, a := range p.field.Arguments {
		var v any
		switch {
		case a == p.arg:
			v = build(schema, a.Type, p.path, p.field.Name+"."+a.Name, u)
		case a.Type.NonNull && a.DefaultValue == nil:
			v = defaultValue(schema, a.Type, p.field.Name+"."+a.Name, u)
		default:
			continue
		}
		if mode == 2 {
			args = append(args, a.Name+": "+literal(v, value))
			continue
		}
		name := "a" + strconv.Itoa(i)
		decls = append(decls, "$"+name+": "+a.Type.String())
		args = append(args, a.Name+": $"+name)
		vars[name] = substitute(v, fuzzed)
	}
	doc := p.op
	if len(decls) > 0 {
		doc += "(" + strings.Join(decls, ", ") + ")"
	}
	doc += " { " + p.field.Name + "(" + strings.Join(args, ", ") + ")"
	if k := schema.Types[p.field.Type.Name()].Kind; k != ast.Scalar && k != ast.Enum {
		doc += " { __typename }"
	}
	return doc + " }", vars
}

// build returns the value of type typ with the fuzzed value at path.
func build(schema *ast.Schema, typ *ast.Type, path []string, name string, u fuzzUser) any {
	if len(path) == 0 {
		return fuzzValue{}
	}
	if path[0] == "[]" {
		return []any{build(schema, typ.Elem, path[1:], name, u)}
	}
	def := schema.Types[typ.NamedType]
	obj := defaultValue(schema, &ast.Type{NamedType: def.Name, NonNull: true}, name, u).(map[string]any)
	fd := def.Fields.ForName(path[0])
	obj[fd.Name] = build(schema, fd.Type, path[1:], def.Name+"."+fd.Name, u)
	return obj
}

// fuzzTime is the one instant every Time argument and field gets: an hour
// ago when the test started. A clock read per request would let the two
// databases see different instants (a request on one database in the same
// second as an earlier one conflicts; on the other, a second later, not),
// so their answers would differ by timing alone.
var fuzzTime = time.Now().UTC().Add(-time.Hour).Truncate(time.Second).Format(time.RFC3339)

// defaultValue returns a value of typ that the field or argument name
// (Type.field or field.argument) takes, so that a request gets as far as
// it can with the fuzzed value elsewhere.
func defaultValue(schema *ast.Schema, typ *ast.Type, name string, u fuzzUser) any {
	if typ.Elem != nil {
		return []any{defaultValue(schema, typ.Elem, name, u)}
	}
	switch name {
	case "RegisterInput.email":
		return fmt.Sprintf("fuzz%d.new@example.com", u.n)
	case "LoginInput.email":
		return u.email
	case "refreshSession.refreshToken", "logout.refreshToken":
		return u.refresh
	case "setUserActive.userId":
		return u.id
	case "LogTransactionInput.txHash", "RecordAllocationInput.txHash":
		return fmt.Sprintf("0x%x", 0x100000+u.n)
	case "requestWalletChallenge.address", "ConnectWalletInput.address", "transaction.hash":
		return "0x1234"
	case "ConnectWalletInput.signature":
		return "0x1"
	case "UpsertProtocolInput.slug":
		return "fuzzfi"
	case "LogTransactionInput.token":
		return "STRK"
	case "WeightInput.weightBps":
		return 10000
	}
	if strings.HasSuffix(name, "password") || strings.HasSuffix(name, "Password") {
		return "correct horse"
	}
	if strings.HasSuffix(name, "slug") || strings.HasSuffix(name, "protocol") || strings.HasSuffix(name, "protocols") {
		return "nostra"
	}
	def := schema.Types[typ.NamedType]
	switch {
	case def.Kind == ast.Enum:
		return enumValue(def.EnumValues[0].Name)
	case def.Kind == ast.InputObject:
		obj := map[string]any{}
		for _, fd := range def.Fields {
			if fd.Type.NonNull && fd.DefaultValue == nil {
				obj[fd.Name] = defaultValue(schema, fd.Type, def.Name+"."+fd.Name, u)
			}
		}
		return obj
	}
	switch def.Name {
	case "Int":
		return 7
	case "Float":
		return 0.5
	case "Boolean":
		return false
	case "Time":
		return fuzzTime
	case "Date":
		return "2024-01-01"
	case "Decimal":
		return "1.5"
	case "JSON":
		return map[string]any{"note": "fuzz"}
	}
	return "fuzz"
}

// substitute returns v for a variable, with fuzzed in place of the
// fuzzValue.
func substitute(v any, fuzzed any) any {
	switch v := v.(type) {
	case fuzzValue:
		return fuzzed
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = substitute(e, fuzzed)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = substitute(e, fuzzed)
		}
		return out
	}
	return v
}

var graphQLName = regexp.MustCompile(`^[_A-Za-z][_0-9A-Za-z]*$`)

// literal writes v as a GraphQL literal, with value as a string literal in
// place of the fuzzValue.
func literal(v any, value string) string {
	switch v := v.(type) {
	case fuzzValue:
		return quote(value)
	case enumValue:
		return string(v)
	case string:
		return quote(v)
	case []any:
		parts := make([]string, len(v))
		for i, e := range v {
			parts[i] = literal(e, value)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			if graphQLName.MatchString(k) {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = k + ": " + literal(v[k], value)
		}
		return "{" + strings.Join(parts, ", ") + "}"
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// quote writes s as a GraphQL string literal; bytes that are not UTF-8 are
// written as they are (the lexer refuses them).
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20:
			fmt.Fprintf(&b, `\u%04x`, c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}
