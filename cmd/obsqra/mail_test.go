package main

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/obsqra/obsqra/config"
	"github.com/obsqra/obsqra/mail"
	"github.com/obsqra/obsqra/obsqratest"
	"github.com/obsqra/obsqra/store"
)

func TestNewMailTransport(t *testing.T) {
	t.Parallel()
	var out obsqratest.Buffer
	logger := slog.New(slog.NewJSONHandler(&out, nil))

	dev, err := config.Load(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	tr, err := newMailTransport(dev, logger)
	if err != nil {
		t.Fatalf("newMailTransport(no SMTP_URL) = %v", err)
	}
	if _, ok := tr.(mail.Log); !ok {
		t.Fatalf("newMailTransport(no SMTP_URL) = %T, want mail.Log", tr)
	}
	m := store.Mail{ID: 1, Kind: "verify_email", Recipient: "a@example.com", Subject: "Verify",
		Text: "http://localhost:5173/verify-email?token=t"}
	if err := tr.Send(context.Background(), m); err != nil || !strings.Contains(out.String(), "verify-email?token=t") {
		t.Fatalf("Send through the log = %v, log %s, want the link logged", err, out.String())
	}

	for _, security := range []string{"smtp", "smtps", "smtp+insecure"} {
		env := map[string]string{"SMTP_URL": security + "://mailer:pw@smtp.example.com"}
		cfg, err := config.Load(func(k string) string { return env[k] })
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := mailSecurities[cfg.SMTP.Security]; !ok {
			t.Errorf("SMTP_URL=%s://…: security %q has no mail.Security", security, cfg.SMTP.Security)
		}
		tr, err := newMailTransport(cfg, logger)
		if _, ok := tr.(*mail.SMTP); err != nil || !ok {
			t.Errorf("newMailTransport(SMTP_URL=%s://…) = %T, %v, want *mail.SMTP", security, tr, err)
		}
	}
}
