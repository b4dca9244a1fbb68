package account

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/store"
)

// Mail is a message the account use cases send, queued in the unit of work
// of the change that causes it (Config.Mail).
type Mail struct {
	// Kind names the message (MailVerifyEmail, …), for logs and caps.
	Kind    string
	To      string
	Subject string
	Text    string
	HTML    string
}

// Kinds of Mail.
const (
	MailVerifyEmail     = "verify_email"
	MailPasswordReset   = "password_reset"
	MailPasswordChanged = "password_changed"
	// MailEmailTaken tells an address that someone asked to move an
	// account to it while another account has it.
	MailEmailTaken = "email_taken"
	// MailEmailChanged tells the old address that the account moved.
	MailEmailChanged = "email_changed"
	// MailSignUpAttempt tells the owner of a verified address that
	// someone tried to register it again.
	MailSignUpAttempt = "sign_up_attempt"
)

// Lifetimes of the tokens mailed, and the cap on the mails a stranger can
// trigger.
const (
	// VerifyTokenTTL is how long a verification link works.
	VerifyTokenTTL = 24 * time.Hour
	// ResetTokenTTL is how long a password reset link works.
	ResetTokenTTL = time.Hour
	// MailRecipientInterval is the default of Config.MailRecipientInterval:
	// the least time between two mails of one kind that anyone may
	// trigger (a resend, a reset, a sign-up notice, an email change's
	// link) to one recipient, so that nobody can flood an inbox through
	// the server. The links already sent keep working meanwhile, so a
	// stranger's requests never keep the owner from a working link.
	MailRecipientInterval = 10 * time.Minute
)

// emailTokenBytes is the entropy of a mailed token: 256 bits.
const emailTokenBytes = 32

// newEmailToken returns a new mailed token and the hash stored for it.
func (s *Service) newEmailToken() (token string, hash []byte, err error) {
	token, err = randomString(s.Rand, emailTokenBytes)
	if err != nil {
		return "", nil, err
	}
	return token, hashEmailToken(token), nil
}

// hashEmailToken is the stored form of a mailed token. A plain SHA-256 is
// enough: the token has 256 bits of entropy.
func hashEmailToken(token string) []byte {
	sum := sha256.Sum256([]byte(token))
	return sum[:]
}

// link is the frontend's page path with token, under PublicAppURL.
func (s *Service) link(path, token string) string {
	return strings.TrimRight(s.cfg.PublicAppURL, "/") + path + "?token=" + url.QueryEscape(token)
}

// queueMail queues m in tx: in the store's mail queue, which the mail
// sender delivers, or through Config.Mail when it is set.
func (s *Service) queueMail(ctx context.Context, tx *store.Tx, m Mail) error {
	if s.cfg.Mail != nil {
		return s.cfg.Mail(ctx, tx, m)
	}
	return tx.QueueMail(ctx, &store.Mail{Kind: m.Kind, Recipient: m.To, Subject: m.Subject, Text: m.Text, HTML: m.HTML})
}

// queueVerification issues a verification token for u's address and
// queues its mail, in tx.
func (s *Service) queueVerification(ctx context.Context, tx *store.Tx, u *obsqra.User) error {
	token, hash, err := s.newEmailToken()
	if err != nil {
		return err
	}
	now := s.now()
	if err := tx.CreateEmailToken(ctx, &store.EmailToken{UserID: u.ID, Purpose: store.TokenVerifyEmail, Hash: hash,
		CreatedAt: now, ExpiresAt: now.Add(VerifyTokenTTL)}); err != nil {
		return err
	}
	link := s.link("/verify-email", token)
	return s.queueMail(ctx, tx, Mail{
		Kind:    MailVerifyEmail,
		To:      u.Email,
		Subject: "Confirm your email address",
		Text: fmt.Sprintf("Hello%s,\n\nconfirm that this is your address by opening this link within 24 hours:\n\n%s\n\n"+
			"If you did not sign up, ignore this mail.\n", named(u.FullName), link),
		HTML: fmt.Sprintf("<p>Hello%s,</p><p>confirm that this is your address by opening <a href=\"%s\">this link</a> within 24 hours.</p>"+
			"<p>If you did not sign up, ignore this mail.</p>", named(htmlEscape(u.FullName)), htmlEscape(link)),
	})
}

