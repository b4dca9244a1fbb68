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
	"net/http"
	"net/http/httptest"
	"net/mail"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/account"
	"github.com/obsqra/obsqra/alert"
	"github.com/obsqra/obsqra/live"
	obsqramail "github.com/obsqra/obsqra/mail"
	"github.com/obsqra/obsqra/mail/mailtest"
	"github.com/obsqra/obsqra/market"
	"github.com/obsqra/obsqra/server"
	"github.com/obsqra/obsqra/store"
	"github.com/obsqra/obsqra/store/storetest"
)

// delivered is a mail as the SMTP server received it: its recipient,
// header, subject and plain-text part, decoded.
type delivered struct {
	to, subject, text string
	header            mail.Header
}

// anyLink is a link's token, whatever its base URL.
var anyLink = regexp.MustCompile(`\?token=([A-Za-z0-9_%-]+)`)

// startMailing starts a real SMTP server (STARTTLS, AUTH) and the mail
// sender of db's queue handing mails to it, until the test ends; next
// waits (10 s at most) for the next mail the server accepts.
func startMailing(t *testing.T, db *store.DB) (*mailtest.Server, func(t *testing.T) delivered) {
	t.Helper()
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
	var mu sync.Mutex
	received := 0
	return srv, func(t *testing.T) delivered {
		t.Helper()
		mu.Lock()
		defer mu.Unlock()
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
}

// readDelivered decodes m, failing the test on anything unreadable.
func readDelivered(t *testing.T, m mailtest.Message) delivered {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(m.Data))
	if err != nil {
		t.Fatalf("read message: %v\n%s", err, m.Data)
	}
	subject, _ := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	d := delivered{subject: subject, header: msg.Header}
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
		h, accounts := newHandler(t, db, account.Config{BcryptCost: 4, PublicAppURL: "https://app.example.com"})
		runCtx, stopRuns := context.WithCancel(context.Background())
		runsDone := make(chan struct{})
		go func() { defer close(runsDone); accounts.RunEmailRequests(runCtx) }()
		t.Cleanup(func() { stopRuns(); <-runsDone })
		_, next := startMailing(t, db)
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

// TestAlertEndToEnd follows an alert from the API to the inbox and back:
// a verified user (the link read from the SMTP server) holds zklend; its
// risk rises; the alerts job mails a digest that reaches the SMTP server
// with a one-click List-Unsubscribe; POSTing that link, as a mail client
// does, turns the user's alerts off.
func TestAlertEndToEnd(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		alerts, err := alert.New(db, alert.Config{RiskDelta: 1, Secret: []byte("end-to-end alerts' secret"), PublicAPIURL: "https://api.example.com"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := alerts.Collect(ctx); err != nil { // the cursor starts at the newest event
			t.Fatal(err)
		}
		s := newLiveServerWith(t, db, live.Options{Logger: slog.New(slog.DiscardHandler)}, market.Config{},
			func(c *server.Config) { c.Unsubscriber = alerts })
		h := s.srv.Config.Handler
		_, next := startMailing(t, db)

		// PUBLIC_APP_URL is the account service's default here: take the
		// token from the mail, whatever its base.
		ada := registerVia(t, h, "ada@example.com")
		// (The admin's verification mail goes out too.)
		nextTo := func(t *testing.T, to string) delivered {
			t.Helper()
			for {
				if m := next(t); m.to == to {
					return m
				}
			}
		}
		verify := nextTo(t, "ada@example.com")
		token := anyLink.FindStringSubmatch(verify.text)
		if token == nil {
			t.Fatalf("no verification link in %q", verify.text)
		}
		v, _ := url.QueryUnescape(token[1])
		if r := do(t, h, "", `mutation($t: String!) { verifyEmail(token: $t) { emailVerified } }`, map[string]any{"t": v}); len(r.Errors) > 0 {
			t.Fatal(r.Errors)
		}
		now := time.Now().UTC().Truncate(time.Second)
		ingestUtilization := func(at time.Time, utilization int) {
			r := do(t, h, s.admin, `mutation($in: [MetricsInput!]!) { ingestMetrics(input: $in) { id } }`, map[string]any{"in": []map[string]any{
				{"protocol": "zklend", "observedAt": at.Format(time.RFC3339), "apyBps": 400, "utilizationBps": utilization}}})
			if len(r.Errors) > 0 {
				t.Fatal(r.Errors)
			}
		}
		ingestUtilization(now.Add(-2*time.Hour), 1000)
		recordAllocation(t, &cachedInstance{liveServer: s}, ada.AccessToken, 0)
		ingestUtilization(now.Add(-time.Hour), 9800)
		if err := alerts.Run(ctx); err != nil {
			t.Fatal(err)
		}
		m := nextTo(t, "ada@example.com")
		if !strings.Contains(m.text, "zklend") && !strings.Contains(m.text, "zkLend") {
			t.Fatalf("alert mail to %s: %q %q", m.to, m.subject, m.text)
		}
		if m.header.Get("List-Unsubscribe-Post") != "List-Unsubscribe=One-Click" {
			t.Errorf("List-Unsubscribe-Post: %q", m.header.Get("List-Unsubscribe-Post"))
		}
		link := strings.Trim(m.header.Get("List-Unsubscribe"), "<>")
		u, err := url.Parse(link)
		if err != nil || u.Host != "api.example.com" || u.Path != "/unsubscribe" {
			t.Fatalf("List-Unsubscribe: %q", m.header.Get("List-Unsubscribe"))
		}
		req := httptest.NewRequest(http.MethodPost, u.RequestURI(), strings.NewReader("List-Unsubscribe=One-Click"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			t.Fatalf("POST %s = %d %s", u.RequestURI(), rec.Code, rec.Body)
		}
		r := do(t, h, ada.AccessToken, `{ me { preferences { emailAlerts } } }`, nil)
		if string(r.Data["me"]) != `{"preferences":{"emailAlerts":false}}` {
			t.Errorf("me after the one-click unsubscribe: %s %+v", r.Data["me"], r.Errors)
		}
	})
}

// TestRegisterRevealsNothingEndToEnd: with REQUIRE_EMAIL_VERIFICATION,
// through the API to a real SMTP server on both databases: a new email's
// verification link arrives, signing in waits for it, and registering the
// (now verified) email again mails its owner a notice instead, with the
// same answer.
func TestRegisterRevealsNothingEndToEnd(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		h, _ := newHandler(t, db, account.Config{BcryptCost: 4, PublicAppURL: "https://app.example.com", RequireEmailVerification: true})
		_, next := startMailing(t, db)
		const register = `mutation { register(input: {email: "ada@example.com", password: "correct horse", fullName: "Ada"}) { signedIn auth { accessToken } } }`
		const login = `mutation { login(input: {email: "ada@example.com", password: "correct horse"}) { accessToken } }`
		first := rawPost(t, h, "203.0.113.5:4321", "", register, nil)
		if string(first) != `{"data":{"register":{"signedIn":false,"auth":null}}}` {
			t.Fatalf("register = %s", first)
		}
		link := next(t)
		if link.to != "ada@example.com" || link.subject != "Confirm your email address" {
			t.Fatalf("first mail to %s: %q", link.to, link.subject)
		}
		if r := do(t, h, "", login, nil); r.code() != "FORBIDDEN" || r.Errors[0].Extensions["reason"] != "EMAIL_NOT_VERIFIED" {
			t.Fatalf("login before verifying: %+v", r.Errors)
		}
		if r := do(t, h, "", `mutation($t: String!) { verifyEmail(token: $t) { emailVerified } }`, map[string]any{"t": link.link(t, "/verify-email")}); len(r.Errors) > 0 {
			t.Fatal(r.Errors)
		}
		if r := do(t, h, "", login, nil); len(r.Errors) > 0 {
			t.Fatalf("login after verifying: %+v", r.Errors)
		}
		if again := rawPost(t, h, "203.0.113.5:4321", "", register, nil); !bytes.Equal(again, first) {
			t.Errorf("registering the verified email again: %s, want %s", again, first)
		}
		if notice := next(t); notice.to != "ada@example.com" || notice.subject != "Someone tried to sign up with your address" {
			t.Errorf("after the second registration: a mail to %s, %q; want the notice", notice.to, notice.subject)
		}
	})
}
