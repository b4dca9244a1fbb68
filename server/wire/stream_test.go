package wire_test

import (
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
