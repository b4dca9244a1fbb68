package account_test

import (
	"context"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/account"
	"github.com/obsqra/obsqra/store"
	"github.com/obsqra/obsqra/store/storetest"
)

// outbox records the mails a service queues, as they commit with the
// change that caused them.
type outbox struct {
	mu    sync.Mutex
	mails []account.Mail
}

func (o *outbox) queue(_ context.Context, _ *store.Tx, m account.Mail) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.mails = append(o.mails, m)
	return nil
}

func (o *outbox) take() []account.Mail {
	o.mu.Lock()
	defer o.mu.Unlock()
	m := o.mails
	o.mails = nil
	return m
}

// mailing is setup with mails recorded in an outbox.
func mailing(t *testing.T, db *store.DB) (*account.Service, *testBundle, *outbox) {
	t.Helper()
	svc, b := setup(t, db)
	out := &outbox{}
	account.SetMail(svc, out.queue, "https://app.example.com/")
	return svc, b, out
}

// tokenOf returns the token of the one link of m to path.
func tokenOf(t *testing.T, m account.Mail, path string) string {
	t.Helper()
	i := strings.Index(m.Text, "https://app.example.com"+path+"?token=")
	if i < 0 {
		t.Fatalf("mail %q has no link to %s: %s", m.Subject, path, m.Text)
	}
	link := m.Text[i:]
	link = link[:strings.IndexAny(link, " \n")]
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(m.HTML, strings.ReplaceAll(link, "&", "&amp;")) {
		t.Errorf("the HTML part has not the text part's link %s", link)
	}
	return u.Query().Get("token")
}

func TestVerifyEmail(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		svc, b, out := mailing(t, db)
		p := register(t, svc, "ada@example.com")
		mails := out.take()
		if len(mails) != 1 || mails[0].Kind != account.MailVerifyEmail || mails[0].To != "ada@example.com" {
			t.Fatalf("mails queued by register: %+v, want one verification to ada", mails)
		}
		token := tokenOf(t, mails[0], "/verify-email")
		if len(token) < 43 { // 256 bits in base64url
			t.Errorf("token %q is shorter than 256 bits", token)
		}
		if u, err := svc.VerifyEmail(context.Background(), token+"x"); obsqra.ErrorCode(err) != obsqra.ENOTFOUND || u != nil {
			t.Errorf("a wrong token: %v, want ENOTFOUND", err)
		}
		u, err := svc.VerifyEmail(context.Background(), token)
		if err != nil || !u.EmailVerified || u.ID != p.User.ID {
			t.Fatalf("VerifyEmail = %+v, %v", u, err)
		}
		if _, err := svc.VerifyEmail(context.Background(), token); obsqra.ErrorCode(err) != obsqra.ENOTFOUND {
			t.Errorf("the token replayed: %v, want ENOTFOUND", err)
		}
		if err := svc.ResendVerification(as(t, svc, p.AccessToken), ""); obsqra.ErrorCode(err) != obsqra.EINVALID {
			t.Errorf("resend when verified: %v, want EINVALID", err)
		}

		// Resends are capped per recipient; the earlier link keeps working.
		q := register(t, svc, "bob@example.com")
		first := tokenOf(t, out.take()[0], "/verify-email")
		ctx := as(t, svc, q.AccessToken)
		if err := svc.ResendVerification(ctx, ""); err != nil || len(out.take()) != 0 {
			t.Errorf("a resend at once: %v; want the same answer and no mail", err)
		}
		b.clock.Advance(account.MailRecipientInterval)
		if err := svc.ResendVerification(ctx, ""); err != nil {
			t.Fatal(err)
		}
		if mails := out.take(); len(mails) != 1 || mails[0].To != "bob@example.com" {
			t.Fatalf("a resend after the interval: %+v, want one mail", mails)
		}
		if u, err := svc.VerifyEmail(context.Background(), first); err != nil || !u.EmailVerified {
			t.Errorf("the first link after a resend: %+v, %v", u, err)
		}

		// A link past its 24 hours is refused.
		register(t, svc, "cy@example.com")
		late := tokenOf(t, out.take()[0], "/verify-email")
		b.clock.Advance(account.VerifyTokenTTL)
		if _, err := svc.VerifyEmail(context.Background(), late); obsqra.ErrorCode(err) != obsqra.ENOTFOUND {
			t.Errorf("an expired link: %v, want ENOTFOUND", err)
		}
	})
}

