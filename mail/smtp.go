package mail

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/mail"
	"strconv"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"

	"github.com/obsqra/obsqra/store"
)

// Security is how the connection to an SMTP server is protected.
type Security int

// The securities of an SMTP connection.
const (
	// StartTLS upgrades the connection with STARTTLS before anything else
	// is said, and refuses a server that does not offer it.
	StartTLS Security = iota
	// ImplicitTLS speaks TLS from the first byte (port 465).
	ImplicitTLS
	// Plaintext sends everything in the clear: a local test server only.
	Plaintext
)

// DefaultSMTPTimeout is SMTPConfig.Timeout's default.
const DefaultSMTPTimeout = 10 * time.Second

// SMTPConfig is an SMTP server and how to send through it.
type SMTPConfig struct {
	// Host and Port are where the server listens.
	Host string
	Port int
	// Security is how the connection is protected.
	Security Security
	// Username and Password authenticate (the strongest mechanism the
	// server offers, PLAIN and LOGIN only over TLS); no authentication
	// when Username is "".
	Username string
	Password string
	// From is the From of every mail, "Name <address>" or an address.
	From string
	// Timeout bounds the connection and each reply of the server (default
	// 10s): a server that stops answering fails the attempt, which is then
	// retried.
	Timeout time.Duration
	// TLSConfig, when set, is the TLS configuration of the connection
	// (tests trust their own certificate authority through its RootCAs);
	// nil: the system's roots, for Host. Verification is never turned off.
	TLSConfig *tls.Config
	// Now is the clock of the Date header (default time.Now).
	Now func() time.Time
}

// SMTP is the Transport that hands mails to an SMTP server through
// github.com/wneessen/go-mail, one connection per mail.
type SMTP struct {
	client *gomail.Client
	from   string
	// domain is the From address's domain, the right side of Message-IDs.
	domain string
	now    func() time.Time
}

// NewSMTP returns the Transport of cfg. It does not connect.
// Errors: cfg.From is not a mail address, or go-mail refuses an option.
func NewSMTP(cfg SMTPConfig) (*SMTP, error) {
	from, err := mail.ParseAddress(cfg.From)
	if err != nil {
		return nil, fmt.Errorf("mail from %q: %w", cfg.From, err)
	}
	_, domain, _ := strings.Cut(from.Address, "@")
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultSMTPTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	tlsConfig := &tls.Config{ServerName: cfg.Host, MinVersion: tls.VersionTLS12}
	if cfg.TLSConfig != nil {
		tlsConfig = cfg.TLSConfig.Clone()
		if tlsConfig.ServerName == "" {
			tlsConfig.ServerName = cfg.Host
		}
	}
	opts := []gomail.Option{gomail.WithTimeout(cfg.Timeout), gomail.WithTLSConfig(tlsConfig)}
	switch cfg.Security {
	case StartTLS:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	case ImplicitTLS:
		opts = append(opts, gomail.WithSSL())
	case Plaintext:
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	}
	if cfg.Username != "" {
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover),
			gomail.WithUsername(cfg.Username), gomail.WithPassword(cfg.Password))
	}
	opts = append(opts, gomail.WithPort(cfg.Port)) // last: WithSSL sets a port of its own
	client, err := gomail.NewClient(cfg.Host, opts...)
	if err != nil {
		return nil, fmt.Errorf("smtp client for %s: %w", cfg.Host, err)
	}
	return &SMTP{client: client, from: from.String(), domain: domain, now: cfg.Now}, nil
}

// Send hands m to the server within ctx. The message has m's text body
// and, when m has one, its HTML alternative; a Message-ID made of m's id
// and queueing time (the same on every attempt, so a receiver can tell a
// duplicate), a Date, and, when m.ListUnsubscribe is set, List-Unsubscribe
// with List-Unsubscribe-Post: List-Unsubscribe=One-Click (RFC 8058).
// Errors: a permanent one (Permanent) when the server refuses the mail
// with a 5xx reply; otherwise temporary ones (a 4xx reply, a timeout, a
// refused connection or TLS handshake, a failed authentication).
func (s *SMTP) Send(ctx context.Context, m store.Mail) error {
	msg, err := s.message(m)
	if err != nil {
		return permanentError{err}
	}
	err = s.client.DialAndSendWithContext(ctx, msg)
	if err == nil {
		return nil
	}
	if se, ok := errors.AsType[*gomail.SendError](err); ok && se.ErrorCode() >= 500 && se.ErrorCode() < 600 {
		return permanentError{fmt.Errorf("smtp: %w", err)}
	}
	return fmt.Errorf("smtp: %w", err)
}

// message builds the message of m.
func (s *SMTP) message(m store.Mail) (*gomail.Msg, error) {
	msg := gomail.NewMsg()
	if err := msg.From(s.from); err != nil {
		return nil, fmt.Errorf("from: %w", err)
	}
	if err := msg.To(m.Recipient); err != nil {
		return nil, fmt.Errorf("recipient %q: %w", m.Recipient, err)
	}
	msg.Subject(m.Subject)
	msg.SetMessageIDWithValue(strconv.FormatInt(m.ID, 10) + "." + strconv.FormatInt(m.CreatedAt.UnixMicro(), 10) + "@" + s.domain)
	msg.SetDateWithValue(s.now())
	msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	if m.HTML != "" {
		msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	}
	if m.ListUnsubscribe != "" {
		msg.SetGenHeader(gomail.HeaderListUnsubscribe, "<"+m.ListUnsubscribe+">")
		msg.SetGenHeader(gomail.HeaderListUnsubscribePost, "List-Unsubscribe=One-Click")
	}
	return msg, nil
}
