// Package account holds the use cases of users' accounts: registration,
// sign-in with throttling, sessions of rotating refresh tokens, access-token
// authentication, preferences, password changes and deactivation.
package account

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/starknet"
	"github.com/obsqra/obsqra/store"
)

// Limits on what users type.
const (
	MinPasswordChars = 8
	// MaxPasswordBytes is bcrypt's limit; longer passwords are refused, never
	// silently truncated.
	MaxPasswordBytes = 72
	MaxEmailBytes    = 254
	MaxFullNameChars = 200
)

// MaxFirst bounds a page of users.
const MaxFirst = 100

// Config holds the settings of a Service.
type Config struct {
	// Tokens issues and checks access tokens.
	Tokens *Tokens
	// RefreshTTL is how long a session lives without being refreshed
	// (REFRESH_TOKEN_EXPIRE_DAYS, default 30 days).
	RefreshTTL time.Duration
	// BcryptCost is the cost of password hashes (BCRYPT_COST, default 12).
	BcryptCost int
	// AdminEmails become admins when they register (ADMIN_EMAILS).
	AdminEmails []string
	// Throttle limits failed sign-ins and registrations; zero fields take
	// the values of DefaultThrottlePolicy.
	Throttle ThrottlePolicy
	// RequireEmailVerification (REQUIRE_EMAIL_VERIFICATION, default false
	// in development, true in production) makes Register answer the same
	// for a new and a taken address, with no tokens and one mail either
	// way, and refuses signing in before the address is verified.
	RequireEmailVerification bool
	// MailRecipientInterval caps the mails a stranger can trigger to one
	// address (MAIL_RECIPIENT_INTERVAL): one of a kind per interval.
	// Default (0) MailRecipientInterval, 10 minutes.
	MailRecipientInterval time.Duration
	// Logger receives the errors of background work (RunEmailRequests). Default
	// slog.Default().
	Logger *slog.Logger
	// Generations, when set, are the hub's: Authenticate then keeps each
	// session and its user until an event of the user arrives, instead of
	// reading them for every request (see sessions). Nil: it reads them
	// every time.
	Generations *obsqra.Generations
	// Starknet is the node wallet links are verified on (their account
	// contract's is_valid_signature); nil when none is configured, and
	// then wallets cannot be linked.
	Starknet *starknet.Client
	// Mail, when set, queues a mail in the unit of work of the change that
	// causes it (a verification link, a reset link) in place of the
	// store's mail queue (tests record mails with it).
	Mail func(ctx context.Context, tx *store.Tx, m Mail) error
	// PublicAppURL is the frontend's base URL, which mailed links point
	// into (PUBLIC_APP_URL): PublicAppURL/verify-email?token=….
	PublicAppURL string
}

// Service carries out account use cases. Its methods document the error
// codes they return; any other error is internal.
type Service struct {
	db       *store.DB
	tokens   *Tokens
	cfg      Config
	throttle ThrottlePolicy
	admins   map[string]bool
	sessions sessions

	// Now is the clock; tests set it.
	Now func() time.Time
	// Rand is the source of session ids and refresh tokens; tests may set it.
	Rand io.Reader
	// Hash hashes a password at a cost (bcrypt.GenerateFromPassword);
	// tests count its calls.
	Hash func(password []byte, cost int) ([]byte, error)
	// Sleep waits d, or until ctx ends and then returns its error: how a
	// sign-in on an account past its throttle ceiling is slowed. Tests set
	// it so that nothing really sleeps.
	Sleep func(ctx context.Context, d time.Duration) error

	// dummyHash is a bcrypt hash at the configured cost that no password
	// matches: a sign-in for an unknown email is checked against it, so
	// that it takes as long as a wrong password does.
	dummyHash []byte
}

