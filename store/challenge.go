package store

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/obsqra/obsqra"
)

var walletChallengeColumns = columns("", "nonce", "user_id", "address", "chain_id", "issued_at", "expires_at", "used_at")

func walletChallengeScanArgs(w *obsqra.WalletChallenge) []any {
	return []any{&w.Nonce, &w.UserID, &w.Address, &w.ChainID, scanTime(&w.IssuedAt), scanTime(&w.ExpiresAt), scanNullTime(&w.UsedAt)}
}

// CreateWalletChallenge stores the unused challenge w, whose times are
// stored in UTC at microsecond resolution (and set so on w).
// Errors: ECONFLICT when the nonce exists already; otherwise internal ones
// (the caller validates: a nonce of 32 lowercase hex digits, a chain id of
// 1 to 66 characters, an expiry after the issue).
func (tx *Tx) CreateWalletChallenge(ctx context.Context, w *obsqra.WalletChallenge) error {
	c := tx.conn()
	w.IssuedAt, w.ExpiresAt, w.UsedAt = stamp(w.IssuedAt), stamp(w.ExpiresAt), nil
	_, err := c.exec(ctx, "INSERT INTO wallet_challenges ("+walletChallengeColumns+") VALUES (?, ?, ?, ?, ?, ?, NULL)",
		w.Nonce, w.UserID, w.Address.String(), w.ChainID, c.d.timeArg(w.IssuedAt), c.d.timeArg(w.ExpiresAt))
	return translate(err, "create wallet challenge", "wallet challenge")
}

// ConsumeWalletChallenge marks the user's challenge nonce used at now and
// returns it, in one statement, so that of two attempts with the same
// nonce exactly one succeeds. It does not judge the expiry: the caller
// checks ExpiresAt of what it gets (a consumed expired challenge can be
// used by no one either).
// Errors: ENOTFOUND when the user has no challenge nonce (none at all, or
// another user's); ECONFLICT when it is used already; otherwise internal
// ones.
func (tx *Tx) ConsumeWalletChallenge(ctx context.Context, nonce string, userID int64, now time.Time) (*obsqra.WalletChallenge, error) {
	c := tx.conn()
	w := new(obsqra.WalletChallenge)
	err := c.queryRow(ctx, "UPDATE wallet_challenges SET used_at = ? WHERE nonce = ? AND user_id = ? AND used_at IS NULL RETURNING "+walletChallengeColumns,
		c.d.timeArg(now), nonce, userID).Scan(walletChallengeScanArgs(w)...)
	if err == nil {
		return w, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return nil, translate(err, "consume wallet challenge", "wallet challenge")
	}
	// The update found nothing to consume: the challenge is used, or not
	// the user's at all.
	var one int
	if err := c.queryRow(ctx, "SELECT 1 FROM wallet_challenges WHERE nonce = ? AND user_id = ?", nonce, userID).Scan(&one); err != nil {
		return nil, translate(err, "load wallet challenge", "wallet challenge")
	}
	return nil, obsqra.Errorf(obsqra.ECONFLICT, "this wallet challenge has been used already; request a new one")
}

// PruneWalletChallenges deletes the challenges that expired before before,
// used or not, and returns how many it deleted.
// Errors: only internal ones.
func (db *DB) PruneWalletChallenges(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := db.WithTx(ctx, func(tx *Tx) error {
		c := tx.conn()
		var err error
		n, err = c.execCount(ctx, "DELETE FROM wallet_challenges WHERE expires_at < ?", c.d.timeArg(before))
		return translate(err, "prune wallet challenges", "wallet challenge")
	})
	return n, err
}

// LatestWalletChallenge returns the user's newest unused challenge for
// address, or when all are used, the newest used one.
// Errors: ENOTFOUND when the user has none for it; otherwise internal ones.
func (db *DB) LatestWalletChallenge(ctx context.Context, userID int64, address obsqra.Felt) (*obsqra.WalletChallenge, error) {
	w := new(obsqra.WalletChallenge)
	err := db.conn().queryRow(ctx, "SELECT "+walletChallengeColumns+" FROM wallet_challenges WHERE user_id = ? AND address = ?"+
		" ORDER BY CASE WHEN used_at IS NULL THEN 0 ELSE 1 END, issued_at DESC, nonce DESC LIMIT 1", userID, address.String()).Scan(walletChallengeScanArgs(w)...)
	if err != nil {
		return nil, translate(err, "load wallet challenge", "wallet challenge")
	}
	return w, nil
}

// RetireWalletChallenges marks the user's unused challenges for address
// used at now: issuing a new challenge retires the older ones, so only the
// newest can be redeemed. Errors: only internal ones.
func (tx *Tx) RetireWalletChallenges(ctx context.Context, userID int64, address obsqra.Felt, now time.Time) error {
	c := tx.conn()
	_, err := c.exec(ctx, "UPDATE wallet_challenges SET used_at = ? WHERE user_id = ? AND address = ? AND used_at IS NULL",
		c.d.timeArg(now), userID, address.String())
	return translate(err, "retire wallet challenges", "wallet challenge")
}
