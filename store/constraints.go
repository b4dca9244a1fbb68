package store

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"

	"github.com/obsqra/obsqra"
)

var constraintRequestColumns = columns("", "nonce", "user_id", "address", "chain_id",
	"max_single_bps", "min_diversification", "max_volatility_bps", "max_liquidity_tier", "issued_at", "expires_at", "used_at")

func constraintRequestScanArgs(r *obsqra.ConstraintRequest) []any {
	return []any{&r.Nonce, &r.UserID, &r.Address, &r.ChainID,
		&r.Set.MaxSingleBps, &r.Set.MinDiversification, &r.Set.MaxVolatilityBps, &r.Set.MaxLiquidityTier,
		scanTime(&r.IssuedAt), scanTime(&r.ExpiresAt), scanNullTime(&r.UsedAt)}
}

// CreateConstraintRequest retires the user's open constraint requests
// (only the newest can be signed: a wallet signs what it was shown last)
// and stores r, open, with its times in UTC at microsecond resolution (and
// set so on r).
// Errors: ECONFLICT when the nonce exists already; otherwise internal ones
// (the caller validates the set, the nonce and the times).
func (tx *Tx) CreateConstraintRequest(ctx context.Context, r *obsqra.ConstraintRequest) error {
	c := tx.conn()
	r.IssuedAt, r.ExpiresAt, r.UsedAt = stamp(r.IssuedAt), stamp(r.ExpiresAt), nil
	if _, err := c.exec(ctx, "UPDATE constraint_requests SET used_at = ? WHERE user_id = ? AND used_at IS NULL",
		c.d.timeArg(r.IssuedAt), r.UserID); err != nil {
		return translate(err, "retire constraint requests", "constraint request")
	}
	_, err := c.exec(ctx, "INSERT INTO constraint_requests ("+constraintRequestColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)",
		r.Nonce, r.UserID, r.Address.String(), r.ChainID,
		r.Set.MaxSingleBps, r.Set.MinDiversification, r.Set.MaxVolatilityBps, r.Set.MaxLiquidityTier,
		c.d.timeArg(r.IssuedAt), c.d.timeArg(r.ExpiresAt))
	return translate(err, "create constraint request", "constraint request")
}

// LatestConstraintRequest returns the user's open constraint request, or
// when none is open, the newest used one.
// Errors: ENOTFOUND when the user has none; otherwise internal ones.
func (db *DB) LatestConstraintRequest(ctx context.Context, userID int64) (*obsqra.ConstraintRequest, error) {
	r := new(obsqra.ConstraintRequest)
	err := db.conn().queryRow(ctx, "SELECT "+constraintRequestColumns+" FROM constraint_requests WHERE user_id = ?"+
		" ORDER BY CASE WHEN used_at IS NULL THEN 0 ELSE 1 END, issued_at DESC, nonce DESC LIMIT 1", userID).Scan(constraintRequestScanArgs(r)...)
	if err != nil {
		return nil, translate(err, "load constraint request", "constraint request")
	}
	return r, nil
}

// ConsumeConstraintRequest marks the user's request nonce used at now, in
// one statement, so that of two attempts with one nonce exactly one
// succeeds. It does not judge the expiry.
// Errors: ENOTFOUND when the user has no request nonce; ECONFLICT when it
// is used already; otherwise internal ones.
func (tx *Tx) ConsumeConstraintRequest(ctx context.Context, nonce string, userID int64, now time.Time) error {
	c := tx.conn()
	n, err := c.execCount(ctx, "UPDATE constraint_requests SET used_at = ? WHERE nonce = ? AND user_id = ? AND used_at IS NULL",
		c.d.timeArg(now), nonce, userID)
	if err != nil {
		return translate(err, "consume constraint request", "constraint request")
	}
	if n == 1 {
		return nil
	}
	var one int
	if err := c.queryRow(ctx, "SELECT 1 FROM constraint_requests WHERE nonce = ? AND user_id = ?", nonce, userID).Scan(&one); err != nil {
		return translate(err, "load constraint request", "constraint request")
	}
	return obsqra.Errorf(obsqra.ECONFLICT, "this constraint request has been used already; request a new one")
}

// PruneConstraintRequests deletes the requests that expired before before,
// used or not, and returns how many it deleted. Errors: only internal ones.
func (db *DB) PruneConstraintRequests(ctx context.Context, before time.Time) (int64, error) {
	c := db.conn()
	n, err := c.execCount(ctx, "DELETE FROM constraint_requests WHERE expires_at < ?", c.d.timeArg(before))
	return n, translate(err, "prune constraint requests", "constraint request")
}

var signedConstraintsColumns = columns("", "id", "user_id", "signer", "chain_id", "nonce",
	"max_single_bps", "min_diversification", "max_volatility_bps", "max_liquidity_tier",
	"signature", "message_hash", "issued_at", "expires_at", "signed_at")

// signatureScanner reads a signature stored as comma-separated felts.
type signatureScanner struct{ dst *[]obsqra.Felt }

func (s signatureScanner) Scan(v any) error {
	var text string
	switch v := v.(type) {
	case string:
		text = v
	case []byte:
		text = string(v)
	default:
		return errors.New("signature: not text")
	}
	parts := strings.Split(text, ",")
	out := make([]obsqra.Felt, len(parts))
	for i, p := range parts {
		f, err := obsqra.ParseFelt(p)
		if err != nil {
			return err
		}
		out[i] = f
	}
	*s.dst = out
	return nil
}

