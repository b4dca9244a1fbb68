package alert

import (
	"fmt"
	"html"
	"strings"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/store"
)

// mail returns the digest mail of alerts to u: a plain-text part and an
// HTML part (every alert's text escaped), and the one-click unsubscribe
// link in the body and in List-Unsubscribe.
func (s *Service) mail(u *obsqra.User, alerts []store.Alert) *store.Mail {
	link := s.UnsubscribeURL(u.ID)
	subject := "Obsqra: 1 alert"
	if len(alerts) > 1 {
		subject = fmt.Sprintf("Obsqra: %d alerts", len(alerts))
	}
	var text, body strings.Builder
	text.WriteString("Hello,\n\nThis needs your attention:\n\n")
	body.WriteString("<p>Hello,</p>\n<p>This needs your attention:</p>\n<ul>\n")
	for _, a := range alerts {
		fmt.Fprintf(&text, "- %s\n", a.Detail)
		fmt.Fprintf(&body, "<li>%s</li>\n", html.EscapeString(a.Detail))
	}
	fmt.Fprintf(&text, "\nYou get these mails because email alerts are on in your preferences.\nTurn them off: %s\n", link)
	fmt.Fprintf(&body, "</ul>\n<p>You get these mails because email alerts are on in your preferences. "+
		"<a href=\"%s\">Turn them off</a>.</p>\n", html.EscapeString(link))
	return &store.Mail{Kind: MailKind, Recipient: u.Email, Subject: subject, Text: text.String(),
		HTML: body.String(), ListUnsubscribe: link}
}
