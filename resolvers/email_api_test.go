package resolvers_test

import (
	"context"
	"encoding/json"
	"net/url"
	"regexp"
	"sync"
	"testing"

	"github.com/obsqra/obsqra/account"
	"github.com/obsqra/obsqra/store"
	"github.com/obsqra/obsqra/store/storetest"
)

// mailbox records what the account service queues.
type mailbox struct {
	mu    sync.Mutex
	mails []account.Mail
}

func (m *mailbox) queue(_ context.Context, _ *store.Tx, mail account.Mail) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.mails = append(m.mails, mail)
	return nil
}

var linkToken = regexp.MustCompile(`https://app\.example\.com(/[a-z-]+)\?token=([A-Za-z0-9_%-]+)`)

// last returns the token of the newest mail's link to path.
func (m *mailbox) last(t *testing.T, path string) string {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.mails) == 0 {
		t.Fatal("no mail")
	}
	match := linkToken.FindStringSubmatch(m.mails[len(m.mails)-1].Text)
	if match == nil || match[1] != path {
		t.Fatalf("the newest mail has no link to %s: %q", path, m.mails[len(m.mails)-1].Text)
	}
	token, _ := url.QueryUnescape(match[2])
	return token
}

// TestEmailFlowsAPI runs verification and password reset through the
// API: the mails carry the links, a link works once, and a reset signs
// every session out.
func TestEmailFlowsAPI(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		box := &mailbox{}
		h, _ := newHandler(t, db, account.Config{BcryptCost: 4, Mail: box.queue, PublicAppURL: "https://app.example.com"})
		ada := registerVia(t, h, "ada@example.com")
		verify := box.last(t, "/verify-email")

		r := do(t, h, "", `mutation($t: String!) { verifyEmail(token: $t) { email emailVerified } }`, map[string]any{"t": verify})
		if string(r.Data["verifyEmail"]) != `{"email":"ada@example.com","emailVerified":true}` {
			t.Fatalf("verifyEmail = %s %+v", r.Data["verifyEmail"], r.Errors)
		}
		r = do(t, h, "", `mutation($t: String!) { verifyEmail(token: $t) { id } }`, map[string]any{"t": verify})
		if r.code() != "NOT_FOUND" {
			t.Errorf("verifyEmail replayed: %+v, want NOT_FOUND", r.Errors)
		}
		if r := do(t, h, ada.AccessToken, `mutation { resendVerification }`, nil); r.code() != "BAD_USER_INPUT" {
			t.Errorf("resendVerification when verified: %+v, want BAD_USER_INPUT", r.Errors)
		}

		for _, email := range []string{"nobody@example.com", "ada@example.com"} {
			r := do(t, h, "", `mutation($e: String!) { requestPasswordReset(email: $e) }`, map[string]any{"e": email})
			if string(r.Data["requestPasswordReset"]) != "true" || len(r.Errors) > 0 {
				t.Fatalf("requestPasswordReset(%s) = %s %+v", email, r.Data["requestPasswordReset"], r.Errors)
			}
		}
		reset := box.last(t, "/reset-password")
		const q = `mutation($t: String!, $p: String!) { resetPassword(input: {token: $t, newPassword: $p}) }`
		if r := do(t, h, "", q, map[string]any{"t": reset, "p": "short"}); r.code() != "BAD_USER_INPUT" {
			t.Errorf("a short password: %+v", r.Errors)
		}
		if r := do(t, h, "", q, map[string]any{"t": reset, "p": "battery staple"}); string(r.Data["resetPassword"]) != "true" {
			t.Fatalf("resetPassword = %s %+v", r.Data["resetPassword"], r.Errors)
		}
		if r := do(t, h, "", q, map[string]any{"t": reset, "p": "battery staple 2"}); r.code() != "NOT_FOUND" {
			t.Errorf("resetPassword replayed: %+v, want NOT_FOUND", r.Errors)
		}
		if r := do(t, h, ada.AccessToken, `{ me { email } }`, nil); r.code() != "UNAUTHENTICATED" {
			t.Errorf("a session from before the reset: %s %+v, want UNAUTHENTICATED", r.Data["me"], r.Errors)
		}
		r = do(t, h, "", `mutation { login(input: {email: "ada@example.com", password: "battery staple"}) { accessToken } }`, nil)
		if len(r.Errors) > 0 {
			t.Fatalf("login with the new password: %+v", r.Errors)
		}
		var login struct{ AccessToken string }
		if err := json.Unmarshal(r.Data["login"], &login); err != nil {
			t.Fatal(err)
		}

		// changeEmail mails a link to the new address; following it moves
		// the account.
		const change = `mutation($e: String!, $p: String!) { changeEmail(input: {newEmail: $e, password: $p}) }`
		if r := do(t, h, login.AccessToken, change, map[string]any{"e": "ada@new.example", "p": "wrong horse"}); r.code() != "FORBIDDEN" {
			t.Errorf("changeEmail with a wrong password: %+v, want FORBIDDEN", r.Errors)
		}
		if r := do(t, h, login.AccessToken, change, map[string]any{"e": "ada@new.example", "p": "battery staple"}); string(r.Data["changeEmail"]) != "true" {
			t.Fatalf("changeEmail = %s %+v", r.Data["changeEmail"], r.Errors)
		}
		moved := box.last(t, "/verify-email")
		r = do(t, h, "", `mutation($t: String!) { verifyEmail(token: $t) { email emailVerified } }`, map[string]any{"t": moved})
		if string(r.Data["verifyEmail"]) != `{"email":"ada@new.example","emailVerified":true}` {
			t.Errorf("verifyEmail of the change = %s %+v", r.Data["verifyEmail"], r.Errors)
		}
	})
}
