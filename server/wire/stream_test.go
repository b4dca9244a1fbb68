package wire_test

import (
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"strings"
	"testing"

	"github.com/obsqra/obsqra/server/wire"
)

// The Accept headers the clients send, as they send them.
const (
	// acceptApolloSubscription is Apollo Client 4's HttpLink for a
	// subscription.
	acceptApolloSubscription = "multipart/mixed;boundary=graphql;subscriptionSpec=1.0,application/graphql-response+json,application/json;q=0.9"
	// acceptApolloDefer is Apollo Client 4's HttpLink for a query with
	// @defer, under its Defer20220824Handler.
	acceptApolloDefer = "multipart/mixed;deferSpec=20220824,application/graphql-response+json,application/json;q=0.9"
	// acceptApolloIncremental is the same under its GraphQL17Alpha9Handler,
	// which reads another format (incrementalSpec v0.2).
	acceptApolloIncremental = "multipart/mixed;incrementalSpec=v0.2,application/graphql-response+json,application/json;q=0.9"
	// acceptApolloQuery is Apollo Client 4's HttpLink for anything else.
	acceptApolloQuery = "application/graphql-response+json,application/json;q=0.9"
	// acceptRouterDocs is the header Apollo Router's documentation of
	// multipart subscriptions shows.
	acceptRouterDocs = `multipart/mixed;subscriptionSpec="1.0", application/json`
)

func TestParseAccept(t *testing.T) {
	t.Parallel()
	sse := wire.Accepted{SSE: true}
	sub := wire.Accepted{MultipartSubscription: true}
	inc := wire.Accepted{MultipartIncremental: true}
	none := wire.Accepted{}
	for _, tt := range []struct {
		name, accept string
		want         wire.Accepted
	}{
		{"nothing", "", none},
		{"json", "application/json", none},
		{"wildcard", "*/*", none},
		{"multipart wildcard", "multipart/*", none},
		{"event stream", "text/event-stream", sse},
		{"event stream with a charset", "text/event-stream; charset=utf-8", sse},
		{"event stream, upper case", "Text/Event-Stream", sse},
		{"subscriptionSpec", "multipart/mixed;subscriptionSpec=1.0", sub},
		{"subscriptionSpec quoted", `multipart/mixed; subscriptionSpec="1.0"`, sub},
		{"subscriptionSpec with the boundary", `multipart/mixed; boundary="graphql"; subscriptionSpec="1.0"`, sub},
		{"subscriptionSpec, upper case", "MULTIPART/MIXED;SUBSCRIPTIONSPEC=1.0", sub},
		{"deferSpec=20220824", "multipart/mixed;deferSpec=20220824", inc},
		{"deferSpec quoted", `multipart/mixed; deferSpec="20220824"`, inc},
		{"multipart/mixed alone", "multipart/mixed", inc},
		{"multipart/mixed with a boundary only", `multipart/mixed; boundary="-"`, inc},
		{"another deferSpec", "multipart/mixed;deferSpec=20230101", none},
		{"incrementalSpec", "multipart/mixed;incrementalSpec=v0.2", none},
		{"q=0 refuses", "text/event-stream;q=0", none},
		{"q=0.0 refuses", "text/event-stream;q=0.0", none},
		{"q=0.000 refuses", "multipart/mixed;subscriptionSpec=1.0;q=0.000", none},
		{"q=0.001 accepts", "text/event-stream;q=0.001", sse},
		{"q=1 accepts", "multipart/mixed;subscriptionSpec=1.0;q=1", sub},
		{"malformed parameter", "multipart/mixed;subscriptionSpec", none},
		{"malformed type", "text/", none},
		{"no slash", "event-stream", none},
		{"malformed beside a good one", "text/;;, text/event-stream", sse},
		{"empty elements", ",,text/event-stream,,", sse},
		{"several", "application/json, text/event-stream, multipart/mixed;subscriptionSpec=1.0", wire.Accepted{SSE: true, MultipartSubscription: true}},
		{"several multipart", "multipart/mixed;subscriptionSpec=1.0, multipart/mixed;deferSpec=20220824", wire.Accepted{MultipartSubscription: true, MultipartIncremental: true}},
		{"one refused among several", "text/event-stream;q=0, multipart/mixed;subscriptionSpec=1.0;q=0.5", sub},
		{"Apollo Client subscription", acceptApolloSubscription, sub},
		{"Apollo Client @defer", acceptApolloDefer, inc},
		{"Apollo Client subscription with @defer",
			"multipart/mixed;boundary=graphql;subscriptionSpec=1.0,multipart/mixed;deferSpec=20220824,application/graphql-response+json,application/json;q=0.9",
			wire.Accepted{MultipartSubscription: true, MultipartIncremental: true}},
		{"Apollo Client incrementalSpec v0.2", acceptApolloIncremental, none},
		{"Apollo Client query", acceptApolloQuery, none},
		{"Apollo Router's documentation", acceptRouterDocs, sub},
	} {
		if got := wire.ParseAccept(tt.accept); got != tt.want {
			t.Errorf("%s: ParseAccept(%q) = %+v, want %+v", tt.name, tt.accept, got, tt.want)
		}
	}
}

// A multipart format's body, as its stream writes it, is a multipart/mixed
// body that a reader of RFC 2046 reads part by part, and every write but
// the opening ends with a delimiter: a client that splits the body on
// delimiters, as Apollo Client does, has each part as soon as it is
// written.
func TestMultipartFormats(t *testing.T) {
	t.Parallel()
	for _, f := range []*wire.StreamFormat{&wire.MultipartSubscription, &wire.MultipartIncremental} {
		t.Run(f.Name, func(t *testing.T) {
			t.Parallel()
			mt, params, err := mime.ParseMediaType(f.ContentType)
			if err != nil || mt != "multipart/mixed" || params["boundary"] == "" {
				t.Fatalf("Content-Type %q: %s %v %v", f.ContentType, mt, params, err)
			}
			delimiter := "\r\n--" + params["boundary"]
			results := []string{`{"data":{"n":1}}`, `{"data":{"n":2}}`}

			writes := [][]byte{f.Start}
			for i, r := range results {
				writes = append(writes, f.Frame([]byte(r)))
				if i == 0 && f.Heartbeat != nil {
					writes = append(writes, f.Heartbeat)
				}
			}
			var body []byte
			for i, w := range writes {
				body = append(body, w...)
				if !bytes.HasSuffix(body, []byte(delimiter)) {
					t.Errorf("after write %d the body ends with %q, want the delimiter %q", i, tail(body), delimiter)
				}
			}
			if s := string(body); strings.Contains(s, delimiter+"--") {
				t.Errorf("a body not complete holds the close delimiter: %q", s)
			}
			body = append(body, f.Complete...)
			if !bytes.HasSuffix(body, []byte(delimiter+"--\r\n")) {
				t.Errorf("the complete body ends with %q, want the close delimiter", tail(body))
			}

			r := multipart.NewReader(bytes.NewReader(body), params["boundary"])
			var got []string
			for {
				p, err := r.NextPart()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("part %d: %v\nbody: %q", len(got), err, body)
				}
				if ct := p.Header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
					t.Errorf("part %d: Content-Type %q", len(got), ct)
				}
				b, err := io.ReadAll(p)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, string(b))
			}
			want := results
			if f == &wire.MultipartSubscription {
				want = []string{`{"payload":` + results[0] + `}`, `{}`, `{"payload":` + results[1] + `}`}
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("parts:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

// tail is the end of b, for messages.
func tail(b []byte) []byte { return b[max(len(b)-24, 0):] }