// queueSignUpNotice answers a registration of owner's address, in tx: a
// new verification link when the address is not verified yet (its owner
// may be registering again for want of the first link), else a notice
// that someone tried to sign up with it; neither more than once per
// MailRecipientInterval.
func (s *Service) queueSignUpNotice(ctx context.Context, tx *store.Tx, owner *obsqra.User) error {
	if !owner.EmailVerified {
		if recent, err := s.mailedRecently(ctx, tx, owner.ID, store.TokenVerifyEmail, ""); err != nil || recent {
			return err
		}
		return s.queueVerification(ctx, tx, owner)
	}
	last, err := tx.LatestMailAt(ctx, MailSignUpAttempt, owner.Email)
	if err != nil {
		return err
	}
	if !last.IsZero() && s.now().Sub(last) < s.recipientInterval() {
		return nil
	}
	base := strings.TrimRight(s.cfg.PublicAppURL, "/")
	signIn, reset := base+"/sign-in", base+"/forgot-password"
	return s.queueMail(ctx, tx, Mail{
		Kind:    MailSignUpAttempt,
		To:      owner.Email,
		Subject: "Someone tried to sign up with your address",
		Text: fmt.Sprintf("Hello%s,\n\nsomeone tried to create an account with this address, which already has one. "+
			"If it was you, sign in (%s) or reset your password (%s). If it was not, ignore this mail: nothing changed.\n",
			named(owner.FullName), signIn, reset),
		HTML: fmt.Sprintf("<p>Hello%s,</p><p>someone tried to create an account with this address, which already has one. "+
			"If it was you, <a href=\"%s\">sign in</a> or <a href=\"%s\">reset your password</a>. If it was not, ignore this mail: nothing changed.</p>",
			named(htmlEscape(owner.FullName)), htmlEscape(signIn), htmlEscape(reset)),
	})
}

// VerifyEmail marks the address of the token's user verified and returns
// the user. The token is used once. A token of an email change moves the
// account to its new address, verified, and tells the old address.
// Errors: ENOTFOUND (invalid, used or expired token: one answer for all),
// EINVALID (not a token at all), ECONFLICT (the new address was registered
// by another account since the change was asked).
func (s *Service) VerifyEmail(ctx context.Context, token string) (*obsqra.User, error) {
	if len(token) == 0 || len(token) > 128 {
		return nil, obsqra.Errorf(obsqra.EINVALID, "token must be the one from the mail's link")
	}
	var u *obsqra.User
	err := s.db.WithTx(ctx, func(tx *store.Tx) error {
		t, err := tx.ConsumeEmailToken(ctx, store.TokenVerifyEmail, hashEmailToken(token), s.now())
		if err != nil {
			return err
		}
		if u, err = tx.UserByID(ctx, t.UserID); err != nil {
			return err
		}
		if t.NewEmail == "" {
			u.EmailVerified = true
			return tx.UpdateUser(ctx, u)
		}
		old := u.Email
		if err := tx.ChangeUserEmail(ctx, u.ID, t.NewEmail); err != nil {
			return err
		}
		if u, err = tx.UserByID(ctx, t.UserID); err != nil {
			return err
		}
		return s.queueMail(ctx, tx, Mail{
			Kind:    MailEmailChanged,
			To:      old,
			Subject: "Your account's email address was changed",
			Text: fmt.Sprintf("Hello%s,\n\nyour account now signs in with %s instead of this address.\n\n"+
				"If it was not you, reset your password from the sign-in page at once.\n", named(u.FullName), u.Email),
			HTML: fmt.Sprintf("<p>Hello%s,</p><p>your account now signs in with %s instead of this address.</p>"+
				"<p>If it was not you, reset your password from the sign-in page at once.</p>", named(htmlEscape(u.FullName)), htmlEscape(u.Email)),
		})
	})
	return u, err
}

