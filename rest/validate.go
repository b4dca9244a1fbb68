package rest

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/account"
)

// problem is one entry of a 422 answer, in the shape of the original's
// validation errors (pydantic 2.5 under FastAPI): clients rely on loc, msg
// and type.
type problem struct {
	Type  string         `json:"type"`
	Loc   []any          `json:"loc"`
	Msg   string         `json:"msg"`
	Input any            `json:"input"`
	Ctx   map[string]any `json:"ctx,omitempty"`
	URL   string         `json:"url,omitempty"`
}

// problemsBody is a 422 answer.
type problemsBody struct {
	Detail []problem `json:"detail"`
	Code   string    `json:"code"`
}

// pydanticDocs is where the original's error types are explained.
const pydanticDocs = "https://errors.pydantic.dev/2.5/v/"

func writeProblems(w http.ResponseWriter, ps []problem) {
	for i := range ps {
		if ps[i].Type != "value_error" && ps[i].URL == "" {
			ps[i].URL = pydanticDocs + ps[i].Type
		}
	}
	writeJSON(w, http.StatusUnprocessableEntity, problemsBody{Detail: ps, Code: obsqra.PublicCode(obsqra.EINVALID)})
}

// kind is the type of a parameter or body field.
type kind int

const (
	kindString kind = iota
	kindEmail       // a string that account.NormalizeEmail takes
	kindInt
	kindNumber
	kindBool
	kindObject  // a JSON object
	kindStrings // a list of strings
	kindDecimal // a number or a decimal string, kept exact (obsqra.Decimal)
)

// field is a query parameter or a field of the JSON body.
type field struct {
	name string
	kind kind
	// required fields are reported missing; the others take def (nil:
	// absent).
	required bool
	def      any
	// min and max bound an integer, when set.
	min, max *int64
	// maxItems bounds a list's length, maxLen a string's bytes (0: none).
	maxItems, maxLen int
	// enum lists the values a string may take (documentation only: the
	// service checks them).
	enum []string
	doc  string
	// added marks what the original did not have.
	added bool
	// orQuery: a body field that may come from the query string instead.
	orQuery bool
	// missing is said after "Field required" when the field is missing.
	missing string
}

func bound(n int64) *int64 { return &n }

// inputs are a request's parsed parameters and body fields, by name.
type inputs map[string]any

func (in inputs) has(name string) bool { _, ok := in[name]; return ok }

func (in inputs) str(name string) string { s, _ := in[name].(string); return s }

func (in inputs) int(name string) int { n, _ := in[name].(int64); return int(n) }

func (in inputs) num(name string) float64 { f, _ := in[name].(float64); return f }

func (in inputs) bool(name string) bool { b, _ := in[name].(bool); return b }

func (in inputs) object(name string) map[string]any { m, _ := in[name].(map[string]any); return m }

func (in inputs) strings(name string) []string { s, _ := in[name].([]string); return s }

func (in inputs) decimal(name string) (obsqra.Decimal, bool) {
	d, ok := in[name].(obsqra.Decimal)
	return d, ok
}

