package rest

import (
	"bytes"
	"encoding/json"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/obsqra/obsqra"
)

// openAPIDocument returns the OpenAPI 3.1 document of the routes: their
// parameters and bodies from the same fields that parse them, and their
// answers from the Go types they answer, so the document says what the
// routes do.
func openAPIDocument(table []*route, version string) []byte {
	if version == "" {
		version = "1.0.0"
	}
	// The paths in the table's order (the original's), which the
	// reference page keeps.
	var paths ordered
	byPath := map[string]map[string]any{}
	for _, rt := range table {
		p := Prefix + rt.path
		if byPath[p] == nil {
			byPath[p] = map[string]any{}
			paths = append(paths, member{p, byPath[p]})
		}
		byPath[p][strings.ToLower(rt.method)] = operation(rt)
	}
	doc := map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{
			"title":   "Obsqra REST API",
			"version": version,
			"description": "The REST API of the product this server replaces, kept for its clients while they move to GraphQL (/graphql). " +
				"Same paths, parameters, fields and errors as the original; fields and routes it did not have are marked *added*. " +
				"Protected routes take the access token as `?token=` or as `Authorization: Bearer` (the query wins when both are sent). " +
				"Every error but a validation error is `{\"detail\": …, \"code\": …}`, code being the GraphQL API's `extensions.code`; " +
				"a validation error is 422 with a list of problems in `detail`. Each route costs points of the caller's budget " +
				"(the GraphQL API's): past it, 429 with `Retry-After`.",
		},
		"tags": []any{
			map[string]any{"name": "auth", "description": "Accounts, sessions and wallets."},
			map[string]any{"name": "users", "description": "The profile and preferences."},
			map[string]any{"name": "analytics", "description": "Histories of risk and allocations."},
			map[string]any{"name": "predictions", "description": "Forecasts, suggestions and optimisation."},
			map[string]any{"name": "transactions", "description": "The log of your on-chain transactions."},
		},
		"paths": paths,
		"components": map[string]any{
			"securitySchemes": map[string]any{
				"bearer":     map[string]any{"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
				"tokenQuery": map[string]any{"type": "apiKey", "in": "query", "name": "token"},
			},
			"schemas": map[string]any{
				"Error":           schemaOf(reflect.TypeFor[errorBody]()),
				"ValidationError": schemaOf(reflect.TypeFor[problemsBody]()),
			},
		},
	}
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		panic("rest: the OpenAPI document does not encode: " + err.Error())
	}
	return out
}

// operation is the OpenAPI operation of rt.
func operation(rt *route) map[string]any {
	desc := rt.doc
	if rt.added {
		desc = strings.TrimSpace("*Added*: the original had no such route. " + desc)
	}
	desc = strings.TrimSpace(desc + " Costs " + strconv.FormatInt(rt.cost, 10) + " points.")
	op := map[string]any{
		"operationId": operationID(rt),
		"summary":     rt.summary,
		"description": desc,
		"tags":        []string{rt.tag},
	}
	var params []any
	if rt.pathParam != nil {
		params = append(params, parameter(*rt.pathParam, "path", true))
	}
	for _, f := range rt.query {
		params = append(params, parameter(f, "query", f.required))
	}
	if rt.body != nil {
		props := map[string]any{}
		var required []string
		for _, f := range rt.body.fields {
			props[f.name] = fieldSchema(f)
			if f.orQuery {
				params = append(params, parameter(f, "query", false))
				continue
			}
			if f.required {
				required = append(required, f.name)
			}
		}
		body := map[string]any{"type": "object", "properties": props}
		if len(required) > 0 {
			body["required"] = required
		}
		op["requestBody"] = map[string]any{
			"required": rt.body.required,
			"content":  map[string]any{"application/json": map[string]any{"schema": body}},
		}
	}
	if len(params) > 0 {
		op["parameters"] = params
	}
	if rt.auth {
		op["security"] = []any{map[string]any{"tokenQuery": []string{}}, map[string]any{"bearer": []string{}}}
	}
	ok := schemaOf(reflect.TypeOf(rt.out))
	if rt.alt != nil {
		ok = map[string]any{"oneOf": []any{ok, schemaOf(reflect.TypeOf(rt.alt))}}
	}
	responses := map[string]any{
		"200": map[string]any{"description": "OK", "content": map[string]any{"application/json": map[string]any{"schema": ok}}},
		"422": errorResponse("The request is invalid: every problem, each naming where it is (loc).", "ValidationError"),
		"429": errorResponse("The caller's budget is spent: retry after Retry-After seconds.", "Error"),
		"500": errorResponse("An internal error: the request id says which.", "Error"),
		"503": errorResponse("A service the route needs did not answer in time: retry.", "Error"),
	}
	statuses := slices.Clone(rt.errors)
	if rt.auth {
		statuses = append(statuses, http.StatusUnauthorized)
	}
	if rt.body != nil {
		statuses = append(statuses, http.StatusRequestEntityTooLarge)
	}
	for _, s := range statuses {
		responses[strconv.Itoa(s)] = errorResponse(http.StatusText(s), "Error")
	}
	op["responses"] = responses
	return op
}