// ChangeEmail asks to move the signed-in user's account to newEmail,
// after checking the password: a link to verify newEmail is mailed to it,
// and the account moves only when it is followed (VerifyEmail), which
// tells the old address. When another account has newEmail, that address
// is told that someone asked instead, and the answer is the same, so the
// call reveals nothing of which addresses have accounts. At most one such
// mail goes to one address per MailRecipientInterval.
// Errors: EUNAUTHENTICATED, EFORBIDDEN (wrong password), EINVALID (not an
// email, or the current one), ERATELIMIT.
func (s *Service) ChangeEmail(ctx context.Context, newEmail, password string) error {
	p, err := s.principal(ctx)
	if err != nil {
		return err
	}
	email, err := NormalizeEmail(newEmail)
	if err != nil {
		return err
	}
	if strings.EqualFold(email, p.User.Email) {
		return obsqra.Errorf(obsqra.EINVALID, "newEmail is the account's email already")
	}
	if err := s.checkPassword(ctx, p.User, password); err != nil {
		return err
	}
	return s.db.WithTx(ctx, func(tx *store.Tx) error {
		u, err := tx.UserByID(ctx, p.User.ID)
		if err != nil {
			return err
		}
		if recent, err := s.mailedRecently(ctx, tx, u.ID, store.TokenVerifyEmail, email); err != nil || recent {
			return err
		}
		// The token is made either way (it counts for the cap above); it is
		// mailed only to an address no other account has. Earlier links
		// stop working: only the newest change can be followed.
		token, hash, err := s.newEmailToken()
		if err != nil {
			return err
		}
		now := s.now()
		if _, err := tx.RevokeEmailTokens(ctx, u.ID, store.TokenVerifyEmail, now); err != nil {
			return err
		}
		if err := tx.CreateEmailToken(ctx, &store.EmailToken{UserID: u.ID, Purpose: store.TokenVerifyEmail, Hash: hash,
			NewEmail: email, CreatedAt: now, ExpiresAt: now.Add(VerifyTokenTTL)}); err != nil {
			return err
		}
		switch other, err := tx.UserByEmail(ctx, email); {
		case err == nil:
			return s.queueMail(ctx, tx, Mail{
				Kind:    MailEmailTaken,
				To:      other.Email,
				Subject: "Someone asked to use your address",
				Text: "Hello,\n\nsomeone asked to move another account to this address, which already has an account. " +
					"Nothing was changed.\n\nIf you forgot your password, reset it from the sign-in page.\n",
				HTML: "<p>Hello,</p><p>someone asked to move another account to this address, which already has an account. " +
					"Nothing was changed.</p><p>If you forgot your password, reset it from the sign-in page.</p>",
			})
		case obsqra.ErrorCode(err) != obsqra.ENOTFOUND:
			return err
		}
		link := s.link("/verify-email", token)
		return s.queueMail(ctx, tx, Mail{
			Kind:    MailVerifyEmail,
			To:      email,
			Subject: "Confirm your new email address",
			Text: fmt.Sprintf("Hello%s,\n\nto sign in with this address from now on, open this link within 24 hours:\n\n%s\n\n"+
				"Until then your account keeps its current address. If you did not ask for it, ignore this mail.\n", named(u.FullName), link),
			HTML: fmt.Sprintf("<p>Hello%s,</p><p>to sign in with this address from now on, open <a href=\"%s\">this link</a> within 24 hours.</p>"+
				"<p>Until then your account keeps its current address. If you did not ask for it, ignore this mail.</p>",
				named(htmlEscape(u.FullName)), htmlEscape(link)),
		})
	})
}

