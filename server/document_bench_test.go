package server_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/obsqra/obsqra/graph"
	"github.com/obsqra/obsqra/server"
)

// Body limits of the transports: a POST body and a WebSocket message. A
// document is built to fill one, less room for the JSON around it.
const (
	httpDocumentBytes = server.DefaultMaxBodyBytes - 256
	wsDocumentBytes   = 64<<10 - 256
)

// appSchema is the schema the documents are measured against.
var appSchema = graph.NewExecutableSchema(graph.Config{}).Schema()

// documentShape builds a document of one shape with n repetitions.
type documentShape struct {
	name  string
	build func(n int) string
}

// repeat returns n copies of format with %[1]d the copy's index, joined by
// spaces.
func repeat(n int, format string) string {
	var sb strings.Builder
	for i := range n {
		if i > 0 {
			sb.WriteByte(' ')
		}
		if strings.Contains(format, "%") {
			fmt.Fprintf(&sb, format, i)
		} else {
			sb.WriteString(format)
		}
	}
	return sb.String()
}

// nest returns n copies of open, then inner, then n copies of close.
func nest(n int, open, inner, close string) string {
	return strings.Repeat(open, n) + inner + strings.Repeat(close, n)
}

// documentShapes are the shapes a hostile document may take to make the
// validator work: what gqlparser's rules do per pair of things, or per
// thing looked up in a list.
var documentShapes = []documentShape{
	{"repeated_fields", func(n int) string { return "{ me { " + repeat(n, "id") + " } }" }},
	{"named_fragments", func(n int) string {
		return "{ me { " + repeat(n, "...F%d") + " } } " + repeat(n, "fragment F%[1]d on User { id }")
	}},
	{"nested_fragment_spreads", func(n int) string {
		// F0 spreads F1, which spreads F2, and so on: the validator walks
		// each fragment definition with all the fragments it reaches.
		var sb strings.Builder
		sb.WriteString("{ me { ...F0 } }")
		for i := range n {
			fmt.Fprintf(&sb, " fragment F%d on User { id ...F%d }", i, i+1)
		}
		fmt.Fprintf(&sb, " fragment F%d on User { id }", n)
		return sb.String()
	}},
	{"fragments_spreading_each_other", func(n int) string {
		// Every fragment spreads the next two: many pairs of fragments meet.
		var sb strings.Builder
		sb.WriteString("{ me { ...F0 ...F1 } }")
		for i := range n {
			fmt.Fprintf(&sb, " fragment F%d on User { id ...F%d ...F%d }", i, i+1, i+2)
		}
		fmt.Fprintf(&sb, " fragment F%d on User { id } fragment F%d on User { id }", n, n+1)
		return sb.String()
	}},
	{"fragment_pairs", func(n int) string {
		return "{ me { " + repeat(n, "...F%d") + " } } " + repeat(n, "fragment F%[1]d on User { a%[1]d: id }")
	}},
	{"aliases", func(n int) string { return "{ me { " + repeat(n, "a%d: id") + " } }" }},
	{"conflicting_aliases", func(n int) string { return "{ me { " + repeat(n, "a: id a: email") + " } }" }},
	{"repeated_subselections", func(n int) string {
		return "{ " + repeat(n, `node(id: "1") { `+repeat(n, "id")+" }") + " }"
	}},
	{"directives", func(n int) string { return "{ me { " + repeat(n, "id @include(if: true) @skip(if: false)") + " } }" }},
	{"repeated_directive", func(n int) string { return "{ me { id " + repeat(n, "@include(if: true)") + " } }" }},
	{"variables", func(n int) string {
		return "query (" + repeat(n, "$v%d: Boolean!") + ") { me { " + repeat(n, "id @include(if: $v%d)") + " } }"
	}},
	{"operations_sharing_a_fragment", func(n int) string {
		return repeat(n, "query Q%d { me { ...F } }") + " fragment F on User { " + repeat(n, "a%d: id") + " }"
	}},
	{"deep_list_value", func(n int) string { return `{ node(id: ` + nest(n, "[", `"1"`, "]") + `) { id } }` }},
	{"deep_object_value", func(n int) string {
		return `{ login(input: ` + nest(n, "{email: ", `"a"`, "}") + `) { accessToken } }`
	}},
	{"repeated_list_arguments", func(n int) string {
		return "{ " + repeat(n, "node(id: ["+repeat(n, `"1"`)+"]) { id }") + " }"
	}},
	{"long_string", func(n int) string { return `{ node(id: "` + strings.Repeat("x", n) + `") { id } }` }},
	{"long_block_string", func(n int) string {
		return `{ node(id: """` + strings.Repeat("  x\n", n/4) + `""") { id } }`
	}},
}