// parse reads rt's query parameters and body; it reports every problem.
func (rt *route) parse(r *http.Request) (inputs, []problem) {
	in := make(inputs)
	var ps []problem
	q := r.URL.Query()
	for _, f := range rt.query {
		vs, ok := q[f.name]
		if !ok || len(vs) == 0 {
			if f.required {
				ps = append(ps, problem{Type: "missing", Loc: []any{"query", f.name}, Msg: "Field required"})
			} else if f.def != nil {
				in[f.name] = f.def
			}
			continue
		}
		v, p := f.coerce(vs[len(vs)-1], []any{"query", f.name})
		if p != nil {
			ps = append(ps, *p)
			continue
		}
		in[f.name] = v
	}
	if rt.body == nil {
		return in, ps
	}
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		// The server's body limit, or a client that stopped sending.
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return in, append(ps, problem{Type: "too_long", Loc: []any{"body"}, Msg: "the body is too large", Input: nil})
		}
		return in, append(ps, problem{Type: "json_invalid", Loc: []any{"body", 0}, Msg: "JSON decode error", Input: map[string]any{},
			Ctx: map[string]any{"error": "the body could not be read"}})
	}
	var obj map[string]any
	if len(bytes.TrimSpace(raw)) == 0 {
		if rt.body.required {
			return in, append(ps, problem{Type: "missing", Loc: []any{"body"}, Msg: "Field required", Input: nil})
		}
		obj = map[string]any{}
	} else {
		var doc any
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(&doc); err != nil || dec.More() {
			// Where the value was expected, as Python's json says: the
			// offending byte, or the end of a body cut short.
			offset := dec.InputOffset()
			var syn *json.SyntaxError
			switch {
			case errors.As(err, &syn):
				offset = max(syn.Offset-1, 0)
			case errors.Is(err, io.ErrUnexpectedEOF):
				offset = int64(len(raw))
			}
			return in, append(ps, problem{Type: "json_invalid", Loc: []any{"body", offset}, Msg: "JSON decode error", Input: map[string]any{},
				Ctx: map[string]any{"error": "Expecting value"}})
		}
		var ok bool
		if obj, ok = doc.(map[string]any); !ok {
			return in, append(ps, problem{Type: "model_attributes_type", Loc: []any{"body"},
				Msg: "Input should be a valid dictionary or object to extract fields from", Input: plain(doc)})
		}
	}
	for _, f := range rt.body.fields {
		loc := []any{"body", f.name}
		v, ok := obj[f.name]
		if !ok && f.orQuery {
			// The original read it from the query; its clients sent it
			// in the body. Either will do.
			loc = []any{"query", f.name}
			if vs := q[f.name]; len(vs) > 0 {
				v, ok = vs[len(vs)-1], true
			}
		}
		if !ok {
			if f.required {
				p := problem{Type: "missing", Loc: loc, Msg: "Field required", Input: plain(obj)}
				if loc[0] == "query" {
					p.Input = nil
				}
				if f.missing != "" {
					p.Msg += ": " + f.missing
				}
				ps = append(ps, p)
			} else if f.def != nil {
				in[f.name] = f.def
			}
			continue
		}
		v, p := f.coerce(v, loc)
		if p != nil {
			ps = append(ps, *p)
			continue
		}
		in[f.name] = v
	}
	return in, ps
}

// plain turns json.Numbers back into numbers, for echoing an input.
func plain(v any) any {
	switch v := v.(type) {
	case json.Number:
		if n, err := v.Int64(); err == nil {
			return n
		}
		f, _ := v.Float64()
		return f
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[k] = plain(x)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = plain(x)
		}
		return out
	}
	return v
}