func TestPasswordReset(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		svc, b, out := mailing(t, db)
		p := register(t, svc, "ada@example.com")
		out.take()

		// Known and unknown emails get the same answer after the same
		// statements (the lookup and the mail come after the answer); only
		// the known one is mailed.
		var work []int64
		for _, email := range []string{"nobody@example.com", "ADA@example.com"} {
			before := db.Statements()
			if err := svc.RequestPasswordReset(from("198.51.100.7"), email); err != nil {
				t.Fatalf("RequestPasswordReset(%s) = %v", email, err)
			}
			work = append(work, db.Statements()-before)
		}
		if work[0] != work[1] {
			t.Errorf("a request for an unknown email ran %d statements, for a known one %d", work[0], work[1])
		}
		if mails := out.take(); len(mails) != 0 {
			t.Fatalf("mails before the requests were worked: %+v", mails)
		}
		workRequests(t, svc)
		mails := out.take()
		if len(mails) != 1 || mails[0].Kind != account.MailPasswordReset || mails[0].To != "ada@example.com" {
			t.Fatalf("reset mails: %+v, want one to ada", mails)
		}
		token := tokenOf(t, mails[0], "/reset-password")

		// A second request at once sends nothing (the first link works).
		if err := svc.RequestPasswordReset(from("203.0.113.9"), "ada@example.com"); err != nil || workRequests(t, svc) != 1 || len(out.take()) != 0 {
			t.Errorf("a second request at once: %v; want the same answer and no mail", err)
		}
		if err := svc.ResetPassword(context.Background(), token, "short"); obsqra.ErrorCode(err) != obsqra.EINVALID {
			t.Errorf("a short password: %v, want EINVALID", err)
		}
		if err := svc.ResetPassword(context.Background(), token, "new correct horse"); err != nil {
			t.Fatalf("ResetPassword = %v", err)
		}
		if mails := out.take(); len(mails) != 1 || mails[0].Kind != account.MailPasswordChanged {
			t.Errorf("after the reset: %+v, want the password-changed mail", mails)
		}
		if err := svc.ResetPassword(context.Background(), token, "another correct horse"); obsqra.ErrorCode(err) != obsqra.ENOTFOUND {
			t.Errorf("the token replayed: %v, want ENOTFOUND", err)
		}
		// Every session ended; the new password signs in, the old does not.
		if _, err := svc.Authenticate(context.Background(), p.AccessToken); err == nil {
			t.Error("the session from before the reset still authenticates")
		}
		if _, err := svc.Login(from("192.0.2.1"), "ada@example.com", "correct horse"); obsqra.ErrorCode(err) != obsqra.EUNAUTHENTICATED {
			t.Errorf("the old password: %v", err)
		}
		if _, err := svc.Login(from("192.0.2.1"), "ada@example.com", "new correct horse"); err != nil {
			t.Errorf("the new password: %v", err)
		}

		// A link older than an hour is refused.
		b.clock.Advance(account.MailRecipientInterval)
		if err := svc.RequestPasswordReset(from("198.51.100.7"), "ada@example.com"); err != nil {
			t.Fatal(err)
		}
		workRequests(t, svc)
		late := tokenOf(t, out.take()[0], "/reset-password")
		b.clock.Advance(account.ResetTokenTTL)
		if err := svc.ResetPassword(context.Background(), late, "third correct horse"); obsqra.ErrorCode(err) != obsqra.ENOTFOUND {
			t.Errorf("an expired link: %v, want ENOTFOUND", err)
		}
	})
}

// Reset requests are throttled per client address and per (account,
// address): one address past its limit is refused, while another address
// still gets the owner a link.
func TestPasswordResetThrottle(t *testing.T) {
	t.Parallel()
	db := storetest.SQLite(t)
	svc, b, out := mailing(t, db)
	register(t, svc, "ada@example.com")
	out.take()
	limit := account.DefaultThrottlePolicy().AccountLimit
	for i := range limit {
		if err := svc.RequestPasswordReset(from("203.0.113.66"), "ada@example.com"); err != nil {
			t.Fatalf("request %d of %d: %v", i+1, limit, err)
		}
	}
	if err := svc.RequestPasswordReset(from("203.0.113.66"), "ada@example.com"); obsqra.ErrorCode(err) != obsqra.ERATELIMIT {
		t.Fatalf("request %d from one address: %v, want ERATELIMIT", limit+1, err)
	}
	workRequests(t, svc)
	out.take()
	b.clock.Advance(account.MailRecipientInterval)
	if err := svc.RequestPasswordReset(from("192.0.2.1"), "ada@example.com"); err != nil {
		t.Fatalf("the owner's address: %v", err)
	}
	workRequests(t, svc)
	if mails := out.take(); len(mails) != 1 {
		t.Errorf("the owner's request after a stranger's flood: %d mails, want 1", len(mails))
	}
}

