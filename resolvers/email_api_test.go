package resolvers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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
		h, accounts := newHandler(t, db, account.Config{BcryptCost: 4, Mail: box.queue, PublicAppURL: "https://app.example.com"})
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
		if _, err := accounts.ProcessEmailRequests(context.Background()); err != nil { // the runner's work
			t.Fatal(err)
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

// rawPost posts a GraphQL request through h and returns the response's
// bytes.
func rawPost(t *testing.T, h http.Handler, peer, token, query string, vars map[string]any) []byte {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req := httptest.NewRequest(http.MethodPost, "/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.RemoteAddr = peer
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Body.Bytes()
}

// queued claims every mail due in db's queue (the sender's way of reading
// it) and returns them.
func queued(t *testing.T, db *store.DB) []store.Mail {
	t.Helper()
	ms, err := db.ClaimMails(context.Background(), 100, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

// TestRegisterRevealsNothing: with REQUIRE_EMAIL_VERIFICATION, registering
// a new and a registered email gives the same bytes after the same
// password hashing, with exactly one mail queued either way (the link, or
// the notice to the address's owner, capped per recipient); signing in
// before verifying is FORBIDDEN with reason EMAIL_NOT_VERIFIED, after it
// works; a verification link can be asked for without signing in, with
// the same answer for any email.
func TestRegisterRevealsNothing(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		h, accounts := newHandler(t, db, account.Config{BcryptCost: 4, PublicAppURL: "https://app.example.com", RequireEmailVerification: true,
			Throttle: account.ThrottlePolicy{RegisterLimit: 100}})
		var hashes atomic.Int64
		hash := accounts.Hash
		accounts.Hash = func(pw []byte, cost int) ([]byte, error) { hashes.Add(1); return hash(pw, cost) }
		const register = `mutation($in: RegisterInput!) { register(input: $in) { signedIn auth { accessToken } } }`
		signUp := func(email, password string) ([]byte, int64, []store.Mail) {
			before := hashes.Load()
			b := rawPost(t, h, "203.0.113.5:4321", "", register, map[string]any{"in": map[string]any{"email": email, "password": password, "fullName": "Ada"}})
			return b, hashes.Load() - before, queued(t, db)
		}
		const login = `mutation($e: String!) { login(input: {email: $e, password: "correct horse"}) { accessToken } }`

		first, firstHashes, firstMails := signUp("ada@example.com", "correct horse")
		if string(first) != `{"data":{"register":{"signedIn":false,"auth":null}}}` {
			t.Fatalf("register = %s", first)
		}
		if len(firstMails) != 1 || firstMails[0].Kind != account.MailVerifyEmail || firstMails[0].Recipient != "ada@example.com" {
			t.Fatalf("mails after registering: %+v, want one verification", firstMails)
		}
		r := do(t, h, "", login, map[string]any{"e": "ada@example.com"})
		if r.code() != "FORBIDDEN" || r.Errors[0].Extensions["reason"] != "EMAIL_NOT_VERIFIED" {
			t.Fatalf("login before verifying: %+v, want FORBIDDEN with reason EMAIL_NOT_VERIFIED", r.Errors)
		}
		// Without signing in, a link can be asked for: the same answer
		// for a stranger's address; within 10 minutes of the first link,
		// none goes out.
		for _, e := range []string{"nobody@example.com", "ada@example.com"} {
			if b := rawPost(t, h, "203.0.113.5:4321", "", `mutation($e: String) { resendVerification(email: $e) }`, map[string]any{"e": e}); string(b) != `{"data":{"resendVerification":true}}` {
				t.Errorf("resendVerification(%s) = %s", e, b)
			}
		}
		if ms := queued(t, db); len(ms) != 0 {
			t.Errorf("resends within 10 minutes of the link queued %+v", ms)
		}
		token := linkToken.FindStringSubmatch(firstMails[0].Text)
		if token == nil {
			t.Fatalf("no link in %q", firstMails[0].Text)
		}
		v, _ := url.QueryUnescape(token[2])
		if r := do(t, h, "", `mutation($t: String!) { verifyEmail(token: $t) { emailVerified } }`, map[string]any{"t": v}); len(r.Errors) > 0 {
			t.Fatal(r.Errors)
		}
		if r := do(t, h, "", login, map[string]any{"e": "ada@example.com"}); len(r.Errors) > 0 {
			t.Fatalf("login after verifying: %+v", r.Errors)
		}

		// A registered (verified) email and a new one: the same bytes and
		// hashing, one mail each.
		taken, takenHashes, takenMails := signUp("ADA@example.com", "another horse")
		fresh, freshHashes, freshMails := signUp("bob@example.com", "another horse")
		if !bytes.Equal(taken, fresh) || !bytes.Equal(taken, first) {
			t.Errorf("registered email answered %s, new email %s", taken, fresh)
		}
		if takenHashes != 1 || freshHashes != 1 || firstHashes != 1 {
			t.Errorf("password hashes: registered %d, new %d, first %d; want 1 each", takenHashes, freshHashes, firstHashes)
		}
		if len(takenMails) != 1 || takenMails[0].Kind != account.MailSignUpAttempt || takenMails[0].Recipient != "ada@example.com" {
			t.Errorf("mails after registering a registered email: %+v, want one notice to its owner", takenMails)
		}
		if len(freshMails) != 1 || freshMails[0].Kind != account.MailVerifyEmail || freshMails[0].Recipient != "bob@example.com" {
			t.Errorf("mails after registering a new email: %+v, want one verification", freshMails)
		}
		// The notice is capped per recipient: a stranger cannot flood the
		// owner's inbox, and still gets the same answer.
		again, _, againMails := signUp("ada@example.com", "third horse")
		if !bytes.Equal(again, first) || len(againMails) != 0 {
			t.Errorf("a second attempt within 10 minutes: %s, mails %+v; want the same answer and no mail", again, againMails)
		}
		// The account was not touched by the attempts.
		if r := do(t, h, "", login, map[string]any{"e": "ada@example.com"}); len(r.Errors) > 0 {
			t.Errorf("the owner's password after the attempts: %+v", r.Errors)
		}
	})
}

// TestFailedMailsForAdmins: a mail the sender gave up on is listed for
// admins with its error, and nobody else may see it.
func TestFailedMailsForAdmins(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		h, _ := newHandler(t, db, account.Config{BcryptCost: 4, AdminEmails: []string{"admin@example.com"}, PublicAppURL: "https://app.example.com"})
		admin := registerVia(t, h, "admin@example.com")
		ada := registerVia(t, h, "ada@example.com")
		ms := queued(t, db) // the two verification mails, claimed as the sender would
		if len(ms) != 2 {
			t.Fatalf("queued %d mails, want 2", len(ms))
		}
		for _, m := range ms {
			if m.Recipient == "ada@example.com" {
				if err := db.FailMail(context.Background(), m.ID, m.Attempts, "550 5.1.1 no such user"); err != nil {
					t.Fatal(err)
				}
			}
		}
		const q = `query($n: Int) { failedMails(first: $n) { id kind recipient subject attempts createdAt failedAt lastError } }`
		r := do(t, h, admin.AccessToken, q, nil)
		var got []struct {
			Kind, Recipient, LastError string
			Attempts                   int
		}
		if err := json.Unmarshal(r.Data["failedMails"], &got); err != nil || len(r.Errors) > 0 {
			t.Fatalf("failedMails = %s %+v", r.Data["failedMails"], r.Errors)
		}
		if len(got) != 1 || got[0].Kind != account.MailVerifyEmail || got[0].Recipient != "ada@example.com" || got[0].LastError != "550 5.1.1 no such user" || got[0].Attempts != 1 {
			t.Errorf("failedMails = %+v, want ada's verification with its 550", got)
		}
		for _, c := range []struct {
			name, token string
			vars        map[string]any
			code        string
		}{
			{"anonymous", "", nil, "UNAUTHENTICATED"},
			{"a user", ada.AccessToken, nil, "FORBIDDEN"},
			{"first 0", admin.AccessToken, map[string]any{"n": 0}, "BAD_USER_INPUT"},
			{"first 101", admin.AccessToken, map[string]any{"n": 101}, "BAD_USER_INPUT"},
		} {
			if r := do(t, h, c.token, q, c.vars); r.code() != c.code {
				t.Errorf("%s: %+v, want %s", c.name, r.Errors, c.code)
			}
		}
		if r := do(t, h, admin.AccessToken, q, map[string]any{"n": 100}); len(r.Errors) > 0 {
			t.Errorf("first 100: %+v", r.Errors)
		}
	})
}
