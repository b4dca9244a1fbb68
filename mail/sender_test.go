package mail_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/obsqra/obsqra"
	obsqramail "github.com/obsqra/obsqra/mail"
	"github.com/obsqra/obsqra/mail/mailtest"
	"github.com/obsqra/obsqra/obsqratest"
	"github.com/obsqra/obsqra/store"
	"github.com/obsqra/obsqra/store/storetest"
)

// attempt is one attempt a Sender settled: the mail as claimed and the
// attempt's error.
type attempt struct {
	mail store.Mail
	err  error
}

// bundle is a running Sender's collaborators.
type bundle struct {
	db       *store.DB
	attempts chan attempt
	log      *obsqratest.Buffer
}

// startSender runs a Sender of db's queue through transport until the test
// ends. Its poll interval is long unless cfg says otherwise, so a mail
// sent at once was sent because its commit woke the Sender.
func startSender(t *testing.T, db *store.DB, transport obsqramail.Transport, cfg obsqramail.Config) *bundle {
	t.Helper()
	b := &bundle{db: db, attempts: make(chan attempt, 100), log: &obsqratest.Buffer{}}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = time.Hour
	}
	cfg.Logger = slog.New(slog.NewJSONHandler(b.log, nil))
	cfg.Settled = func(m store.Mail, err error) { b.attempts <- attempt{m, err} }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		obsqramail.NewSender(db, transport, cfg).Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return b
}

// next returns the Sender's next settled attempt, failing the test after
// 10 s, the longest a mail may take to go out.
func (b *bundle) next(t *testing.T) attempt {
	t.Helper()
	select {
	case a := <-b.attempts:
		return a
	case <-time.After(10 * time.Second):
		t.Fatal("no attempt settled within 10 s")
		return attempt{}
	}
}

// queue queues m in a unit of work of its own.
func queue(t *testing.T, db *store.DB, m *store.Mail) {
	t.Helper()
	if err := db.WithTx(context.Background(), func(tx *store.Tx) error { return tx.QueueMail(context.Background(), m) }); err != nil {
		t.Fatalf("QueueMail = %v", err)
	}
}

// alert returns a mail with every part a mail can have.
func alert() *store.Mail {
	return &store.Mail{Kind: "risk_alert", Recipient: "alice@example.com", Subject: "Risk of Nostra rose to 72",
		Text:            "The risk score of Nostra rose to 72.\nhttps://app.example.com/protocols/nostra\n",
		HTML:            `<p>The risk score of Nostra rose to <b>72</b>.</p>`,
		ListUnsubscribe: "https://api.example.com/unsubscribe?token=u1"}
}

// smtpTransport returns the SMTP transport to srv, trusting roots.
func smtpTransport(t *testing.T, addr string, security obsqramail.Security, roots *x509.CertPool, timeout time.Duration) *obsqramail.SMTP {
	t.Helper()
	tr, err := obsqramail.NewSMTP(obsqramail.SMTPConfig{
		Host: "localhost", Port: mailtest.Port(t, addr), Security: security, Username: mailtest.User, Password: mailtest.Password,
		From: "Obsqra <noreply@obsqra.example>", Timeout: timeout, TLSConfig: &tls.Config{RootCAs: roots},
	})
	if err != nil {
		t.Fatalf("NewSMTP = %v", err)
	}
	return tr
}

// fastRetries are a Config's retries for tests: at once, nearly.
var fastRetries = obsqramail.Config{PollInterval: 20 * time.Millisecond, Backoff: obsqra.Backoff{Base: time.Millisecond, Max: time.Millisecond}}