func TestChangeEmail(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		svc, b, out := mailing(t, db)
		p := register(t, svc, "ada@example.com")
		register(t, svc, "bob@example.com")
		out.take()
		b.clock.Advance(account.MailRecipientInterval)
		ctx := as(t, svc, p.AccessToken)

		if err := svc.ChangeEmail(ctx, "ada@new.example", "wrong password"); obsqra.ErrorCode(err) != obsqra.EFORBIDDEN {
			t.Errorf("a wrong password: %v, want EFORBIDDEN", err)
		}
		if err := svc.ChangeEmail(ctx, "ADA@example.com", "correct horse"); obsqra.ErrorCode(err) != obsqra.EINVALID {
			t.Errorf("the current address: %v, want EINVALID", err)
		}
		// Another account's address: the same answer, and that address is
		// told instead of being sent a link.
		if err := svc.ChangeEmail(ctx, "Bob@example.com", "correct horse"); err != nil {
			t.Fatalf("ChangeEmail to a taken address = %v, want the same answer", err)
		}
		if mails := out.take(); len(mails) != 1 || mails[0].Kind != account.MailEmailTaken || mails[0].To != "bob@example.com" ||
			strings.Contains(mails[0].Text, "token=") {
			t.Fatalf("mails for a taken address: %+v, want one notice to bob without a link", mails)
		}

		b.clock.Advance(account.MailRecipientInterval)
		if err := svc.ChangeEmail(ctx, "ada@new.example", "correct horse"); err != nil {
			t.Fatal(err)
		}
		mails := out.take()
		if len(mails) != 1 || mails[0].To != "ada@new.example" {
			t.Fatalf("mails: %+v, want one link to the new address", mails)
		}
		token := tokenOf(t, mails[0], "/verify-email")
		// Until the link is followed, the account keeps its address.
		if _, err := svc.Login(from("192.0.2.1"), "ada@example.com", "correct horse"); err != nil {
			t.Errorf("the old address before verification: %v", err)
		}
		u, err := svc.VerifyEmail(context.Background(), token)
		if err != nil || u.Email != "ada@new.example" || !u.EmailVerified {
			t.Fatalf("VerifyEmail = %+v, %v; want the new address, verified", u, err)
		}
		if mails := out.take(); len(mails) != 1 || mails[0].Kind != account.MailEmailChanged || mails[0].To != "ada@example.com" {
			t.Errorf("after the change: %+v, want the old address told", mails)
		}
		if _, err := svc.Login(from("192.0.2.1"), "ada@new.example", "correct horse"); err != nil {
			t.Errorf("the new address: %v", err)
		}
		if _, err := svc.Login(from("192.0.2.1"), "ada@example.com", "correct horse"); obsqra.ErrorCode(err) != obsqra.EUNAUTHENTICATED {
			t.Errorf("the old address after the change: %v, want EUNAUTHENTICATED", err)
		}
	})
}

// TestMailRecipientIntervalConfigured: the per-recipient cap is
// Config.MailRecipientInterval: one mail within it, the next after it.
func TestMailRecipientIntervalConfigured(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		svc, b, out := mailing(t, db)
		account.SetMailRecipientInterval(svc, 2*time.Minute)
		p := register(t, svc, "ada@example.com")
		out.take()
		ctx := as(t, svc, p.AccessToken)
		b.clock.Advance(2*time.Minute - time.Second)
		if err := svc.ResendVerification(ctx, ""); err != nil || len(out.take()) != 0 {
			t.Errorf("a resend a second before the interval: %v; want no mail", err)
		}
		b.clock.Advance(time.Second)
		if err := svc.ResendVerification(ctx, ""); err != nil || len(out.take()) != 1 {
			t.Errorf("a resend at the interval: %v; want one mail", err)
		}
	})
}

// workRequests works the waiting email requests, as RunEmailRequests does, and returns
// how many there were.
func workRequests(t *testing.T, svc *account.Service) int {
	t.Helper()
	n, err := svc.ProcessEmailRequests(context.Background())
	if err != nil {
		t.Fatalf("ProcessEmailRequests = %v", err)
	}
	return n
}

// TestResendVerificationSignedOut: a verification link asked for without
// signing in runs the same statements for a known and an unknown email,
// goes out once the request is worked (to the unverified account only),
// and is throttled per (email, address) like a password reset: refused at
// one past the limit from that address, not from another.
func TestResendVerificationSignedOut(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		svc, b, out := mailing(t, db)
		register(t, svc, "ada@example.com")
		out.take()
		b.clock.Advance(account.MailRecipientInterval)
		var work []int64
		for _, email := range []string{"nobody@example.com", "ada@example.com"} {
			before := db.Statements()
			if err := svc.ResendVerification(from("198.51.100.7"), email); err != nil {
				t.Fatalf("ResendVerification(%s) = %v", email, err)
			}
			work = append(work, db.Statements()-before)
		}
		if work[0] != work[1] {
			t.Errorf("a resend for an unknown email ran %d statements, for a known one %d", work[0], work[1])
		}
		if n := workRequests(t, svc); n != 2 {
			t.Errorf("%d requests worked, want 2", n)
		}
		if mails := out.take(); len(mails) != 1 || mails[0].Kind != account.MailVerifyEmail || mails[0].To != "ada@example.com" {
			t.Fatalf("mails: %+v, want one verification to ada", mails)
		}
		limit := account.DefaultThrottlePolicy().AccountLimit
		for i := 1; i < limit; i++ { // the first request above counted
			if err := svc.ResendVerification(from("198.51.100.7"), "ada@example.com"); err != nil {
				t.Fatalf("request %d of %d: %v", i+1, limit, err)
			}
		}
		if err := svc.ResendVerification(from("198.51.100.7"), "ada@example.com"); obsqra.ErrorCode(err) != obsqra.ERATELIMIT {
			t.Errorf("request %d from one address: %v, want ERATELIMIT", limit+1, err)
		}
		if err := svc.ResendVerification(from("192.0.2.1"), "ada@example.com"); err != nil {
			t.Errorf("from another address: %v", err)
		}
	})
}
