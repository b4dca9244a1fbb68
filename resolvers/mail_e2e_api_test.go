package resolvers_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/account"
	obsqramail "github.com/obsqra/obsqra/mail"
	"github.com/obsqra/obsqra/mail/mailtest"
	"github.com/obsqra/obsqra/store"
	"github.com/obsqra/obsqra/store/storetest"
)

// delivered is a mail as the SMTP server received it: its recipient,
// subject and plain-text part, decoded.
type delivered struct {
	to, subject, text string
}

// readDelivered decodes m, failing the test on anything unreadable.
func readDelivered(t *testing.T, m mailtest.Message) delivered {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(m.Data))
	if err != nil {
		t.Fatalf("read message: %v\n%s", err, m.Data)
	}
	subject, _ := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	d := delivered{subject: subject}
	if len(m.To) == 1 {
		d.to = m.To[0]
	}
	_, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		t.Fatalf("Content-Type %q: %v", msg.Header.Get("Content-Type"), err)
	}
	parts := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := parts.NextPart()
		if err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("read part: %v", err)
		}
		if !strings.HasPrefix(p.Header.Get("Content-Type"), "text/plain") {
			continue
		}
		var r io.Reader = p
		switch strings.ToLower(p.Header.Get("Content-Transfer-Encoding")) {
		case "quoted-printable":
			r = quotedprintable.NewReader(p)
		case "base64":
			r = base64.NewDecoder(base64.StdEncoding, p)
		}
		b, err := io.ReadAll(r)
		if err != nil {
			t.Fatalf("decode text part: %v", err)
		}
		d.text = string(b)
	}
	if d.text == "" {
		t.Fatalf("no text part in\n%s", m.Data)
	}
	return d
}

// link returns the token of d's link to path.
func (d delivered) link(t *testing.T, path string) string {
	t.Helper()
	match := linkToken.FindStringSubmatch(d.text)
	if match == nil || match[1] != path {
		t.Fatalf("the mail %q to %s has no link to %s: %q", d.subject, d.to, path, d.text)
	}
	token, _ := url.QueryUnescape(match[2])
	return token
}

// TestMailFlowsEndToEnd follows every account mail from the API to a real
// SMTP server (STARTTLS, AUTH) through the store's queue and the sender, on
// both databases: the verification link of a registration, a password
// reset and the notice that the password changed, an email change with its
// link to the new address and the notice to the old one. Each link works
// once.
func TestMailFlowsEndToEnd(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		h, _ := newHandler(t, db, account.Config{BcryptCost: 4, PublicAppURL: "https://app.example.com"})
		serverTLS, roots := mailtest.TLS(t)
		srv := mailtest.Start(t, serverTLS, mailtest.Options{})
		smtp, err := obsqramail.NewSMTP(obsqramail.SMTPConfig{Host: "localhost", Port: mailtest.Port(t, srv.Addr), Security: obsqramail.StartTLS,
			Username: mailtest.User, Password: mailtest.Password, From: "Obsqra <noreply@obsqra.example>", TLSConfig: &tls.Config{RootCAs: roots}})
		if err != nil {
			t.Fatal(err)
		}
		sender := obsqramail.NewSender(db, smtp, obsqramail.Config{PollInterval: 50 * time.Millisecond,
			Backoff: obsqra.Backoff{Base: time.Millisecond, Max: time.Millisecond}, Logger: slog.New(slog.DiscardHandler)})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); sender.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
		received := 0
		next := func(t *testing.T) delivered {
			t.Helper()
			wctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			ms, err := srv.Wait(wctx, received+1)
			if err != nil {
				t.Fatalf("mail %d did not reach the SMTP server within 10 s: %v", received+1, err)
			}
			received++
			m := ms[received-1]
			if !m.TLS || !m.Authed {
				t.Errorf("mail %d went over TLS %t, authenticated %t", received, m.TLS, m.Authed)
			}
			return readDelivered(t, m)
		}
		mutate := func(t *testing.T, token, query string, vars map[string]any) gqlResponse {
			t.Helper()
			r := do(t, h, token, query, vars)
			if len(r.Errors) > 0 {
				t.Fatalf("%s: %+v", query, r.Errors)
			}
			return r
		}

		ada := registerVia(t, h, "ada@example.com")
		t.Run("verification", func(t *testing.T) {
			m := next(t)
			if m.to != "ada@example.com" || m.subject != "Confirm your email address" {
				t.Fatalf("first mail to %s: %q", m.to, m.subject)
			}
			token := m.link(t, "/verify-email")
			r := mutate(t, "", `mutation($t: String!) { verifyEmail(token: $t) { emailVerified } }`, map[string]any{"t": token})
			if string(r.Data["verifyEmail"]) != `{"emailVerified":true}` {
				t.Fatalf("verifyEmail = %s", r.Data["verifyEmail"])
			}
			if r := do(t, h, "", `mutation($t: String!) { verifyEmail(token: $t) { emailVerified } }`, map[string]any{"t": token}); r.code() != "NOT_FOUND" {
				t.Errorf("the link followed again: %+v, want NOT_FOUND", r.Errors)
			}
		})
		t.Run("password reset", func(t *testing.T) {
			mutate(t, "", `mutation { requestPasswordReset(email: "ada@example.com") }`, nil)
			m := next(t)
			token := m.link(t, "/reset-password")
			mutate(t, "", `mutation($t: String!) { resetPassword(input: {token: $t, newPassword: "battery staple"}) }`, map[string]any{"t": token})
			if changed := next(t); changed.to != "ada@example.com" || !strings.Contains(strings.ToLower(changed.subject), "password") {
				t.Errorf("after the reset: a mail to %s, %q; want the notice that the password changed", changed.to, changed.subject)
			}
			if r := do(t, h, ada.AccessToken, `{ me { id } }`, nil); r.code() != "UNAUTHENTICATED" {
				t.Errorf("the session before the reset: %+v, want UNAUTHENTICATED", r.Errors)
			}
			if r := do(t, h, "", `mutation($t: String!) { resetPassword(input: {token: $t, newPassword: "other staple"}) }`, map[string]any{"t": token}); r.code() != "NOT_FOUND" {
				t.Errorf("the reset link used again: %+v, want NOT_FOUND", r.Errors)
			}
		})
		t.Run("email change", func(t *testing.T) {
			r := mutate(t, "", `mutation { login(input: {email: "ada@example.com", password: "battery staple"}) { accessToken } }`, nil)
			var login struct{ AccessToken string }
			if err := json.Unmarshal(r.Data["login"], &login); err != nil {
				t.Fatal(err)
			}
			mutate(t, login.AccessToken, `mutation { changeEmail(input: {newEmail: "ada@new.example", password: "battery staple"}) }`, nil)
			m := next(t)
			if m.to != "ada@new.example" {
				t.Fatalf("the change's link went to %s, want the new address", m.to)
			}
			mutate(t, "", `mutation($t: String!) { verifyEmail(token: $t) { email } }`, map[string]any{"t": m.link(t, "/verify-email")})
			if old := next(t); old.to != "ada@example.com" {
				t.Errorf("after the change: a mail to %s, want the notice to the old address", old.to)
			}
			r = mutate(t, login.AccessToken, `{ me { email emailVerified } }`, nil)
			if string(r.Data["me"]) != `{"email":"ada@new.example","emailVerified":true}` {
				t.Errorf("me after the change: %s", r.Data["me"])
			}
		})
	})
}
