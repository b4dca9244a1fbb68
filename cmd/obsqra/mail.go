package main

import (
	"log/slog"

	"github.com/obsqra/obsqra/config"
	"github.com/obsqra/obsqra/mail"
	"github.com/obsqra/obsqra/store"
)

// mailSendTimeout bounds one attempt at a mail, a few of the SMTP
// server's replies (each bounded by mail.DefaultSMTPTimeout), so that a
// shutdown waits for an attempt under way no longer than this.
const mailSendTimeout = 2 * mail.DefaultSMTPTimeout

// mailSecurities maps the configuration's SMTP securities to the sender's.
var mailSecurities = map[config.SMTPSecurity]mail.Security{
	config.SMTPStartTLS:    mail.StartTLS,
	config.SMTPImplicitTLS: mail.ImplicitTLS,
	config.SMTPPlaintext:   mail.Plaintext,
}

// newMailTransport returns where mails go: cfg.SMTP's server, or, without
// one (development only: config refuses it in production), the log.
func newMailTransport(cfg *config.Config, logger *slog.Logger) (mail.Transport, error) {
	if cfg.SMTP == nil {
		logger.Info("no SMTP_URL: mails are written to the log instead of sent")
		return mail.Log{Logger: logger.With("component", "mail")}, nil
	}
	return mail.NewSMTP(mail.SMTPConfig{
		Host: cfg.SMTP.Host, Port: cfg.SMTP.Port, Security: mailSecurities[cfg.SMTP.Security],
		Username: cfg.SMTP.Username, Password: cfg.SMTP.Password, From: cfg.MailFrom,
	})
}

// newMailSender returns the sender of db's queued mails, which every
// instance runs: claims keep two from sending one mail.
func newMailSender(db *store.DB, cfg *config.Config, logger *slog.Logger) (*mail.Sender, error) {
	transport, err := newMailTransport(cfg, logger)
	if err != nil {
		return nil, err
	}
	return mail.NewSender(db, transport, mail.Config{SendTimeout: mailSendTimeout, Logger: logger.With("component", "mail")}), nil
}