// TestSenderSendsThroughSTARTTLS queues an alert and follows it to the
// SMTP server: woken by the commit, over STARTTLS with AUTH PLAIN, with
// both parts and every header, recorded as sent once.
func TestSenderSendsThroughSTARTTLS(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		serverTLS, roots := mailtest.TLS(t)
		srv := mailtest.Start(t, serverTLS, mailtest.Options{})
		b := startSender(t, db, smtpTransport(t, srv.Addr, obsqramail.StartTLS, roots, 0), obsqramail.Config{})

		m := alert()
		queued := time.Now()
		queue(t, db, m)
		if a := b.next(t); a.err != nil || a.mail.ID != m.ID {
			t.Fatalf("attempt = mail %d, %v, want mail %d sent", a.mail.ID, a.err, m.ID)
		}
		if took := time.Since(queued); took > 10*time.Second {
			t.Errorf("the mail went out %s after its commit, want within 10 s", took)
		}
		got, err := db.Mail(context.Background(), m.ID)
		if err != nil || got.SentAt == nil || got.Attempts != 1 || got.FailedAt != nil {
			t.Fatalf("Mail(%d) = %+v, %v, want sent at the first attempt", m.ID, got, err)
		}

		messages, _ := srv.Snapshot()
		if len(messages) != 1 {
			t.Fatalf("the server received %d messages, want 1", len(messages))
		}
		r := messages[0]
		if !r.TLS || !r.Authed || r.From != "noreply@obsqra.example" || len(r.To) != 1 || r.To[0] != "alice@example.com" {
			t.Fatalf("received from %q to %v (tls %t, authenticated %t), want from noreply@obsqra.example to alice@example.com over TLS, authenticated",
				r.From, r.To, r.TLS, r.Authed)
		}
		checkMessage(t, r.Data, m)
	})
}

// checkMessage checks the headers and parts of a message sent for m.
func checkMessage(t *testing.T, data []byte, m *store.Mail) {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("read message: %v\n%s", err, data)
	}
	h := msg.Header
	subject, _ := new(mime.WordDecoder).DecodeHeader(h.Get("Subject"))
	for name, want := range map[string]string{
		"From":                  `"Obsqra" <noreply@obsqra.example>`,
		"To":                    "<alice@example.com>",
		"List-Unsubscribe":      "<" + m.ListUnsubscribe + ">",
		"List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
	} {
		if got := h.Get(name); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
	if subject != m.Subject {
		t.Errorf("Subject: %q, want %q", subject, m.Subject)
	}
	if id := h.Get("Message-ID"); !strings.HasPrefix(id, "<") || !strings.HasSuffix(id, "@obsqra.example>") {
		t.Errorf("Message-ID: %q, want <…@obsqra.example>", id)
	}
	if _, err := h.Date(); err != nil {
		t.Errorf("Date: %q: %v", h.Get("Date"), err)
	}
	if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, "multipart/alternative") {
		t.Errorf("Content-Type: %q, want multipart/alternative", ct)
	}
	body, _ := io.ReadAll(msg.Body)
	for _, part := range []string{"Content-Type: text/plain", "Content-Type: text/html", "https://app.example.com/protocols/nostra", "<b>72</b>"} {
		if !bytes.Contains(body, []byte(part)) {
			t.Errorf("body lacks %q:\n%s", part, body)
		}
	}
}

// TestSenderRetriesTemporaryRefusal has the server answer 451 to the first
// attempt: the mail is retried after its backoff and sent once.
func TestSenderRetriesTemporaryRefusal(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		serverTLS, roots := mailtest.TLS(t)
		srv := mailtest.Start(t, serverTLS, mailtest.Options{})
		srv.Refuse(func(n int) error {
			if n == 1 {
				return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"}
			}
			return nil
		})
		b := startSender(t, db, smtpTransport(t, srv.Addr, obsqramail.StartTLS, roots, 0), fastRetries)

		m := alert()
		queue(t, db, m)
		first := b.next(t)
		if first.err == nil || obsqramail.Permanent(first.err) || !strings.Contains(first.err.Error(), "451") {
			t.Fatalf("first attempt = %v, want a temporary 451", first.err)
		}
		if second := b.next(t); second.err != nil || second.mail.Attempts != 2 {
			t.Fatalf("second attempt = %v (attempt %d), want attempt 2 sent", second.err, second.mail.Attempts)
		}
		got, err := db.Mail(context.Background(), m.ID)
		if err != nil || got.SentAt == nil || got.Attempts != 2 || !strings.Contains(got.LastError, "451") {
			t.Fatalf("Mail(%d) = %+v, %v, want sent at attempt 2 after a 451", m.ID, got, err)
		}
		if messages, attempts := srv.Snapshot(); len(messages) != 1 || attempts != 2 {
			t.Fatalf("the server received %d messages in %d attempts, want 1 in 2", len(messages), attempts)
		}
	})
}

