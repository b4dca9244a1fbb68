package server

import (
	"net/http"
	"slices"
	"strings"

	"github.com/gorilla/websocket"
)

// simpleContentTypes are the media types a browser sends across origins
// without a preflight (the Fetch standard's CORS-safelisted Content-Type
// values): what an HTML form or a script's "simple" fetch can post.
var simpleContentTypes = []string{
	"application/x-www-form-urlencoded",
	"multipart/form-data",
	"text/plain",
}

// csrfHeaders are the request headers any one of which, not empty, makes a
// request one that browsers preflight: Apollo's recommended pair. Apollo
// Client sends a Content-Type even on GET; Apollo iOS and Kotlin send
// X-Apollo-Operation-Name; anything else sets Apollo-Require-Preflight.
var csrfHeaders = []string{"X-Apollo-Operation-Name", "Apollo-Require-Preflight"}

// codeCSRFPrevented is the code of a refused request.
const codeCSRFPrevented = "CSRF_PREVENTED"

// csrfMessage explains a refusal to the developer who meets it.
const csrfMessage = "This operation has been blocked as a potential Cross-Site Request Forgery (CSRF). " +
	"Either send a Content-Type header other than application/x-www-form-urlencoded, " +
	"multipart/form-data and text/plain (such as application/json), or a non-empty " +
	"X-Apollo-Operation-Name or Apollo-Require-Preflight header."

// preventCSRF refuses the requests to /graphql that a page of any origin
// can make a browser send without a CORS preflight, as Apollo Server's
// csrfPrevention does: CORS only keeps a response from the page's script,
// while the operation has already run (and a GET query's timing can leak
// what the user may see). A request is let through when its Content-Type
// is present and is not one of simpleContentTypes (an unparsable or empty
// one counts as not simple, as browsers preflight it too), or when one of
// csrfHeaders is not empty; every other request (a GET without either, a
// form or text/plain POST) is answered 400 with CSRF_PREVENTED before
// anything else reads it. WebSocket upgrades pass: browsers do not
// preflight them, so the transport checks their Origin instead
// (wsOriginAllowed).
func (s *Server) preventCSRF(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if preflighted(r) || websocket.IsWebSocketUpgrade(r) {
			next.ServeHTTP(w, r)
			return
		}
		writeRequestError(w, responseMediaType(r.Header.Get("Accept")), http.StatusBadRequest, codeCSRFPrevented, csrfMessage)
	})
}

// preflighted reports whether a browser would have preflighted r had it
// come from another origin, by its Content-Type and csrfHeaders.
func preflighted(r *http.Request) bool {
	if types, ok := r.Header["Content-Type"]; ok && len(types) > 0 {
		// The essence of a media type is what precedes its parameters; it
		// is compared without case. Parsing no further is deliberate: a
		// browser sends "text/plain; nonsense" without a preflight, while
		// mime.ParseMediaType would call it invalid.
		essence, _, _ := strings.Cut(types[0], ";")
		essence = strings.ToLower(strings.Trim(essence, " \t\r\n"))
		if !slices.Contains(simpleContentTypes, essence) {
			return true
		}
	}
	for _, name := range csrfHeaders {
		if r.Header.Get(name) != "" {
			return true
		}
	}
	return false
}