// ResendVerification mails the signed-in user a new verification link,
// unless their address is verified already (EINVALID) or one was sent
// within MailRecipientInterval (then nothing is sent, and the answer is
// the same: the earlier link still works). Without a signed-in user (one
// whose address must be verified cannot sign in), email names the
// account: the request is throttled and recorded like a password reset's,
// and the link goes to the account if it exists, is active and is not
// verified, under the same cap; the answer and the work are the same
// whatever the case, so that it reveals nothing.
// Errors: EUNAUTHENTICATED (refused credentials, or none and no email),
// EINVALID, ERATELIMIT.
func (s *Service) ResendVerification(ctx context.Context, email string) error {
	p, err := obsqra.Viewer(ctx)
	if err != nil {
		return err
	}
	if p == nil {
		if strings.TrimSpace(email) == "" {
			return obsqra.Errorf(obsqra.EUNAUTHENTICATED, "sign in, or give the email of the account to verify")
		}
		return s.resendTo(ctx, email)
	}
	return s.db.WithTx(ctx, func(tx *store.Tx) error {
		u, err := tx.UserByID(ctx, p.ID)
		if err != nil {
			return err
		}
		if u.EmailVerified {
			return obsqra.Errorf(obsqra.EINVALID, "this email address is verified already")
		}
		if recent, err := s.mailedRecently(ctx, tx, u.ID, store.TokenVerifyEmail, ""); err != nil || recent {
			return err
		}
		return s.queueVerification(ctx, tx, u)
	})
}

// resendTo asks for a new verification link for the account of email,
// the way RequestPasswordReset asks for a reset: throttled per client
// address and per (email, address), then recorded and answered, the same
// work for any email; the runner mails the link (verifyOne).
// Errors: ERATELIMIT.
func (s *Service) resendTo(ctx context.Context, email string) error {
	return s.requestLink(ctx, store.TokenVerifyEmail, email)
}

// mailedRecently reports whether a token of purpose was mailed to the
// user's address (or newEmail, an address it asked to move to) within
// MailRecipientInterval.
func (s *Service) mailedRecently(ctx context.Context, tx *store.Tx, userID int64, purpose, newEmail string) (bool, error) {
	at, err := tx.LatestEmailTokenAt(ctx, userID, purpose, newEmail)
	if err != nil {
		return false, err
	}
	return !at.IsZero() && s.now().Sub(at) < s.recipientInterval(), nil
}

// resetRefusal is the refusal of too many reset requests.
const resetRefusal = "too many password reset requests from your address"

// verifyRefusal is the refusal of too many verification links asked for
// without signing in.
const verifyRefusal = "too many verification link requests from your address"

// linkKeys are the throttle keys of a request for a link of purpose made
// without signing in (a password reset, a verification link): the client
// address, and the (account, address) pair, each purpose counted apart;
// never the account alone, so that a stranger cannot use up an owner's
// links.
func (p ThrottlePolicy) linkKeys(purpose, email, address string) []throttleKey {
	prefix, refusal := "reset", resetRefusal
	if purpose == store.TokenVerifyEmail {
		prefix, refusal = "verify", verifyRefusal
	}
	keys := []throttleKey{{key: prefix + ":address:" + address + " account:" + strings.ToLower(email), limit: p.AccountLimit, refusal: refusal}}
	if address != "" {
		keys = append(keys, throttleKey{key: prefix + ":address:" + address, limit: p.AddressLimit, refusal: refusal})
	}
	return keys
}

// RequestPasswordReset asks for a password reset link for the account of
// email, if there is an active one. The answer is the same whether there
// is or not, and so is the work: the request is throttled, then recorded
// (store.QueueEmailRequest, one row either way) and answered; the
// runner (RunEmailRequests) then looks the email up and mails the link, within
// seconds. A request within the per-recipient interval of the last reset
// mail to the address sends nothing (the earlier link still works).
// Errors: ERATELIMIT (per client address and per account and address).
func (s *Service) RequestPasswordReset(ctx context.Context, email string) error {
	return s.requestLink(ctx, store.TokenResetPassword, email)
}

// requestLink throttles and records a request for a link of purpose
// (store.TokenResetPassword or TokenVerifyEmail) to the account of email,
// made without signing in: one row whatever the email. A request whose
// email is too long for any account is answered alike, without a row.
// Errors: ERATELIMIT.
func (s *Service) requestLink(ctx context.Context, purpose, email string) error {
	email = strings.TrimSpace(email)
	if len(email) > MaxEmailBytes {
		return nil // no account has it: the same answer
	}
	if err := s.admit(ctx, s.throttle.linkKeys(purpose, email, obsqra.ClientFromContext(ctx).LimitKey())); err != nil {
		return err
	}
	return s.db.WithTx(ctx, func(tx *store.Tx) error { return tx.QueueEmailRequest(ctx, purpose, email) })
}

