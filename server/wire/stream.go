package wire

import (
	"mime"
	"strings"
)

// StreamFormat is how the results of one operation are framed over one
// HTTP response, when there are several (a subscription's events, a
// deferred query's increments): each result's JSON is written between
// NextHead and NextTail, so that a result encoded once can be framed for
// every reader of a shared stream by writing three slices.
type StreamFormat struct {
	// Name names the format in logs and metrics.
	Name string
	// ContentType is the response's Content-Type.
	ContentType string
	// NextHead and NextTail surround each result.
	NextHead, NextTail []byte
	// Complete ends a stream that is over: the client does not reconnect.
	// A stream cut short (the server going away) ends without it.
	Complete []byte
	// Heartbeat is written while there is nothing else to write, so that
	// proxies keep the connection open; nil when the format has none.
	Heartbeat []byte
}

// Frame returns result framed as one message of f.
func (f *StreamFormat) Frame(result []byte) []byte {
	b := make([]byte, 0, len(f.NextHead)+len(result)+len(f.NextTail))
	b = append(b, f.NextHead...)
	b = append(b, result...)
	return append(b, f.NextTail...)
}

// multipartPart starts a part of a multipart/mixed body with boundary
// "graphql" or "-" (RFC 2046: a boundary line is preceded by CRLF, and
// the part's headers end with an empty line).
const (
	jsonPartHeader = "Content-Type: application/json; charset=utf-8\r\n\r\n"
)

// The formats the HTTP transport streams in.
var (
	// SSE is graphql-sse's "distinct connections" mode: each result an
	// event next, then an event complete; heartbeats are comments.
	SSE = StreamFormat{
		Name:        "sse",
		ContentType: "text/event-stream; charset=utf-8",
		NextHead:    []byte("event: next\ndata: "),
		NextTail:    []byte("\n\n"),
		Complete:    []byte("event: complete\ndata:\n\n"),
		Heartbeat:   []byte(":\n\n"),
	}
	// MultipartSubscription is Apollo's multipart HTTP subscriptions
	// protocol (subscriptionSpec 1.0): each event a part holding
	// {"payload": result}; an empty object as a part is a heartbeat; the
	// closing boundary completes.
	MultipartSubscription = StreamFormat{
		Name:        "multipart-subscription",
		ContentType: `multipart/mixed; boundary="graphql"; subscriptionSpec="1.0"`,
		NextHead:    []byte("\r\n--graphql\r\n" + jsonPartHeader + `{"payload":`),
		NextTail:    []byte("}"),
		Complete:    []byte("\r\n--graphql--\r\n"),
		Heartbeat:   []byte("\r\n--graphql\r\n" + jsonPartHeader + "{}"),
	}
	// MultipartIncremental is incremental delivery (@defer) as Apollo
	// Router and GraphQL Yoga send it, read by Apollo Client's
	// Defer20220824Handler: the initial result, then parts with
	// "incremental" and "hasNext", as parts of a multipart/mixed body with
	// boundary "-".
	MultipartIncremental = StreamFormat{
		Name:        "multipart-incremental",
		ContentType: `multipart/mixed; boundary="-"; deferSpec=20220824`,
		NextHead:    []byte("\r\n---\r\n" + jsonPartHeader),
		Complete:    []byte("\r\n-----\r\n"),
	}
)

// Accepted is what an Accept header says of the streamed formats.
type Accepted struct {
	// SSE: text/event-stream.
	SSE bool
	// MultipartSubscription: multipart/mixed with a subscriptionSpec.
	MultipartSubscription bool
	// MultipartIncremental: multipart/mixed without a subscriptionSpec
	// (with deferSpec=20220824, or no spec at all: not with another
	// deferSpec, nor with an incrementalSpec, another format).
	MultipartIncremental bool
}

// ParseAccept reads the streamed formats an Accept header names. A media
// range with weight 0 (q=0, q=0.0…) is refused, and one that does not
// parse is ignored.
func ParseAccept(accept string) Accepted {
	var a Accepted
	if !strings.Contains(accept, "/") {
		return a
	}
	for part := range strings.SplitSeq(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if q, ok := params["q"]; err != nil || ok && strings.Trim(q, "0.") == "" {
			continue
		}
		switch mt {
		case "text/event-stream":
			a.SSE = true
		case "multipart/mixed":
			_, subscription := params["subscriptionspec"]
			_, incremental := params["incrementalspec"]
			deferSpec, deferred := params["deferspec"]
			switch {
			case subscription:
				a.MultipartSubscription = true
			case !incremental && (!deferred || deferSpec == "20220824"):
				a.MultipartIncremental = true
			}
		}
	}
	return a
}