// TestSenderGivesUpOnPermanentRefusal has the server refuse the recipient
// with 550: the mail is failed at once, never retried, and admins see it.
func TestSenderGivesUpOnPermanentRefusal(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		serverTLS, roots := mailtest.TLS(t)
		srv := mailtest.Start(t, serverTLS, mailtest.Options{})
		srv.RefuseRecipients(&smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"})
		b := startSender(t, db, smtpTransport(t, srv.Addr, obsqramail.StartTLS, roots, 0), fastRetries)

		m := alert()
		queue(t, db, m)
		if a := b.next(t); !obsqramail.Permanent(a.err) {
			t.Fatalf("attempt = %v, want a permanent error", a.err)
		}
		failed, err := db.FailedMails(context.Background(), 10)
		if err != nil || len(failed) != 1 || failed[0].ID != m.ID || failed[0].Attempts != 1 ||
			!strings.Contains(failed[0].LastError, "550") || !strings.Contains(failed[0].LastError, "no such user") {
			t.Fatalf("FailedMails = %+v, %v, want mail %d after one attempt with the 550", failed, err, m.ID)
		}
		// A later mail goes through the same loop: had the failed one been
		// retried, it would have settled before this one.
		srv.RefuseRecipients(nil)
		later := alert()
		queue(t, db, later)
		if a := b.next(t); a.mail.ID != later.ID || a.err != nil {
			t.Fatalf("next attempt = mail %d, %v, want mail %d sent", a.mail.ID, a.err, later.ID)
		}
		if _, attempts := srv.Snapshot(); attempts != 2 {
			t.Fatalf("the server saw %d attempts, want 2 (the refused mail once)", attempts)
		}
	})
}

// TestSenderRetriesTimeouts points the Sender at a server that never
// answers: each attempt ends with the configured timeout and is retried.
func TestSenderRetriesTimeouts(t *testing.T) {
	t.Parallel()
	db := storetest.SQLite(t)
	srv := mailtest.StartSilent(t)
	cfg := fastRetries
	cfg.SendTimeout = 5 * time.Second // the SMTP timeout below ends the attempts first
	b := startSender(t, db, smtpTransport(t, srv.Addr, obsqramail.StartTLS, nil, 200*time.Millisecond), cfg)

	m := alert()
	queue(t, db, m)
	start := time.Now()
	for i := range 2 {
		if a := b.next(t); a.err == nil || obsqramail.Permanent(a.err) || a.mail.Attempts != i+1 {
			t.Fatalf("attempt %d = %v (attempt %d), want a temporary error", i+1, a.err, a.mail.Attempts)
		}
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("two timed-out attempts took %s, want about 400ms", took)
	}
	if n := srv.Connections(); n < 2 {
		t.Errorf("the silent server saw %d connections, want at least 2", n)
	}
	got, err := db.Mail(context.Background(), m.ID)
	if err != nil || got.SentAt != nil || got.FailedAt != nil || got.LastError == "" {
		t.Fatalf("Mail(%d) = %+v, %v, want neither sent nor failed, with its last error", m.ID, got, err)
	}
}

