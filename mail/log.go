package mail

import (
	"context"
	"log/slog"

	"github.com/obsqra/obsqra/store"
)

// Log is the Transport of development without an SMTP server: it writes
// each mail to the log, recipient, subject and text body with its links,
// so that `make run` works offline and a developer can follow a link.
type Log struct {
	// Logger receives one line per mail.
	Logger *slog.Logger
}

// Send logs m at info level and never fails.
func (l Log) Send(ctx context.Context, m store.Mail) error {
	l.Logger.InfoContext(ctx, "mail not sent (no SMTP_URL): logged instead",
		"mail_id", m.ID, "kind", m.Kind, "to", m.Recipient, "subject", m.Subject, "text", m.Text)
	return nil
}