// New returns a Service over db.
func New(db *store.DB, cfg Config) (*Service, error) {
	if cfg.Tokens == nil {
		return nil, errors.New("account: Config.Tokens is required")
	}
	if cfg.RefreshTTL <= 0 {
		return nil, fmt.Errorf("account: refresh token lifetime must be positive, got %s", cfg.RefreshTTL)
	}
	if cfg.BcryptCost < bcrypt.MinCost || cfg.BcryptCost > bcrypt.MaxCost {
		return nil, fmt.Errorf("account: bcrypt cost must be %d-%d, got %d", bcrypt.MinCost, bcrypt.MaxCost, cfg.BcryptCost)
	}
	s := &Service{db: db, tokens: cfg.Tokens, cfg: cfg, throttle: cfg.Throttle.withDefaults(), admins: map[string]bool{}, Now: time.Now, Rand: rand.Reader, Sleep: obsqra.Sleep, Hash: bcrypt.GenerateFromPassword,
		sessions: sessions{gens: cfg.Generations, byID: make(map[string]*keptSession)}}
	// Made here rather than on first use, so that even the first unknown
	// email takes no longer than a wrong password.
	secret := make([]byte, 32)
	if _, err := io.ReadFull(s.Rand, secret); err != nil {
		return nil, fmt.Errorf("account: read random bytes: %w", err)
	}
	var err error
	if s.dummyHash, err = bcrypt.GenerateFromPassword(secret, cfg.BcryptCost); err != nil {
		return nil, fmt.Errorf("account: make the dummy password hash: %w", err)
	}
	for _, e := range cfg.AdminEmails {
		s.admins[strings.ToLower(strings.TrimSpace(e))] = true
	}
	return s, nil
}

func (s *Service) now() time.Time { return s.Now().UTC().Truncate(time.Microsecond) }

// RegisterInput is what a new user gives.
type RegisterInput struct {
	Email    string
	Password string
	FullName string
}

// Register creates an account and queues the mail that verifies its
// address. Without Config.RequireEmailVerification it signs the account in
// (the Registration holds its tokens) and a taken email is ECONFLICT. With
// it, the answer is the same for a new and a taken email (a Registration
// without tokens), after the same password hashing, with one mail queued
// either way: the verification link for a new account; for a taken
// address, a new verification link when it is not verified yet, else a
// notice that someone tried to sign up with it (each at most once per
// MailRecipientInterval per recipient). Registrations are limited per
// client address (ThrottlePolicy.RegisterLimit).
// Errors: EINVALID (email, password or name), ECONFLICT (email registered,
// only without verification required), ERATELIMIT.
func (s *Service) Register(ctx context.Context, in RegisterInput) (*obsqra.Registration, error) {
	email, err := NormalizeEmail(in.Email)
	if err != nil {
		return nil, err
	}
	// A name is optional (the original REST API's frontend never sent
	// one): blank is stored as "".
	name := strings.TrimSpace(in.FullName)
	if utf8.RuneCountInString(name) > MaxFullNameChars || !utf8.ValidString(name) {
		return nil, obsqra.Errorf(obsqra.EINVALID, "fullName must be at most %d characters", MaxFullNameChars)
	}
	if err := validatePassword(in.Password); err != nil {
		return nil, err
	}
	// Every registration counts (none is forgiven): each costs a bcrypt hash.
	// Registration keys are never slow keys, so admit does not wait here.
	if err := s.admit(ctx, s.throttle.registerKeys(obsqra.ClientFromContext(ctx).LimitKey())); err != nil {
		return nil, err
	}
	hash, err := s.hashPassword(in.Password)
	if err != nil {
		return nil, err
	}
	u := &obsqra.User{
		Email:        email,
		FullName:     name,
		PasswordHash: string(hash),
		Role:         obsqra.RoleUser,
		Active:       true,
		Preferences:  obsqra.DefaultPreferences(),
	}
	if s.admins[strings.ToLower(email)] {
		u.Role = obsqra.RoleAdmin
	}
	if !s.cfg.RequireEmailVerification {
		auth, err := s.signIn(ctx, u, func(tx *store.Tx) error {
			if err := tx.CreateUser(ctx, u); err != nil {
				return err
			}
			return s.queueVerification(ctx, tx, u)
		})
		if err != nil {
			return nil, err
		}
		return &obsqra.Registration{Auth: auth}, nil
	}
	// Verification required: a new and a taken address get the same
	// answer, after the same hashing, with one mail each (a verification
	// link, or a notice to the address's owner).
	err = s.db.WithTx(ctx, func(tx *store.Tx) error {
		owner, err := tx.UserByEmail(ctx, email)
		switch {
		case obsqra.ErrorCode(err) == obsqra.ENOTFOUND:
			if err := tx.CreateUser(ctx, u); err != nil {
				return err
			}
			return s.queueVerification(ctx, tx, u)
		case err != nil:
			return err
		}
		return s.queueSignUpNotice(ctx, tx, owner)
	})
	if obsqra.ErrorCode(err) == obsqra.ECONFLICT {
		// Registered by another request since the read: answered as a
		// taken address.
		err = s.db.WithTx(ctx, func(tx *store.Tx) error {
			owner, err := tx.UserByEmail(ctx, email)
			if err != nil {
				return err
			}
			return s.queueSignUpNotice(ctx, tx, owner)
		})
	}
	if err != nil {
		return nil, err
	}
	return &obsqra.Registration{}, nil
}