// coerce converts v (a query string, or a decoded JSON value) to f's type
// as the original's pydantic did in its lax mode: "5" is a number, "true"
// and 1 are true. A query value is always a string.
func (f *field) coerce(v any, loc []any) (any, *problem) {
	bad := func(typ, msg string) (any, *problem) {
		return nil, &problem{Type: typ, Loc: loc, Msg: msg, Input: plain(v)}
	}
	switch f.kind {
	case kindString, kindEmail:
		s, ok := v.(string)
		if !ok {
			return bad("string_type", "Input should be a valid string")
		}
		if f.maxLen > 0 && len(s) > f.maxLen {
			p := &problem{Type: "string_too_long", Loc: loc, Msg: "String should have at most " + strconv.Itoa(f.maxLen) + " characters",
				Input: s[:f.maxLen] + "…", Ctx: map[string]any{"max_length": f.maxLen}}
			return nil, p
		}
		if f.kind == kindEmail {
			norm, err := account.NormalizeEmail(s)
			if err != nil {
				reason := obsqra.ErrorMessage(err)
				return nil, &problem{Type: "value_error", Loc: loc, Msg: "value is not a valid email address: " + reason,
					Input: s, Ctx: map[string]any{"reason": reason}}
			}
			return norm, nil
		}
		return s, nil
	case kindInt:
		var n int64
		switch x := v.(type) {
		case string:
			i, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64)
			if err != nil {
				return bad("int_parsing", "Input should be a valid integer, unable to parse string as an integer")
			}
			n = i
		case json.Number:
			i, err := x.Int64()
			if err != nil {
				f, ferr := x.Float64()
				if ferr != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
					return bad("int_from_float", "Input should be a valid integer, got a number with a fractional part")
				}
				i = int64(f)
			}
			n = i
		default:
			return bad("int_type", "Input should be a valid integer")
		}
		if f.min != nil && n < *f.min {
			return nil, &problem{Type: "greater_than_equal", Loc: loc, Msg: "Input should be greater than or equal to " + strconv.FormatInt(*f.min, 10),
				Input: plain(v), Ctx: map[string]any{"ge": *f.min}}
		}
		if f.max != nil && n > *f.max {
			return nil, &problem{Type: "less_than_equal", Loc: loc, Msg: "Input should be less than or equal to " + strconv.FormatInt(*f.max, 10),
				Input: plain(v), Ctx: map[string]any{"le": *f.max}}
		}
		return n, nil
	case kindNumber:
		switch x := v.(type) {
		case string:
			n, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
			if err != nil || math.IsNaN(n) || math.IsInf(n, 0) {
				return bad("float_parsing", "Input should be a valid number, unable to parse string as a number")
			}
			return n, nil
		case json.Number:
			n, err := x.Float64()
			if err != nil || math.IsInf(n, 0) {
				return bad("finite_number", "Input should be a finite number")
			}
			return n, nil
		default:
			return bad("float_type", "Input should be a valid number")
		}
	case kindBool:
		switch x := v.(type) {
		case bool:
			return x, nil
		case string:
			switch strings.ToLower(strings.TrimSpace(x)) {
			case "true", "1", "yes", "on", "t", "y":
				return true, nil
			case "false", "0", "no", "off", "f", "n":
				return false, nil
			}
			return bad("bool_parsing", "Input should be a valid boolean, unable to interpret input")
		case json.Number:
			switch x.String() {
			case "1":
				return true, nil
			case "0":
				return false, nil
			}
			return bad("bool_parsing", "Input should be a valid boolean, unable to interpret input")
		default:
			return bad("bool_type", "Input should be a valid boolean")
		}
	case kindDecimal:
		var text string
		switch x := v.(type) {
		case string:
			text = strings.TrimSpace(x)
		case json.Number:
			text = x.String()
		default:
			return bad("decimal_type", "Decimal input should be an integer, float, string or Decimal object")
		}
		d, err := obsqra.ParseDecimal(text)
		if err != nil {
			return nil, &problem{Type: "decimal_parsing", Loc: loc, Msg: "Input should be a valid decimal: " + obsqra.ErrorMessage(err), Input: plain(v)}
		}
		return d, nil
	case kindObject:
		m, ok := v.(map[string]any)
		if !ok {
			return bad("dict_type", "Input should be a valid dictionary")
		}
		// Numbers stay json.Numbers: stored as sent, to the last digit.
		return m, nil
	case kindStrings:
		list, ok := v.([]any)
		if !ok {
			return bad("list_type", "Input should be a valid list")
		}
		if f.maxItems > 0 && len(list) > f.maxItems {
			return nil, &problem{Type: "too_long", Loc: loc, Msg: "List should have at most " + strconv.Itoa(f.maxItems) + " items after validation, not " + strconv.Itoa(len(list)),
				Input: plain(v), Ctx: map[string]any{"field_type": "List", "max_length": f.maxItems, "actual_length": len(list)}}
		}
		out := make([]string, len(list))
		for i, x := range list {
			s, ok := x.(string)
			if !ok {
				return nil, &problem{Type: "string_type", Loc: append(append([]any{}, loc...), i), Msg: "Input should be a valid string", Input: plain(x)}
			}
			out[i] = s
		}
		return out, nil
	}
	return bad("invalid", "unknown parameter type")
}

// fieldMap names, for a route whose service reports invalid input in its
// own terms (EINVALID "input.amount must be …"), the field of the
// original's request each term stands for, so that the 422 names the field
// the client sent.
type fieldMap []struct {
	term string // the service's name, at the start of its message
	loc  []any  // the original's location
	name string // the original's name, which replaces term in the message
}

// problem returns the 422 entry of err, when its message starts with one
// of m's terms.
func (m fieldMap) problem(err error) (problem, bool) {
	msg := obsqra.ErrorMessage(err)
	for _, t := range m {
		rest, ok := strings.CutPrefix(msg, t.term)
		if !ok || rest != "" && rest[0] != ' ' && rest[0] != ':' {
			continue
		}
		return problem{Type: "value_error", Loc: t.loc, Msg: "Value error, " + t.name + rest, Input: nil}, true
	}
	return problem{}, false
}
