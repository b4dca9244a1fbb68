package store

import (
	"context"
	"database/sql"
	"errors"

	"github.com/obsqra/obsqra"
)

// sessionColumns are the sessions columns every session query reads, in
// the order sessionScanArgs scans them; prefix qualifies them for joins.
func sessionColumns(prefix string) string {
	return columns(prefix, "id", "user_id", "created_at", "expires_at", "revoked_at", "revoke_reason")
}

var refreshTokenColumns = columns("", "hash", "session_id", "created_at", "expires_at", "used_at")

func sessionScanArgs(s *obsqra.Session) []any {
	return []any{&s.ID, &s.UserID, scanTime(&s.CreatedAt), scanTime(&s.ExpiresAt), scanNullTime(&s.RevokedAt), &s.RevokeReason}
}

func refreshTokenScanArgs(t *obsqra.RefreshToken) []any {
	return []any{&t.Hash, &t.SessionID, scanTime(&t.CreatedAt), scanTime(&t.ExpiresAt), scanNullTime(&t.UsedAt)}
}

// CreateSession inserts s, stamping s.CreatedAt with the store's clock.
// s.ExpiresAt (and s.RevokedAt, if set) are kept as the store keeps every
// time: UTC, truncated to microseconds, and s is updated to match.
// Errors: ECONFLICT when a session with s.ID exists; otherwise internal ones
// (among them a user id that does not exist).
func (tx *Tx) CreateSession(ctx context.Context, s *obsqra.Session) error {
	c := tx.conn()
	now := tx.now()
	expires := stamp(s.ExpiresAt)
	_, err := c.exec(ctx, `
		INSERT INTO sessions (id, user_id, created_at, expires_at, revoked_at, revoke_reason)
		VALUES (?, ?, ?, ?, ?, ?)`,
		s.ID, s.UserID, c.d.timeArg(now), c.d.timeArg(expires), c.d.nullTimeArg(s.RevokedAt), s.RevokeReason)
	if err != nil {
		return translate(err, "create session", "session")
	}
	s.CreatedAt, s.ExpiresAt = now, expires
	if s.RevokedAt != nil {
		t := stamp(*s.RevokedAt)
		s.RevokedAt = &t
	}
	return nil
}

// SessionByID returns the session with the given id, revoked or expired
// ones included.
// Errors: ENOTFOUND when there is none; otherwise internal ones.
func (db *DB) SessionByID(ctx context.Context, id string) (*obsqra.Session, error) {
	return sessionByID(ctx, db.conn(), id)
}

// SessionByID returns the session with the given id, as this unit of work
// sees it.
// Errors: ENOTFOUND when there is none; otherwise internal ones.
func (tx *Tx) SessionByID(ctx context.Context, id string) (*obsqra.Session, error) {
	return sessionByID(ctx, tx.conn(), id)
}

func sessionByID(ctx context.Context, c conn, id string) (*obsqra.Session, error) {
	s := new(obsqra.Session)
	err := c.queryRow(ctx, "SELECT "+sessionColumns("")+" FROM sessions WHERE id = ?", id).Scan(sessionScanArgs(s)...)
	if err != nil {
		return nil, translate(err, "load session", "session")
	}
	return s, nil
}

// sessionUserQuery reads a session and its user in one statement: it runs on
// every authenticated request.
var sessionUserQuery = "SELECT " + sessionColumns("s.") + ", " + userColumns("u.") +
	" FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = ?"

// SessionUser returns the session with the given id and its user, in one
// query. The caller decides what a revoked or expired session, or an
// inactive user, means.
// Errors: ENOTFOUND when the session does not exist; otherwise internal ones.
func (db *DB) SessionUser(ctx context.Context, sessionID string) (*obsqra.Session, *obsqra.User, error) {
	return sessionUser(ctx, db.conn(), sessionID)
}

// SessionUser returns the session with the given id and its user, in one
// query, as this unit of work sees them.
// Errors: ENOTFOUND when the session does not exist; otherwise internal ones.
func (tx *Tx) SessionUser(ctx context.Context, sessionID string) (*obsqra.Session, *obsqra.User, error) {
	return sessionUser(ctx, tx.conn(), sessionID)
}

func sessionUser(ctx context.Context, c conn, sessionID string) (*obsqra.Session, *obsqra.User, error) {
	s, u := new(obsqra.Session), new(obsqra.User)
	args := append(sessionScanArgs(s), newUserScan(u).args()...)
	if err := c.queryRow(ctx, sessionUserQuery, sessionID).Scan(args...); err != nil {
		return nil, nil, translate(err, "load session and user", "session")
	}
	return s, u, nil
}