// admit counts an attempt against the throttle keys in a unit of work of its
// own, committed even when the attempt is refused (the refusal is part of the
// bookkeeping), and returns the refusal. An admitted attempt on an account
// past its ceiling is slowed here, after the commit, so that no lock on the
// keys is held while it waits. A caller that goes away while it waits gets
// its context's error; its attempt stays counted as a failure.
// Errors: ERATELIMIT.
func (s *Service) admit(ctx context.Context, keys []throttleKey) error {
	var refusal error
	var delay time.Duration
	if err := s.db.WithTx(ctx, func(tx *store.Tx) (err error) {
		delay, refusal, err = s.throttle.admit(ctx, tx, keys, s.now())
		return err
	}); err != nil {
		return err
	}
	if refusal != nil {
		return refusal
	}
	if delay > 0 {
		return s.Sleep(ctx, delay)
	}
	return nil
}

// errBadCredentials is the one answer to a wrong email or a wrong password,
// so that sign-in does not reveal which accounts exist.
var errBadCredentials = obsqra.Errorf(obsqra.EUNAUTHENTICATED, "invalid email or password")

// Login signs a user in by email and password. Attempts are counted before
// the password is checked, so a refused attempt costs no bcrypt work: per
// account from the client address (from the context), per client address,
// and per account from all addresses, where past the ceiling the attempt is
// slowed rather than refused (see ThrottlePolicy). A stranger can thus use up
// their own limits but not the owner's; a successful sign-in forgives only
// its own address's count on the account.
// Errors: EUNAUTHENTICATED (wrong email or password, the same for both),
// EFORBIDDEN (account deactivated; with Config.RequireEmailVerification,
// an address not verified yet, Reason ReasonEmailNotVerified), ERATELIMIT
// (too many failures).
func (s *Service) Login(ctx context.Context, email, password string) (*obsqra.AuthPayload, error) {
	email = strings.TrimSpace(email)
	if len(email) > MaxEmailBytes || len(password) > 1024 {
		return nil, errBadCredentials
	}
	keys := s.throttle.keysFor(email, obsqra.ClientFromContext(ctx).LimitKey())
	if err := s.admit(ctx, keys); err != nil {
		return nil, err
	}

	u, err := s.db.UserByEmail(ctx, email)
	if obsqra.ErrorCode(err) == obsqra.ENOTFOUND {
		// Spend the same time as a wrong password would.
		_ = bcrypt.CompareHashAndPassword(s.dummyHash, []byte(password))
		return nil, errBadCredentials
	} else if err != nil {
		return nil, err
	}
	if bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(password)) != nil {
		return nil, errBadCredentials
	}
	if !u.Active {
		return nil, obsqra.Errorf(obsqra.EFORBIDDEN, "this account is deactivated")
	}
	if s.cfg.RequireEmailVerification && !u.EmailVerified {
		// The password was right: its failures are forgiven as a
		// sign-in's would be.
		if err := s.db.WithTx(ctx, func(tx *store.Tx) error { return s.throttle.forgive(ctx, tx, keys) }); err != nil {
			return nil, err
		}
		return nil, errEmailNotVerified
	}
	return s.signIn(ctx, u, func(tx *store.Tx) error { return s.throttle.forgive(ctx, tx, keys) })
}

// errEmailNotVerified refuses to sign in a user whose address must be
// verified first (Config.RequireEmailVerification).
var errEmailNotVerified = &obsqra.Error{Code: obsqra.EFORBIDDEN, Reason: obsqra.ReasonEmailNotVerified,
	Message: "verify your email address first: open the link mailed to it (resendVerification with your email sends another)"}