// requestBatch bounds the email requests one unit of work works.
const requestBatch = 100

// ProcessEmailRequests works the waiting email requests (password resets,
// verification links asked for without signing in), a batch per unit of
// work (taken, looked up, mailed, removed together), until none is left,
// and returns how many it worked.
// Errors: internal ones (the requests of a batch that failed wait for the
// next run).
func (s *Service) ProcessEmailRequests(ctx context.Context) (int, error) {
	n := 0
	for {
		var worked int
		err := s.db.WithTx(ctx, func(tx *store.Tx) error {
			reqs, err := tx.TakeEmailRequests(ctx, requestBatch)
			if err != nil {
				return err
			}
			worked = len(reqs)
			for _, r := range reqs {
				work := s.resetOne
				if r.Purpose == store.TokenVerifyEmail {
					work = s.verifyOne
				}
				if err := work(ctx, tx, r.Email); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return n, err
		}
		n += worked
		if worked < requestBatch {
			return n, nil
		}
	}
}

// requestPoll is how often RunEmailRequests looks for requests besides
// the commits of this process: those of another instance wait at most
// this long.
const requestPoll = 5 * time.Second

// RunEmailRequests works email requests until ctx ends: at each commit of
// this process that queues one, and every requestPoll. Every instance runs
// it; two never work one request (TakeEmailRequests).
func (s *Service) RunEmailRequests(ctx context.Context) {
	poll := time.NewTicker(requestPoll)
	defer poll.Stop()
	for {
		queued := s.db.EmailRequestsQueued()
		if _, err := s.ProcessEmailRequests(ctx); err != nil && ctx.Err() == nil {
			s.logger().Error("account: work email requests", "error", err.Error())
		}
		select {
		case <-ctx.Done():
			return
		case <-queued:
		case <-poll.C:
		}
	}
}

// verifyOne mails a new verification link to the account of email, in
// tx, when it exists, is active and is not verified, and was not mailed
// one within the per-recipient interval.
func (s *Service) verifyOne(ctx context.Context, tx *store.Tx, email string) error {
	u, err := tx.UserByEmail(ctx, email)
	if obsqra.ErrorCode(err) == obsqra.ENOTFOUND {
		return nil
	} else if err != nil {
		return err
	}
	if u.EmailVerified || !u.Active {
		return nil
	}
	if recent, err := s.mailedRecently(ctx, tx, u.ID, store.TokenVerifyEmail, ""); err != nil || recent {
		return err
	}
	return s.queueVerification(ctx, tx, u)
}

// resetOne mails a reset link to the account of email, in tx, if it is
// active and was not mailed one within the per-recipient interval.
func (s *Service) resetOne(ctx context.Context, tx *store.Tx, email string) error {
	u, err := tx.UserByEmail(ctx, email)
	if obsqra.ErrorCode(err) == obsqra.ENOTFOUND {
		return nil
	} else if err != nil {
		return err
	}
	if !u.Active {
		return nil
	}
	if recent, err := s.mailedRecently(ctx, tx, u.ID, store.TokenResetPassword, ""); err != nil || recent {
		return err
	}
	token, hash, err := s.newEmailToken()
	if err != nil {
		return err
	}
	now := s.now()
	if err := tx.CreateEmailToken(ctx, &store.EmailToken{UserID: u.ID, Purpose: store.TokenResetPassword, Hash: hash,
		CreatedAt: now, ExpiresAt: now.Add(ResetTokenTTL)}); err != nil {
		return err
	}
	link := s.link("/reset-password", token)
	return s.queueMail(ctx, tx, Mail{
		Kind:    MailPasswordReset,
		To:      u.Email,
		Subject: "Reset your password",
		Text: fmt.Sprintf("Hello%s,\n\nto choose a new password, open this link within an hour:\n\n%s\n\n"+
			"If you did not ask for it, ignore this mail: your password stays as it is.\n", named(u.FullName), link),
		HTML: fmt.Sprintf("<p>Hello%s,</p><p>to choose a new password, open <a href=\"%s\">this link</a> within an hour.</p>"+
			"<p>If you did not ask for it, ignore this mail: your password stays as it is.</p>", named(htmlEscape(u.FullName)), htmlEscape(link)),
	})
}

// ResetPassword sets a new password with a reset token (used once), ends
// every session of the user (their sockets close), revokes their other
// reset links, and mails them that the password changed.
// Errors: ENOTFOUND (invalid, used or expired token: one answer for all),
// EINVALID (the password rules of registration, or not a token at all).
func (s *Service) ResetPassword(ctx context.Context, token, newPassword string) error {
	if len(token) == 0 || len(token) > 128 {
		return obsqra.Errorf(obsqra.EINVALID, "token must be the one from the mail's link")
	}
	if err := validatePassword(newPassword); err != nil {
		return err
	}
	hash, err := s.hashPassword(newPassword)
	if err != nil {
		return err
	}
	return s.db.WithTx(ctx, func(tx *store.Tx) error {
		now := s.now()
		t, err := tx.ConsumeEmailToken(ctx, store.TokenResetPassword, hashEmailToken(token), now)
		if err != nil {
			return err
		}
		u, err := tx.UserByID(ctx, t.UserID)
		if err != nil {
			return err
		}
		u.PasswordHash = string(hash)
		if err := tx.UpdateUser(ctx, u); err != nil {
			return err
		}
		if _, err := tx.RevokeUserSessions(ctx, u.ID, obsqra.RevokePasswordChanged); err != nil {
			return err
		}
		if _, err := tx.RevokeEmailTokens(ctx, u.ID, store.TokenResetPassword, now); err != nil {
			return err
		}
		return s.queueMail(ctx, tx, Mail{
			Kind:    MailPasswordChanged,
			To:      u.Email,
			Subject: "Your password was changed",
			Text: fmt.Sprintf("Hello%s,\n\nthe password of your account was just changed through a reset link, "+
				"and every session was signed out.\n\nIf it was not you, reset it again at once.\n", named(u.FullName)),
			HTML: fmt.Sprintf("<p>Hello%s,</p><p>the password of your account was just changed through a reset link, "+
				"and every session was signed out.</p><p>If it was not you, reset it again at once.</p>", named(htmlEscape(u.FullName))),
		})
	})
}

// htmlEscape escapes s for HTML text and attribute values.
func htmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&#34;", "'", "&#39;").Replace(s)
}

// FailedMails returns, for admins, at most first (1-MaxFirst) mails the
// sender gave up on, the latest first, with the error of each.
// Errors: EUNAUTHENTICATED, EFORBIDDEN, EINVALID; internal ones.
func (s *Service) FailedMails(ctx context.Context, first int) ([]obsqra.FailedMail, error) {
	if _, err := obsqra.RequireAdmin(ctx, "see mails that failed"); err != nil {
		return nil, err
	}
	if first < 1 || first > MaxFirst {
		return nil, obsqra.Errorf(obsqra.EINVALID, "first must be between 1 and %d, got %d", MaxFirst, first)
	}
	ms, err := s.db.FailedMails(ctx, first)
	if err != nil {
		return nil, err
	}
	out := make([]obsqra.FailedMail, len(ms))
	for i, m := range ms {
		out[i] = obsqra.FailedMail{ID: m.ID, Kind: m.Kind, Recipient: m.Recipient, Subject: m.Subject, Attempts: m.Attempts,
			CreatedAt: m.CreatedAt, LastError: m.LastError}
		if m.FailedAt != nil {
			out[i].FailedAt = *m.FailedAt
		}
	}
	return out, nil
}

// recipientInterval is Config.MailRecipientInterval, or its default.
func (s *Service) recipientInterval() time.Duration {
	if s.cfg.MailRecipientInterval > 0 {
		return s.cfg.MailRecipientInterval
	}
	return MailRecipientInterval
}

// logger is Config.Logger, or slog's default.
func (s *Service) logger() *slog.Logger {
	if s.cfg.Logger != nil {
		return s.cfg.Logger
	}
	return slog.Default()
}

// named is the name a mail greets ("Hello Ada,"), with its leading space,
// or nothing for an account without a name ("Hello,").
func named(name string) string {
	if name == "" {
		return ""
	}
	return " " + name
}
