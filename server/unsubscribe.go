package server

import (
	"context"
	"html/template"
	"net/http"

	"github.com/obsqra/obsqra"
)

// Unsubscriber turns off the email alerts of the user a token names: the
// token of the one-click unsubscribe link (RFC 8058) in every alert mail.
type Unsubscriber interface {
	// Unsubscribe turns the alerts off. Errors: EINVALID for a token that
	// is not valid; otherwise internal ones.
	Unsubscribe(ctx context.Context, token string) error
}

// unsubscribePage is what GET /unsubscribe answers: a form that POSTs, so
// that a link scanner (a mail provider's, an antivirus') that follows the
// link unsubscribes no one; the user's click and a mail client's one-click
// unsubscribe both POST. The form's action is relative, so that it holds
// behind a proxy that serves the API under a path (PUBLIC_API_URL's).
var unsubscribePage = template.Must(template.New("unsubscribe").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex"><title>Obsqra: stop alert mails</title></head>
<body><h1>Stop alert mails</h1>
<p>Stop the alert mails Obsqra sends you? You can turn them back on in your preferences.</p>
<form method="post" action="unsubscribe?token={{.}}">
<input type="hidden" name="List-Unsubscribe" value="One-Click">
<button type="submit">Unsubscribe</button>
</form></body></html>
`))

// unsubscribed is what a POST answers once alerts are off.
const unsubscribed = "You are unsubscribed: Obsqra will no longer mail you alerts. You can turn them back on in your preferences.\n"

// serveUnsubscribePage answers GET /unsubscribe?token=…: the page whose
// form unsubscribes. It does not check the token (the POST does).
func (s *Server) serveUnsubscribePage(w http.ResponseWriter, r *http.Request) {
	token := r.URL.Query().Get("token")
	if token == "" {
		writeText(w, http.StatusBadRequest, "this unsubscribe link has no token: copy the whole link from the mail\n")
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	unsubscribeHeaders(w)
	w.WriteHeader(http.StatusOK)
	_ = unsubscribePage.Execute(w, token) // a write error: the client is gone
}

// unsubscribe answers POST /unsubscribe?token=…, the one-click unsubscribe
// of RFC 8058 (the body, List-Unsubscribe=One-Click, is not needed: the
// token is the authority, so the route is outside /graphql's CSRF
// prevention, which concerns requests a signed-in browser's credentials
// authorise; a page that made a browser post here could only unsubscribe
// the user whose token it already has). A token that is not valid is
// answered 400, a failure of the server 500 or 503 without its details.
func (s *Server) unsubscribe(w http.ResponseWriter, r *http.Request) {
	token := r.URL.Query().Get("token")
	if token == "" {
		writeText(w, http.StatusBadRequest, "this unsubscribe link has no token: copy the whole link from the mail\n")
		return
	}
	err := s.cfg.Unsubscriber.Unsubscribe(r.Context(), token)
	switch obsqra.ErrorCode(err) {
	case "":
		unsubscribeHeaders(w)
		writeText(w, http.StatusOK, unsubscribed)
	case obsqra.EINVALID:
		writeText(w, http.StatusBadRequest, obsqra.ErrorMessage(err)+"\n")
	case obsqra.EUNAVAILABLE:
		writeText(w, http.StatusServiceUnavailable, "the service is unavailable: try again in a minute\n")
	default:
		s.log.ErrorContext(r.Context(), "unsubscribe failed", "request_id", requestIDOf(r), "error", err.Error())
		s.reportError(r.Context(), err)
		writeText(w, http.StatusInternalServerError, "internal error: try again later\n")
	}
}

// unsubscribeHeaders keep the token of an unsubscribe page out of caches
// and of the Referer of any link followed from it.
func unsubscribeHeaders(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
}

// writeText answers status with text, plain.
func writeText(w http.ResponseWriter, status int, text string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(text))
}