// signIn runs first and opens a new session for u in one unit of work, and
// returns the session's tokens.
func (s *Service) signIn(ctx context.Context, u *obsqra.User, first func(*store.Tx) error) (*obsqra.AuthPayload, error) {
	var payload *obsqra.AuthPayload
	err := s.db.WithTx(ctx, func(tx *store.Tx) error {
		if err := first(tx); err != nil {
			return err
		}
		var err error
		payload, err = s.startSession(ctx, tx, u)
		return err
	})
	if err != nil {
		return nil, err
	}
	return payload, nil
}

// startSession opens a new session for u in tx and returns its tokens.
func (s *Service) startSession(ctx context.Context, tx *store.Tx, u *obsqra.User) (*obsqra.AuthPayload, error) {
	id, err := randomString(s.Rand, 18)
	if err != nil {
		return nil, err
	}
	now := s.now()
	sess := &obsqra.Session{ID: id, UserID: u.ID, CreatedAt: now, ExpiresAt: now.Add(s.cfg.RefreshTTL)}
	if err := tx.CreateSession(ctx, sess); err != nil {
		return nil, err
	}
	return s.issue(ctx, tx, u, sess)
}

// issue adds a refresh token to sess and returns it with a new access token.
func (s *Service) issue(ctx context.Context, tx *store.Tx, u *obsqra.User, sess *obsqra.Session) (*obsqra.AuthPayload, error) {
	refresh, hash, err := newRefreshToken(s.Rand)
	if err != nil {
		return nil, err
	}
	now := s.now()
	expires := now.Add(s.cfg.RefreshTTL)
	if expires.After(sess.ExpiresAt) {
		expires = sess.ExpiresAt
	}
	if err := tx.CreateRefreshToken(ctx, &obsqra.RefreshToken{Hash: hash, SessionID: sess.ID, CreatedAt: now, ExpiresAt: expires}); err != nil {
		return nil, err
	}
	access, err := s.tokens.Issue(u.ID, sess.ID)
	if err != nil {
		return nil, err
	}
	return &obsqra.AuthPayload{
		AccessToken:  access,
		RefreshToken: refresh,
		TokenType:    TokenType,
		ExpiresIn:    int(s.tokens.TTL() / time.Second),
		User:         u,
	}, nil
}

var errBadRefreshToken = obsqra.Errorf(obsqra.EUNAUTHENTICATED, "invalid or expired refresh token")

// Refresh trades a refresh token for a new access token and a new refresh
// token of the same session. A refresh token works once: presenting it a
// second time means it was stolen or replayed, so the whole session is
// revoked, the access tokens of the session included.
// Errors: EUNAUTHENTICATED (unknown, expired, reused or revoked token, or a
// deactivated user).
func (s *Service) Refresh(ctx context.Context, refreshToken string) (*obsqra.AuthPayload, error) {
	if !looksLikeRefreshToken(refreshToken) {
		return nil, errBadRefreshToken
	}
	var payload *obsqra.AuthPayload
	var refusal error
	err := s.db.WithTx(ctx, func(tx *store.Tx) error {
		tok, fresh, err := tx.ConsumeRefreshToken(ctx, hashRefreshToken(refreshToken))
		if obsqra.ErrorCode(err) == obsqra.ENOTFOUND {
			refusal = errBadRefreshToken
			return nil
		} else if err != nil {
			return err
		}
		if !fresh {
			// Commit the revocation, then refuse.
			refusal = obsqra.Errorf(obsqra.EUNAUTHENTICATED, "refresh token was already used; the session has been revoked")
			return tx.RevokeSession(ctx, tok.SessionID, obsqra.RevokeReuse)
		}
		sess, u, err := tx.SessionUser(ctx, tok.SessionID)
		if err != nil {
			return err
		}
		now := s.now()
		switch {
		case sess.Revoked() || !now.Before(tok.ExpiresAt) || !now.Before(sess.ExpiresAt):
			refusal = errBadRefreshToken
			return nil
		case !u.Active:
			refusal = obsqra.Errorf(obsqra.EUNAUTHENTICATED, "this account is deactivated")
			return nil
		case s.cfg.RequireEmailVerification && !u.EmailVerified:
			// A session opened before verification was required.
			refusal = errEmailNotVerified
			return nil
		}
		payload, err = s.issue(ctx, tx, u, sess)
		return err
	})
	if err != nil {
		return nil, err
	} else if refusal != nil {
		return nil, refusal
	}
	return payload, nil
}