func errorResponse(desc, schema string) map[string]any {
	return map[string]any{"description": desc, "content": map[string]any{"application/json": map[string]any{
		"schema": map[string]any{"$ref": "#/components/schemas/" + schema}}}}
}

// operationID is rt's method and path in camel case: postAuthRegister.
func operationID(rt *route) string {
	var b strings.Builder
	b.WriteString(strings.ToLower(rt.method))
	for _, part := range strings.FieldsFunc(rt.path, func(r rune) bool { return r == '/' || r == '-' || r == '_' || r == '{' || r == '}' }) {
		b.WriteString(strings.ToUpper(part[:1]) + part[1:])
	}
	return b.String()
}

func parameter(f field, in string, required bool) map[string]any {
	p := map[string]any{"name": f.name, "in": in, "required": required, "schema": fieldSchema(f)}
	if d := fieldDoc(f); d != "" {
		p["description"] = d
	}
	return p
}

func fieldDoc(f field) string {
	d := f.doc
	if len(f.enum) > 0 {
		d = strings.TrimSpace(d + " One of: " + strings.Join(f.enum, ", ") + ".")
	}
	if f.added {
		d = strings.TrimSpace("*Added*. " + d)
	}
	return d
}

// fieldSchema is the JSON schema of a parameter or body field.
func fieldSchema(f field) map[string]any {
	var s map[string]any
	switch f.kind {
	case kindString:
		s = map[string]any{"type": "string"}
	case kindEmail:
		s = map[string]any{"type": "string", "format": "email"}
	case kindInt:
		s = map[string]any{"type": "integer"}
		if f.min != nil {
			s["minimum"] = *f.min
		}
		if f.max != nil {
			s["maximum"] = *f.max
		}
	case kindNumber:
		s = map[string]any{"type": []string{"number", "string"}}
	case kindBool:
		s = map[string]any{"type": []string{"boolean", "string", "integer"}}
	case kindObject:
		s = map[string]any{"type": "object"}
	case kindStrings:
		s = map[string]any{"type": "array", "items": map[string]any{"type": "string"}}
		if f.maxItems > 0 {
			s["maxItems"] = f.maxItems
		}
	case kindDecimal:
		s = map[string]any{"type": []string{"number", "string"}}
	}
	if f.maxLen > 0 {
		s["maxLength"] = f.maxLen
	}
	if f.def != nil {
		s["default"] = f.def
	}
	if d := fieldDoc(f); d != "" {
		s["description"] = d
	}
	return s
}

var (
	numberType   = reflect.TypeFor[number]()
	datetimeType = reflect.TypeFor[datetime]()
	objectType   = reflect.TypeFor[obsqra.JSONObject]()
)

// schemaOf is the JSON schema of the Go type an answer is encoded from.
func schemaOf(t reflect.Type) map[string]any {
	switch t {
	case numberType:
		return map[string]any{"type": "number"}
	case objectType:
		return map[string]any{"type": "object"}
	case datetimeType:
		return map[string]any{"type": "string", "pattern": datetimePattern,
			"description": "Naive UTC, as Python's isoformat() writes it."}
	}
	switch t.Kind() {
	case reflect.Pointer:
		s := schemaOf(t.Elem())
		switch typ := s["type"].(type) {
		case string:
			s["type"] = []string{typ, "null"}
		default:
			s = map[string]any{"oneOf": []any{s, map[string]any{"type": "null"}}}
		}
		return s
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int64, reflect.Int32:
		return map[string]any{"type": "integer"}
	case reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Slice:
		return map[string]any{"type": "array", "items": schemaOf(t.Elem())}
	case reflect.Map:
		if t.Elem().Kind() == reflect.Interface {
			return map[string]any{"type": "object"}
		}
		return map[string]any{"type": "object", "additionalProperties": schemaOf(t.Elem())}
	case reflect.Interface:
		return map[string]any{}
	case reflect.Struct:
		props := map[string]any{}
		var required []string
		addFields(t, props, &required)
		return map[string]any{"type": "object", "properties": props, "required": required}
	}
	panic("rest: no schema for " + t.String())
}

// addFields adds the JSON fields of struct t (and of its embedded structs)
// to props; those encoded always are required.
func addFields(t reflect.Type, props map[string]any, required *[]string) {
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			addFields(f.Type, props, required)
			continue
		}
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		props[name] = schemaOf(f.Type)
		if !strings.Contains(opts, "omitempty") {
			*required = append(*required, name)
		}
	}
}

// serveOpenAPI answers the document.
func (a *API) serveOpenAPI(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		writeDetail(w, http.StatusMethodNotAllowed, "Method Not Allowed", "")
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-cache")
	h.Set("Content-Length", strconv.Itoa(len(a.openAPI)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(a.openAPI)
	}
}

// ordered is a JSON object whose members keep their order.
type ordered []member

type member struct {
	name  string
	value any
}

// MarshalJSON writes the members in order.
func (o ordered) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		name, err := json.Marshal(m.name)
		if err != nil {
			return nil, err
		}
		value, err := json.Marshal(m.value)
		if err != nil {
			return nil, err
		}
		b.Write(name)
		b.WriteByte(':')
		b.Write(value)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}