// TestSenderGivesUpAfterMaxAttempts fails a mail whose every attempt fails
// for now once it has had MaxAttempts.
func TestSenderGivesUpAfterMaxAttempts(t *testing.T) {
	t.Parallel()
	db := storetest.SQLite(t)
	cfg := fastRetries
	cfg.MaxAttempts = 2
	b := startSender(t, db, transportFunc(func(context.Context, store.Mail) error { return errors.New("connection refused") }), cfg)
	m := alert()
	queue(t, db, m)
	b.next(t)
	b.next(t)
	failed, err := db.FailedMails(context.Background(), 10)
	if err != nil || len(failed) != 1 || failed[0].Attempts != 2 || failed[0].LastError != "connection refused" {
		t.Fatalf("FailedMails = %+v, %v, want the mail after 2 attempts", failed, err)
	}
}

// transportFunc is a Transport made of a function.
type transportFunc func(ctx context.Context, m store.Mail) error

func (f transportFunc) Send(ctx context.Context, m store.Mail) error { return f(ctx, m) }

// TestSMTPSecurity checks the connection's protection: implicit TLS
// works, STARTTLS is required, and an untrusted certificate is refused.
func TestSMTPSecurity(t *testing.T) {
	t.Parallel()
	serverTLS, roots := mailtest.TLS(t)
	ctx := context.Background()
	m := *alert()

	t.Run("implicit TLS", func(t *testing.T) {
		t.Parallel()
		srv := mailtest.Start(t, serverTLS, mailtest.Options{Implicit: true})
		if err := smtpTransport(t, srv.Addr, obsqramail.ImplicitTLS, roots, 0).Send(ctx, m); err != nil {
			t.Fatalf("Send = %v, want nil", err)
		}
		if messages, _ := srv.Snapshot(); len(messages) != 1 || !messages[0].TLS {
			t.Fatalf("received %d messages, want 1 over TLS", len(messages))
		}
	})
	t.Run("no STARTTLS", func(t *testing.T) {
		t.Parallel()
		srv := mailtest.Start(t, serverTLS, mailtest.Options{NoTLS: true})
		err := smtpTransport(t, srv.Addr, obsqramail.StartTLS, roots, 0).Send(ctx, m)
		if err == nil || obsqramail.Permanent(err) || !strings.Contains(err.Error(), "STARTTLS") {
			t.Fatalf("Send = %v, want a temporary error about STARTTLS", err)
		}
		if messages, _ := srv.Snapshot(); len(messages) != 0 {
			t.Fatalf("received %d messages over plain text, want none", len(messages))
		}
	})
	t.Run("untrusted certificate", func(t *testing.T) {
		t.Parallel()
		srv := mailtest.Start(t, serverTLS, mailtest.Options{})
		err := smtpTransport(t, srv.Addr, obsqramail.StartTLS, x509.NewCertPool(), 0).Send(ctx, m)
		if err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("Send = %v, want a certificate error", err)
		}
	})
}

// TestLogTransport is development without SMTP_URL: a queued mail is
// logged, with its link, and recorded as sent.
func TestLogTransport(t *testing.T) {
	t.Parallel()
	db := storetest.SQLite(t)
	var out obsqratest.Buffer
	b := startSender(t, db, obsqramail.Log{Logger: slog.New(slog.NewJSONHandler(&out, nil))}, obsqramail.Config{})
	m := &store.Mail{Kind: "verify_email", Recipient: "bob@example.com", Subject: "Verify your email",
		Text: "Open http://localhost:5173/verify-email?token=abc to verify your email."}
	queue(t, db, m)
	if a := b.next(t); a.err != nil {
		t.Fatalf("attempt = %v, want nil", a.err)
	}
	entries := out.Entries(t, "to", "bob@example.com")
	if len(entries) != 1 || entries[0]["subject"] != m.Subject || !strings.Contains(entries[0]["text"].(string), "/verify-email?token=abc") {
		t.Fatalf("log entries for bob = %v, want one with the subject and the link", entries)
	}
	if got, err := db.Mail(context.Background(), m.ID); err != nil || got.SentAt == nil {
		t.Fatalf("Mail(%d) = %+v, %v, want sent", m.ID, got, err)
	}
}
