package account

import (
	"context"
	"time"

	"github.com/obsqra/obsqra/store"
)

// SetMail sets the service's mailer and the frontend's base URL.
func SetMail(s *Service, queue func(ctx context.Context, tx *store.Tx, m Mail) error, publicAppURL string) {
	s.cfg.Mail, s.cfg.PublicAppURL = queue, publicAppURL
}

// SetMailRecipientInterval sets the service's per-recipient cap.
func SetMailRecipientInterval(s *Service, d time.Duration) { s.cfg.MailRecipientInterval = d }