func signatureArg(sig []obsqra.Felt) string {
	parts := make([]string, len(sig))
	for i, f := range sig {
		parts[i] = f.String()
	}
	return strings.Join(parts, ",")
}

func signedConstraintsScanArgs(s *obsqra.SignedConstraints) []any {
	return []any{&s.ID, &s.UserID, &s.Signer, &s.ChainID, &s.Nonce,
		&s.Set.MaxSingleBps, &s.Set.MinDiversification, &s.Set.MaxVolatilityBps, &s.Set.MaxLiquidityTier,
		signatureScanner{&s.Signature}, &s.MessageHash, scanTime(&s.IssuedAt), scanTime(&s.ExpiresAt), scanTime(&s.SignedAt)}
}

// AppendSignedConstraints records s, a set the user's wallet signed, and
// sets s.ID; its times are stored in UTC at microsecond resolution (and
// set so on s). Recorded sets are never changed: the user's newest is the
// active one.
// Errors: ECONFLICT when a set with the nonce exists already; otherwise
// internal ones.
func (tx *Tx) AppendSignedConstraints(ctx context.Context, s *obsqra.SignedConstraints) error {
	c := tx.conn()
	s.IssuedAt, s.ExpiresAt, s.SignedAt = stamp(s.IssuedAt), stamp(s.ExpiresAt), stamp(s.SignedAt)
	err := c.queryRow(ctx, "INSERT INTO signed_constraints (user_id, signer, chain_id, nonce,"+
		" max_single_bps, min_diversification, max_volatility_bps, max_liquidity_tier, signature, message_hash, issued_at, expires_at, signed_at)"+
		" VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
		s.UserID, s.Signer.String(), s.ChainID, s.Nonce,
		s.Set.MaxSingleBps, s.Set.MinDiversification, s.Set.MaxVolatilityBps, s.Set.MaxLiquidityTier,
		signatureArg(s.Signature), s.MessageHash.String(), c.d.timeArg(s.IssuedAt), c.d.timeArg(s.ExpiresAt), c.d.timeArg(s.SignedAt)).Scan(&s.ID)
	return translate(err, "append signed constraints", "signed constraints")
}

// SignedConstraintsPage returns a page of the user's signed sets, newest
// first (signed_at DESC, id DESC), after the cursor when one is given, at
// most limit. Errors: EINVALID for a limit below 1; otherwise internal
// ones.
func (db *DB) SignedConstraintsPage(ctx context.Context, userID int64, after *obsqra.HistoryKey, limit int) ([]obsqra.SignedConstraints, error) {
	if limit < 1 {
		return nil, obsqra.Errorf(obsqra.EINVALID, "limit must be at least 1, got %d", limit)
	}
	c := db.conn()
	where, args := keysetWhere(c, "user_id", userID, "signed_at", nil, nil, after)
	rows, err := c.query(ctx, "SELECT "+signedConstraintsColumns+" FROM signed_constraints WHERE "+where+
		" ORDER BY signed_at DESC, id DESC LIMIT ?", append(args, limit)...)
	if err != nil {
		return nil, translate(err, "list signed constraints", "signed constraints")
	}
	defer rows.Close()
	var out []obsqra.SignedConstraints
	for rows.Next() {
		var s obsqra.SignedConstraints
		if err := rows.Scan(signedConstraintsScanArgs(&s)...); err != nil {
			return nil, translate(err, "scan signed constraints", "signed constraints")
		}
		out = append(out, s)
	}
	return out, translate(rows.Err(), "list signed constraints", "signed constraints")
}

// ActiveSignedConstraints returns the user's newest signed set.
// Errors: ENOTFOUND when the user never signed one; otherwise internal
// ones.
func (db *DB) ActiveSignedConstraints(ctx context.Context, userID int64) (*obsqra.SignedConstraints, error) {
	s := new(obsqra.SignedConstraints)
	err := db.conn().queryRow(ctx, "SELECT "+signedConstraintsColumns+" FROM signed_constraints WHERE user_id = ?"+
		" ORDER BY signed_at DESC, id DESC LIMIT 1", userID).Scan(signedConstraintsScanArgs(s)...)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, obsqra.Errorf(obsqra.ENOTFOUND, "no signed constraints")
	}
	if err != nil {
		return nil, translate(err, "load signed constraints", "signed constraints")
	}
	return s, nil
}

// SignedConstraintsByID returns the signed set id.
// Errors: ENOTFOUND when there is none; otherwise internal ones.
func (db *DB) SignedConstraintsByID(ctx context.Context, id int64) (*obsqra.SignedConstraints, error) {
	s := new(obsqra.SignedConstraints)
	err := db.conn().queryRow(ctx, "SELECT "+signedConstraintsColumns+" FROM signed_constraints WHERE id = ?", id).Scan(signedConstraintsScanArgs(s)...)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, obsqra.Errorf(obsqra.ENOTFOUND, "no signed constraints %d", id)
	}
	if err != nil {
		return nil, translate(err, "load signed constraints", "signed constraints")
	}
	return s, nil
}