// Logout ends the session of refreshToken or, when it is empty, the session
// of the signed-in caller. Ending a session that has already ended succeeds.
// Errors: EUNAUTHENTICATED (unknown refresh token, or neither a token nor a
// signed-in caller).
func (s *Service) Logout(ctx context.Context, refreshToken string) error {
	if refreshToken == "" {
		p, err := s.principal(ctx)
		if err != nil {
			return err
		}
		return s.db.WithTx(ctx, func(tx *store.Tx) error {
			return tx.RevokeSession(ctx, p.SessionID, obsqra.RevokeLogout)
		})
	}
	if !looksLikeRefreshToken(refreshToken) {
		return errBadRefreshToken
	}
	return s.db.WithTx(ctx, func(tx *store.Tx) error {
		tok, err := tx.RefreshTokenByHash(ctx, hashRefreshToken(refreshToken))
		if obsqra.ErrorCode(err) == obsqra.ENOTFOUND {
			return errBadRefreshToken
		} else if err != nil {
			return err
		}
		return tx.RevokeSession(ctx, tok.SessionID, obsqra.RevokeLogout)
	})
}

// LogoutEverywhere ends every session of the signed-in caller, this one
// included: a sign-out from all devices.
// Errors: EUNAUTHENTICATED.
func (s *Service) LogoutEverywhere(ctx context.Context) error {
	p, err := s.principal(ctx)
	if err != nil {
		return err
	}
	return s.db.WithTx(ctx, func(tx *store.Tx) error {
		_, err := tx.RevokeUserSessions(ctx, p.User.ID, obsqra.RevokeLogout)
		return err
	})
}

// Authenticate checks an access token and returns who it stands for. The
// session and the user are read on every call, so a token stops working the
// moment its session is revoked or its user deactivated.
// Errors: EUNAUTHENTICATED.
func (s *Service) Authenticate(ctx context.Context, accessToken string) (*obsqra.Principal, error) {
	tok, err := s.tokens.Parse(accessToken)
	if err != nil {
		return nil, err
	}
	sess, u, err := s.sessionUser(ctx, tok.SessionID, tok.UserID)
	if obsqra.ErrorCode(err) == obsqra.ENOTFOUND {
		return nil, obsqra.Errorf(obsqra.EUNAUTHENTICATED, "invalid access token")
	} else if err != nil {
		return nil, err
	}
	switch {
	case sess.UserID != tok.UserID:
		return nil, obsqra.Errorf(obsqra.EUNAUTHENTICATED, "invalid access token")
	case !u.Active:
		// Before the session's end, which deactivation also causes: the
		// more telling reason (a socket's close frame carries it).
		return nil, obsqra.Errorf(obsqra.EUNAUTHENTICATED, "this account is deactivated")
	case sess.Revoked() || !s.now().Before(sess.ExpiresAt):
		return nil, obsqra.Errorf(obsqra.EUNAUTHENTICATED, "the session of this access token has ended; sign in again")
	}
	expires := tok.ExpiresAt
	if sess.ExpiresAt.Before(expires) {
		expires = sess.ExpiresAt
	}
	return &obsqra.Principal{User: u, SessionID: sess.ID, ExpiresAt: expires}, nil
}

// principal returns the signed-in caller, the error of refused credentials,
// or EUNAUTHENTICATED for an anonymous caller.
func (s *Service) principal(ctx context.Context) (*obsqra.Principal, error) {
	return obsqra.RequireUser(ctx)
}

// UpdatePreferences changes the caller's preferences; fields the patch
// leaves nil keep their values.
// Errors: EUNAUTHENTICATED, EINVALID (a value out of range).
func (s *Service) UpdatePreferences(ctx context.Context, patch obsqra.PreferencesPatch) (*obsqra.User, error) {
	p, err := s.principal(ctx)
	if err != nil {
		return nil, err
	}
	var u *obsqra.User
	err = s.db.WithTx(ctx, func(tx *store.Tx) error {
		u, err = tx.UserByID(ctx, p.User.ID)
		if err != nil {
			return err
		}
		u.Preferences = patch.Apply(u.Preferences)
		if err := u.Preferences.Validate(); err != nil {
			return err
		}
		return tx.UpdateUser(ctx, u)
	})
	if err != nil {
		return nil, err
	}
	return u, nil
}