// RevokeSession ends the session with the given id now, for reason (one of
// the obsqra.Revoke* reasons). Revoking a revoked session changes nothing,
// its first revocation time and reason stay, and is not an error. A
// revocation appends an obsqra.TopicAccountChanged event in the same unit of
// work, so that every instance closes the sockets the session signed in,
// whoever revoked it: no caller can end a session and forget to say so.
// Errors: ENOTFOUND when the session does not exist; otherwise internal ones.
func (tx *Tx) RevokeSession(ctx context.Context, id, reason string) error {
	c := tx.conn()
	var userID int64
	err := c.queryRow(ctx,
		"UPDATE sessions SET revoked_at = ?, revoke_reason = ? WHERE id = ? AND revoked_at IS NULL RETURNING user_id",
		c.d.timeArg(tx.now()), reason, id).Scan(&userID)
	if errors.Is(err, sql.ErrNoRows) {
		// Already revoked, or missing: only the latter is an error.
		var one int
		err := c.queryRow(ctx, "SELECT 1 FROM sessions WHERE id = ?", id).Scan(&one)
		if err != nil {
			return translate(err, "revoke session", "session")
		}
		return nil
	} else if err != nil {
		return translate(err, "revoke session", "session")
	}
	return tx.AppendEvent(ctx, obsqra.AccountChangedEvent(userID, reason))
}

// RevokeUserSessions ends, now and for reason, every live session of the
// user: those neither revoked nor expired. It returns how many it ended,
// and when it ended any it appends an obsqra.TopicAccountChanged event in
// the same unit of work (see RevokeSession).
// Errors: only internal ones.
func (tx *Tx) RevokeUserSessions(ctx context.Context, userID int64, reason string) (int, error) {
	c := tx.conn()
	now := c.d.timeArg(tx.now())
	n, err := c.execCount(ctx, `
		UPDATE sessions SET revoked_at = ?, revoke_reason = ?
		WHERE user_id = ? AND revoked_at IS NULL AND expires_at > ?`,
		now, reason, userID, now)
	if err != nil {
		return 0, translate(err, "revoke sessions of user", "session")
	}
	if n > 0 {
		if err := tx.AppendEvent(ctx, obsqra.AccountChangedEvent(userID, reason)); err != nil {
			return 0, err
		}
	}
	return int(n), nil
}

// CreateRefreshToken inserts t, stamping t.CreatedAt with the store's clock;
// t.ExpiresAt (and t.UsedAt, if set) are kept in UTC, truncated to
// microseconds, and t is updated to match.
// Errors: ECONFLICT when a token with t.Hash exists; otherwise internal ones
// (among them a session id that does not exist).
func (tx *Tx) CreateRefreshToken(ctx context.Context, t *obsqra.RefreshToken) error {
	c := tx.conn()
	now := tx.now()
	expires := stamp(t.ExpiresAt)
	_, err := c.exec(ctx, `
		INSERT INTO refresh_tokens (hash, session_id, created_at, expires_at, used_at)
		VALUES (?, ?, ?, ?, ?)`,
		t.Hash, t.SessionID, c.d.timeArg(now), c.d.timeArg(expires), c.d.nullTimeArg(t.UsedAt))
	if err != nil {
		return translate(err, "create refresh token", "refresh token")
	}
	t.CreatedAt, t.ExpiresAt = now, expires
	if t.UsedAt != nil {
		u := stamp(*t.UsedAt)
		t.UsedAt = &u
	}
	return nil
}

// ConsumeRefreshToken marks the token with the given hash used, atomically:
// of any number of concurrent calls for one hash, exactly one returns
// fresh = true. A token that was already used is returned with
// fresh = false: it is being replayed, and the caller should revoke its
// session. Expiry is the caller's to check.
// Errors: ENOTFOUND for an unknown hash; otherwise internal ones.
func (tx *Tx) ConsumeRefreshToken(ctx context.Context, hash string) (token *obsqra.RefreshToken, fresh bool, err error) {
	c := tx.conn()
	t := new(obsqra.RefreshToken)
	// On PostgreSQL a second UPDATE of the row waits for the first
	// transaction to end, then finds used_at set and matches nothing; on
	// SQLite the two transactions cannot overlap at all.
	err = c.queryRow(ctx,
		"UPDATE refresh_tokens SET used_at = ? WHERE hash = ? AND used_at IS NULL RETURNING "+refreshTokenColumns,
		c.d.timeArg(tx.now()), hash).Scan(refreshTokenScanArgs(t)...)
	switch {
	case err == nil:
		return t, true, nil
	case !errors.Is(err, sql.ErrNoRows):
		return nil, false, translate(err, "consume refresh token", "refresh token")
	}
	t, err = refreshTokenByHash(ctx, c, hash)
	if err != nil {
		return nil, false, err
	}
	return t, false, nil
}

// RefreshTokenByHash returns the refresh token stored under hash, used or not.
// Errors: ENOTFOUND for an unknown hash; otherwise internal ones.
func (tx *Tx) RefreshTokenByHash(ctx context.Context, hash string) (*obsqra.RefreshToken, error) {
	return refreshTokenByHash(ctx, tx.conn(), hash)
}

func refreshTokenByHash(ctx context.Context, c conn, hash string) (*obsqra.RefreshToken, error) {
	t := new(obsqra.RefreshToken)
	err := c.queryRow(ctx, "SELECT "+refreshTokenColumns+" FROM refresh_tokens WHERE hash = ?", hash).Scan(refreshTokenScanArgs(t)...)
	if err != nil {
		return nil, translate(err, "load refresh token", "refresh token")
	}
	return t, nil
}
