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
//
// A stream is written as Start, then frames and heartbeats, then Complete
// (or nothing, when cut short). Each frame and heartbeat is whole as
// written: a client reads a result as soon as it is sent, not when the
// next write begins.
type StreamFormat struct {
	// Name names the format in logs and metrics.
	Name string
	// ContentType is the response's Content-Type.
	ContentType string
	// Start opens the stream, written once before anything else; nil when
	// the format has no opening.
	Start []byte
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

// jsonPartHeader is the header of a part of a multipart/mixed body that
// holds a JSON result, with the empty line that ends it.
//
// In the multipart formats a delimiter (CRLF, "--" and the boundary; RFC
// 2046) ends each part as soon as it is written, as Apollo Router writes
// them: a client such as Apollo Client splits the body on delimiters, and
// a part followed by nothing yet would reach it only with the next part,
// a heartbeat (seconds later) at best. The CRLF that completes the
// delimiter's line opens the next part, and "--" after it closes the body;
// a body cut short ends with a delimiter alone, which no client takes for
// its end.
const jsonPartHeader = "Content-Type: application/json; charset=utf-8\r\n\r\n"

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
		Start:       []byte("\r\n--graphql"),
		NextHead:    []byte("\r\n" + jsonPartHeader + `{"payload":`),
		NextTail:    []byte("}\r\n--graphql"),
		Complete:    []byte("--\r\n"),
		Heartbeat:   []byte("\r\n" + jsonPartHeader + "{}\r\n--graphql"),
	}
	// MultipartIncremental is incremental delivery (@defer) as Apollo
	// Router and GraphQL Yoga send it, read by Apollo Client's
	// Defer20220824Handler: the initial result, then parts with
	// "incremental" and "hasNext", as parts of a multipart/mixed body with
	// boundary "-".
	MultipartIncremental = StreamFormat{
		Name:        "multipart-incremental",
		ContentType: `multipart/mixed; boundary="-"; deferSpec=20220824`,
		Start:       []byte("\r\n---"),
		NextHead:    []byte("\r\n" + jsonPartHeader),
		NextTail:    []byte("\r\n---"),
		Complete:    []byte("--\r\n"),
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
