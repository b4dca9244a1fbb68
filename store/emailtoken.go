package store

import (
	"context"
	"crypto/subtle"
	"database/sql"
	"errors"
	"time"

	"github.com/obsqra/obsqra"
)

// Purposes of an email token.
const (
	// TokenVerifyEmail verifies an address: a new account's, or the new
	// address of an email change (EmailToken.NewEmail).
	TokenVerifyEmail = "verify_email"
	// TokenResetPassword lets its holder set a new password.
	TokenResetPassword = "reset_password"
)

// EmailToken is a single-use token mailed to a user, as stored: its hash,
// never the token.
type EmailToken struct {
	ID      int64
	UserID  int64
	Purpose string
	// Hash is the SHA-256 of the token.
	Hash []byte
	// NewEmail is the address an email change verifies; empty otherwise.
	NewEmail  string
	CreatedAt time.Time
	ExpiresAt time.Time
	UsedAt    *time.Time
}

var emailTokenColumns = columns("", "id", "user_id", "purpose", "token_hash", "new_email", "created_at", "expires_at", "used_at")

func emailTokenScanArgs(t *EmailToken, newEmail *sql.NullString) []any {
	return []any{&t.ID, &t.UserID, &t.Purpose, &t.Hash, newEmail, scanTime(&t.CreatedAt), scanTime(&t.ExpiresAt), scanNullTime(&t.UsedAt)}
}

// CreateEmailToken stores t, unused, and sets its ID; its times are stored
// in UTC at microsecond resolution (and set so on t).
// Errors: ECONFLICT when a token of the same hash exists (a token of 128
// random bits or more never collides: the caller makes a new one);
// otherwise internal ones.
func (tx *Tx) CreateEmailToken(ctx context.Context, t *EmailToken) error {
	c := tx.conn()
	t.CreatedAt, t.ExpiresAt, t.UsedAt = stamp(t.CreatedAt), stamp(t.ExpiresAt), nil
	var newEmail any
	if t.NewEmail != "" {
		newEmail = t.NewEmail
	}
	err := c.queryRow(ctx, "INSERT INTO email_tokens (user_id, purpose, token_hash, new_email, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
		t.UserID, t.Purpose, t.Hash, newEmail, c.d.timeArg(t.CreatedAt), c.d.timeArg(t.ExpiresAt)).Scan(&t.ID)
	return translate(err, "create email token", "email token")
}

// ConsumeEmailToken marks the unused, unexpired token of purpose whose
// hash is hash as used at now, and returns it, in one statement: of two
// attempts with the same token exactly one succeeds.
// Errors: ENOTFOUND, the same for a token that never existed, was used,
// expired, or is of another purpose, so that an answer tells a guesser
// nothing; otherwise internal ones.
func (tx *Tx) ConsumeEmailToken(ctx context.Context, purpose string, hash []byte, now time.Time) (*EmailToken, error) {
	c := tx.conn()
	t := new(EmailToken)
	var newEmail sql.NullString
	err := c.queryRow(ctx, "UPDATE email_tokens SET used_at = ? WHERE token_hash = ? AND purpose = ? AND used_at IS NULL AND expires_at > ? RETURNING "+emailTokenColumns,
		c.d.timeArg(now), hash, purpose, c.d.timeArg(now)).Scan(emailTokenScanArgs(t, &newEmail)...)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, obsqra.Errorf(obsqra.ENOTFOUND, "this link is invalid, used or expired; ask for a new one")
	}
	if err != nil {
		return nil, translate(err, "consume email token", "email token")
	}
	// The row was found by its hash; comparing again in constant time
	// costs nothing and does not rest on how the index compares.
	if subtle.ConstantTimeCompare(t.Hash, hash) != 1 {
		return nil, obsqra.Errorf(obsqra.ENOTFOUND, "this link is invalid, used or expired; ask for a new one")
	}
	t.NewEmail = newEmail.String
	return t, nil
}

// RevokeEmailTokens marks every unused token of the user for purpose used
// at now (a new one was issued, or the password changed), and returns how
// many.
// Errors: only internal ones.
func (tx *Tx) RevokeEmailTokens(ctx context.Context, userID int64, purpose string, now time.Time) (int64, error) {
	c := tx.conn()
	n, err := c.execCount(ctx, "UPDATE email_tokens SET used_at = ? WHERE user_id = ? AND purpose = ? AND used_at IS NULL",
		c.d.timeArg(now), userID, purpose)
	return n, translate(err, "revoke email tokens", "email token")
}

// PruneEmailTokens deletes the tokens that expired before before, used or
// not, and returns how many it deleted.
// Errors: only internal ones.
func (db *DB) PruneEmailTokens(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := db.WithTx(ctx, func(tx *Tx) error {
		c := tx.conn()
		var err error
		n, err = c.execCount(ctx, "DELETE FROM email_tokens WHERE expires_at < ?", c.d.timeArg(before))
		return translate(err, "prune email tokens", "email token")
	})
	return n, err
}

// LatestEmailTokenAt returns when the user's newest token of purpose for
// newEmail ("" for the account's own address) was created, used or not,
// or the zero time when there is none: how the mails a stranger can
// trigger are capped per recipient.
// Errors: only internal ones.
func (tx *Tx) LatestEmailTokenAt(ctx context.Context, userID int64, purpose, newEmail string) (time.Time, error) {
	c := tx.conn()
	var at *time.Time
	err := c.queryRow(ctx, "SELECT MAX(created_at) FROM email_tokens WHERE user_id = ? AND purpose = ? AND COALESCE(new_email, '') = ?",
		userID, purpose, newEmail).Scan(scanNullTime(&at))
	if err != nil {
		return time.Time{}, translate(err, "read latest email token", "email token")
	}
	if at == nil {
		return time.Time{}, nil
	}
	return *at, nil
}