// checkPassword verifies the caller's current password, throttled like
// sign-in (the same keys, so guesses here and at sign-in add up) so that a
// stolen access token cannot be used to guess it.
// Errors: EFORBIDDEN (wrong password), ERATELIMIT.
func (s *Service) checkPassword(ctx context.Context, u *obsqra.User, password string) error {
	keys := s.throttle.keysFor(u.Email, obsqra.ClientFromContext(ctx).LimitKey())
	if err := s.admit(ctx, keys); err != nil {
		return err
	}
	if len(password) > 1024 || bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(password)) != nil {
		return obsqra.Errorf(obsqra.EFORBIDDEN, "the password is not correct")
	}
	return s.db.WithTx(ctx, func(tx *store.Tx) error { return s.throttle.forgive(ctx, tx, keys) })
}

// ChangePassword sets a new password after checking the current one, and
// ends every session of the user (this one included): the user signs in
// again with the new password everywhere.
// Errors: EUNAUTHENTICATED, EFORBIDDEN (wrong current password), EINVALID
// (new password too short or too long), ERATELIMIT.
func (s *Service) ChangePassword(ctx context.Context, current, next string) error {
	p, err := s.principal(ctx)
	if err != nil {
		return err
	}
	if err := validatePassword(next); err != nil {
		return err
	}
	if err := s.checkPassword(ctx, p.User, current); err != nil {
		return err
	}
	hash, err := s.hashPassword(next)
	if err != nil {
		return err
	}
	return s.db.WithTx(ctx, func(tx *store.Tx) error {
		u, err := tx.UserByID(ctx, p.User.ID)
		if err != nil {
			return err
		}
		u.PasswordHash = string(hash)
		if err := tx.UpdateUser(ctx, u); err != nil {
			return err
		}
		_, err = tx.RevokeUserSessions(ctx, u.ID, obsqra.RevokePasswordChanged)
		return err
	})
}

// DeactivateAccount deactivates the caller's account after checking the
// password and ends every session of the user.
// Errors: EUNAUTHENTICATED, EFORBIDDEN (wrong password), ERATELIMIT.
func (s *Service) DeactivateAccount(ctx context.Context, password string) error {
	p, err := s.principal(ctx)
	if err != nil {
		return err
	}
	if err := s.checkPassword(ctx, p.User, password); err != nil {
		return err
	}
	_, err = s.setActive(ctx, p.User.ID, false)
	return err
}

// SetUserActive activates or deactivates a user; admins only. Deactivation
// ends every session of the user at once. An admin cannot deactivate
// themselves here (deactivateAccount does that, with the password).
// Errors: EUNAUTHENTICATED, EFORBIDDEN (not an admin), ENOTFOUND, EINVALID.
func (s *Service) SetUserActive(ctx context.Context, userID int64, active bool) (*obsqra.User, error) {
	p, err := s.principal(ctx)
	if err != nil {
		return nil, err
	}
	if !p.User.IsAdmin() {
		return nil, obsqra.Errorf(obsqra.EFORBIDDEN, "only admins may activate or deactivate users")
	}
	if userID == p.User.ID && !active {
		return nil, obsqra.Errorf(obsqra.EINVALID, "admins cannot deactivate themselves here; use deactivateAccount")
	}
	return s.setActive(ctx, userID, active)
}