// largest returns the largest n, at most limit, for which ok holds,
// assuming ok holds for 1 and for every n below one for which it holds. It
// doubles n first, so that ok never sees an n far past the answer (the
// documents of some shapes grow as n²).
func largest(limit int, ok func(n int) bool) int {
	lo, hi := 1, 2 // ok(lo); hi unknown
	for hi <= limit && ok(hi) {
		lo, hi = hi, 2*hi
	}
	hi = min(hi, limit+1)
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		if ok(mid) {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo
}

// jsonLen is the length of query as a JSON string, as it travels.
func jsonLen(query string) int {
	b, err := json.Marshal(query)
	if err != nil {
		panic(err)
	}
	return len(b)
}

// fits returns the largest document of shape at most size bytes long once
// encoded in JSON.
func fits(shape documentShape, size int) string {
	n := largest(size, func(n int) bool { return jsonLen(shape.build(n)) <= size })
	return shape.build(n)
}

// passes returns the largest document of shape that the document limits
// let through to validation, at most size bytes long.
func passes(shape documentShape, size int) string {
	n := largest(size, func(n int) bool {
		q := shape.build(n)
		if jsonLen(q) > size {
			return false
		}
		cost, ok := server.DocumentCost(appSchema, q, server.DefaultMaxTokens, server.DefaultMaxValidationCost)
		return ok && cost <= server.DefaultMaxValidationCost
	})
	return shape.build(n)
}

// processCPU returns the CPU time the process has used, user and system.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// protocolSlugs is the first reproduction: one field repeated n times.
func protocolSlugs(n int) string { return "{ protocols { " + repeat(n, "slug") + " } }" }

// protocolFragments is the second: n one-field named fragments.
func protocolFragments(n int) string {
	return "{ protocols { " + repeat(n, "...F%d") + " } } " + repeat(n, "fragment F%[1]d on Protocol { slug }")
}

// BenchmarkDocumentLimits posts documents of every hostile shape, at the
// transports' size limits and at the largest size the document limits let
// through to validation, and the reproductions of the report that led to
// those limits, through the server's handler: each request is parsed,
// measured, validated and limited as any request is. Every document is
// made distinct (a trailing comment) so that the query cache never answers.
// The documents of the transports' limits are refused by the token limit,
// except for the long strings, which are one token; "largest_validated" is
// the largest document of the shape that goes on to gqlparser's
// validation (found with DocumentCost), the costliest one a client can
// send.
func BenchmarkDocumentLimits(b *testing.B) {
	type docCase struct {
		name  string
		query func() string
	}
	var cases []docCase
	for _, shape := range documentShapes {
		cases = append(cases,
			docCase{shape.name + "/http_1MiB", func() string { return fits(shape, httpDocumentBytes) }},
			docCase{shape.name + "/ws_64KiB", func() string { return fits(shape, wsDocumentBytes) }},
			docCase{shape.name + "/largest_validated", func() string { return passes(shape, httpDocumentBytes) }},
		)
	}
	cases = append(cases,
		docCase{"repro/8000_fields", func() string { return protocolSlugs(8000) }},
		docCase{"repro/16000_fields", func() string { return protocolSlugs(16000) }},
		docCase{"repro/40000_fields", func() string { return protocolSlugs(40000) }},
		docCase{"repro/3000_fragments", func() string { return protocolFragments(3000) }},
		docCase{"repro/ws_62.5KiB_fields", func() string { return fits(documentShape{build: protocolSlugs}, 62500) }},
		docCase{"repro/http_1MiB_fields", func() string { return fits(documentShape{build: protocolSlugs}, httpDocumentBytes) }},
	)

	srv := server.New(server.Config{
		Introspection: true,
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
	}, graph.NewExecutableSchema(graph.Config{Resolvers: &fakeResolver{}}), &fakeAuth{}, &fakePinger{})
	h := srv.Handler()

	unique := 0 // numbers the documents across runs, so no two are alike
	for _, c := range cases {
		query := sync.OnceValue(c.query)
		b.Run(c.name, func(b *testing.B) {
			q := query()
			bodies := make([][]byte, b.N)
			for i := range bodies {
				unique++
				body, err := json.Marshal(map[string]string{"query": q + "\n#" + strconv.Itoa(unique)})
				if err != nil {
					b.Fatal(err)
				}
				bodies[i] = body
			}
			b.SetBytes(int64(len(q)))
			// The garbage of building the documents is not the request's.
			runtime.GC()
			cpu := processCPU()
			b.ResetTimer()
			for i := range b.N {
				req := httptest.NewRequest(http.MethodPost, "/graphql", bytes.NewReader(bodies[i]))
				req.Header.Set("Content-Type", "application/json")
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("%d bytes = %d %.300s", len(bodies[i]), rec.Code, rec.Body)
				}
			}
			b.StopTimer()
			// Wall time counts the other processes of a shared machine;
			// the process's CPU time (the garbage collector's included)
			// does not.
			b.ReportMetric(float64(processCPU()-cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}