func (s *Service) setActive(ctx context.Context, userID int64, active bool) (*obsqra.User, error) {
	var u *obsqra.User
	err := s.db.WithTx(ctx, func(tx *store.Tx) (err error) {
		u, err = tx.UserByID(ctx, userID)
		if err != nil {
			return err
		}
		if u.Active == active {
			return nil
		}
		u.Active = active
		if err := tx.UpdateUser(ctx, u); err != nil {
			return err
		}
		if !active {
			_, err = tx.RevokeUserSessions(ctx, u.ID, obsqra.RevokeDeactivated)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return u, nil
}

// Promote makes the user with this email an admin (the `obsqra user
// promote` command; no caller check), and says so through the outbox.
// Errors: ENOTFOUND.
func (s *Service) Promote(ctx context.Context, email string) (*obsqra.User, error) {
	var u *obsqra.User
	err := s.db.WithTx(ctx, func(tx *store.Tx) (err error) {
		u, err = tx.UserByEmail(ctx, strings.TrimSpace(email))
		if err != nil {
			return err
		}
		if u.Role == obsqra.RoleAdmin {
			return nil
		}
		u.Role = obsqra.RoleAdmin
		if err := tx.UpdateUser(ctx, u); err != nil {
			return err
		}
		// Published, so that every server (this command runs in a process
		// of its own) applies the role to the user's open sockets.
		return tx.AppendEvent(ctx, obsqra.AccountChangedEvent(u.ID, obsqra.AccountRoleChanged))
	})
	if err != nil {
		return nil, err
	}
	return u, nil
}

// User returns the user with this id when the caller may see it (the user
// themselves, or an admin), and nil otherwise — node(id:) answers null
// rather than confirming that an id exists.
// Errors: EUNAUTHENTICATED (refused credentials).
func (s *Service) User(ctx context.Context, id int64) (*obsqra.User, error) {
	viewer, err := obsqra.Viewer(ctx)
	switch {
	case err != nil:
		return nil, err
	case viewer == nil:
		return nil, nil
	case viewer.ID == id:
		return viewer, nil
	case !viewer.IsAdmin():
		return nil, nil
	}
	u, err := s.db.UserByID(ctx, id)
	if obsqra.ErrorCode(err) == obsqra.ENOTFOUND {
		return nil, nil
	}
	return u, err
}

// Users returns a page of the users filter selects, for an admin looking
// for an account: newest (highest id) first, after the user with id
// afterID (0: from the newest), first+1 of them, so that the caller knows
// whether there is a next page. The email prefix is case-insensitive and
// literal (% and _ are no wildcards).
// Errors: EUNAUTHENTICATED; EFORBIDDEN for a user who is not an admin;
// EINVALID for first outside 1–100, an unknown role or an email prefix
// longer than an email; internal ones.
func (s *Service) Users(ctx context.Context, filter obsqra.UserFilter, first int, afterID int64) ([]obsqra.User, error) {
	if _, err := obsqra.RequireAdmin(ctx, "list users"); err != nil {
		return nil, err
	}
	switch {
	case first < 1 || first > MaxFirst:
		return nil, obsqra.Errorf(obsqra.EINVALID, "first must be between 1 and %d, got %d", MaxFirst, first)
	case filter.Role != nil && !filter.Role.IsValid():
		return nil, obsqra.Errorf(obsqra.EINVALID, "filter.role %q is not a role", *filter.Role)
	case filter.EmailPrefix != nil && len(*filter.EmailPrefix) > MaxEmailBytes:
		return nil, obsqra.Errorf(obsqra.EINVALID, "filter.emailPrefix must be at most %d bytes, as an email is", MaxEmailBytes)
	case afterID < 0:
		return nil, obsqra.Errorf(obsqra.EINVALID, "after: not a cursor of this list")
	}
	return s.db.Users(ctx, filter, afterID, first+1)
}

// NormalizeEmail trims an email address and checks that it is one plain
// address (no display name). Errors: EINVALID.
func NormalizeEmail(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" || len(s) > MaxEmailBytes {
		return "", obsqra.Errorf(obsqra.EINVALID, "email must be an address of at most %d characters", MaxEmailBytes)
	}
	addr, err := mail.ParseAddress(s)
	if err != nil || addr.Address != s || addr.Name != "" || !strings.Contains(s[strings.LastIndexByte(s, '@'):], ".") {
		return "", obsqra.Errorf(obsqra.EINVALID, "email %q is not a valid address", s)
	}
	return s, nil
}

func validatePassword(pw string) error {
	switch {
	case len(pw) > MaxPasswordBytes:
		return obsqra.Errorf(obsqra.EINVALID, "password must be at most %d bytes (bcrypt's limit), got %d bytes; choose a shorter one", MaxPasswordBytes, len(pw))
	case !utf8.ValidString(pw):
		return obsqra.Errorf(obsqra.EINVALID, "password must be valid UTF-8")
	case utf8.RuneCountInString(pw) < MinPasswordChars:
		return obsqra.Errorf(obsqra.EINVALID, "password must be at least %d characters", MinPasswordChars)
	}
	return nil
}

// hashPassword hashes a password its caller has already validated.
func (s *Service) hashPassword(pw string) ([]byte, error) {
	hash, err := s.Hash([]byte(pw), s.cfg.BcryptCost)
	if err != nil {
		return nil, fmt.Errorf("hash password: %w", err)
	}
	return hash, nil
}
