package store

import (
	"context"
	"database/sql"
	"strings"

	"github.com/obsqra/obsqra"
)

// userColumns are the users columns every user query reads, in the order
// userScanArgs scans them. prefix qualifies them for joins ("u.").
func userColumns(prefix string) string {
	return columns(prefix,
		"id", "email", "full_name", "password_hash", "wallet_address",
		"email_verified", "role", "active",
		"risk_tolerance", "auto_rebalance", "rebalance_threshold_bps",
		"max_single_bps", "min_diversification", "max_volatility_bps", "max_liquidity_tier", "email_alerts",
		"created_at", "updated_at")
}

var userSelect = "SELECT " + userColumns("") + " FROM users"

// userScan holds what scanning a user needs beyond the user itself.
type userScan struct {
	u      *obsqra.User
	wallet walletScanner
}

func newUserScan(u *obsqra.User) *userScan {
	return &userScan{u: u, wallet: walletScanner{dst: &u.WalletAddress}}
}

// args returns the scan destinations, in userColumns order.
func (s *userScan) args() []any {
	u := s.u
	p := &u.Preferences
	return []any{
		&u.ID, &u.Email, &u.FullName, &u.PasswordHash, s.wallet,
		&u.EmailVerified, &u.Role, &u.Active,
		&p.RiskTolerance, &p.AutoRebalance, &p.RebalanceThresholdBps,
		&p.MaxSingleBps, &p.MinDiversification, &p.MaxVolatilityBps, &p.MaxLiquidityTier, &p.EmailAlerts,
		scanTime(&u.CreatedAt), scanTime(&u.UpdatedAt),
	}
}

// emailKey is the case-insensitive form of an email the UNIQUE index holds.
func emailKey(email string) string { return strings.ToLower(email) }

// CreateUser inserts u, whose Email the caller has already normalised, and
// sets u.ID, u.CreatedAt and u.UpdatedAt.
// Errors: ECONFLICT when the email (in any case) is already registered or
// the wallet address is linked to another user; otherwise internal ones.
func (tx *Tx) CreateUser(ctx context.Context, u *obsqra.User) error {
	now := tx.now()
	c := tx.conn()
	p := u.Preferences
	err := c.queryRow(ctx, `
		INSERT INTO users (email, email_key, full_name, password_hash, wallet_address,
			email_verified, role, active,
			risk_tolerance, auto_rebalance, rebalance_threshold_bps,
			max_single_bps, min_diversification, max_volatility_bps, max_liquidity_tier, email_alerts,
			created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		RETURNING id`,
		u.Email, emailKey(u.Email), u.FullName, u.PasswordHash, stringArg(u.WalletAddress),
		u.EmailVerified, string(u.Role), u.Active,
		string(p.RiskTolerance), p.AutoRebalance, p.RebalanceThresholdBps,
		p.MaxSingleBps, p.MinDiversification, p.MaxVolatilityBps, p.MaxLiquidityTier, p.EmailAlerts,
		c.d.timeArg(now), c.d.timeArg(now),
	).Scan(&u.ID)
	if err != nil {
		return translate(err, "create user", "user")
	}
	u.CreatedAt, u.UpdatedAt = now, now
	return nil
}

// UpdateUser writes every mutable column of u (full name, password hash,
// wallet address, email verification, role, active, preferences) and stamps
// u.UpdatedAt, with the user's TopicAccountChanged event (AccountUpdated)
// for the read models that keep the user. The email is not mutable.
// Errors: ENOTFOUND when the user does not exist; ECONFLICT when the wallet
// address is linked to another user; otherwise internal ones.
func (tx *Tx) UpdateUser(ctx context.Context, u *obsqra.User) error {
	now := tx.now()
	c := tx.conn()
	p := u.Preferences
	n, err := c.execCount(ctx, `
		UPDATE users SET full_name = ?, password_hash = ?, wallet_address = ?,
			email_verified = ?, role = ?, active = ?,
			risk_tolerance = ?, auto_rebalance = ?, rebalance_threshold_bps = ?,
			max_single_bps = ?, min_diversification = ?, max_volatility_bps = ?, max_liquidity_tier = ?, email_alerts = ?,
			updated_at = ?
		WHERE id = ?`,
		u.FullName, u.PasswordHash, stringArg(u.WalletAddress),
		u.EmailVerified, string(u.Role), u.Active,
		string(p.RiskTolerance), p.AutoRebalance, p.RebalanceThresholdBps,
		p.MaxSingleBps, p.MinDiversification, p.MaxVolatilityBps, p.MaxLiquidityTier, p.EmailAlerts,
		c.d.timeArg(now), u.ID,
	)
	if err == nil && n == 0 {
		err = sql.ErrNoRows
	}
	if err != nil {
		return translate(err, "update user", "user")
	}
	u.UpdatedAt = now
	return tx.AppendEvent(ctx, obsqra.AccountChangedEvent(u.ID, obsqra.AccountUpdated))
}

// ChangeUserEmail replaces the email of the user userID with email, which
// the caller has normalised and verified (the address is verified from
// then on), and stamps updated_at, with the user's TopicAccountChanged
// event (AccountUpdated).
// Errors: ENOTFOUND when the user does not exist; ECONFLICT when another
// account has the email (in any case); otherwise internal ones.
func (tx *Tx) ChangeUserEmail(ctx context.Context, userID int64, email string) error {
	c := tx.conn()
	n, err := c.execCount(ctx, "UPDATE users SET email = ?, email_key = ?, email_verified = ?, updated_at = ? WHERE id = ?",
		email, emailKey(email), true, c.d.timeArg(tx.now()), userID)
	if err == nil && n == 0 {
		err = sql.ErrNoRows
	}
	if err != nil {
		return translate(err, "change user email", "user")
	}
	return tx.AppendEvent(ctx, obsqra.AccountChangedEvent(userID, obsqra.AccountUpdated))
}

// UserByID returns the user with the given id.
// Errors: ENOTFOUND when there is none; otherwise internal ones.
func (db *DB) UserByID(ctx context.Context, id int64) (*obsqra.User, error) {
	return userByID(ctx, db.conn(), id)
}

// UserByID returns the user with the given id, as this unit of work sees it.
// Errors: ENOTFOUND when there is none; otherwise internal ones.
func (tx *Tx) UserByID(ctx context.Context, id int64) (*obsqra.User, error) {
	return userByID(ctx, tx.conn(), id)
}

// UserByEmail returns the user registered with email, in any case.
// Errors: ENOTFOUND when there is none; otherwise internal ones.
func (db *DB) UserByEmail(ctx context.Context, email string) (*obsqra.User, error) {
	return userByEmail(ctx, db.conn(), email)
}

// UserByEmail returns the user registered with email, in any case, as this
// unit of work sees it.
// Errors: ENOTFOUND when there is none; otherwise internal ones.
func (tx *Tx) UserByEmail(ctx context.Context, email string) (*obsqra.User, error) {
	return userByEmail(ctx, tx.conn(), email)
}

func userByID(ctx context.Context, c conn, id int64) (*obsqra.User, error) {
	u := new(obsqra.User)
	if err := c.queryRow(ctx, userSelect+" WHERE id = ?", id).Scan(newUserScan(u).args()...); err != nil {
		return nil, translate(err, "load user by id", "user")
	}
	return u, nil
}

func userByEmail(ctx context.Context, c conn, email string) (*obsqra.User, error) {
	u := new(obsqra.User)
	if err := c.queryRow(ctx, userSelect+" WHERE email_key = ?", emailKey(email)).Scan(newUserScan(u).args()...); err != nil {
		return nil, translate(err, "load user by email", "user")
	}
	return u, nil
}

// AutoRebalanceUsers returns the active users who turned automatic
// rebalancing on, ordered by id. Errors: only internal ones.
func (db *DB) AutoRebalanceUsers(ctx context.Context) ([]obsqra.User, error) {
	// Booleans are INTEGER 0 or 1 on SQLite, where a bare column is true
	// when it is not 0, as on PostgreSQL's boolean.
	rows, err := db.conn().query(ctx, userSelect+" WHERE active AND auto_rebalance ORDER BY id")
	if err != nil {
		return nil, translate(err, "list auto-rebalance users", "user")
	}
	defer rows.Close()
	var out []obsqra.User
	for rows.Next() {
		var u obsqra.User
		if err := rows.Scan(newUserScan(&u).args()...); err != nil {
			return nil, translate(err, "scan auto-rebalance users", "user")
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, translate(err, "list auto-rebalance users", "row")
	}
	return out, nil
}

// Users returns the users filter selects, newest (highest id) first, from
// the one after afterID (0: from the newest), at most limit of them (callers
// pass first+1 to learn whether there is a next page), in one statement.
// The email prefix matches email_key, the lower-cased email, with every
// character of the prefix taken literally.
// Errors: EINVALID for a limit below 1; otherwise internal ones.
func (db *DB) Users(ctx context.Context, filter obsqra.UserFilter, afterID int64, limit int) ([]obsqra.User, error) {
	if limit < 1 {
		return nil, obsqra.Errorf(obsqra.EINVALID, "limit must be at least 1, got %d", limit)
	}
	var conds []string
	var args []any
	if p := filter.EmailPrefix; p != nil && *p != "" {
		conds = append(conds, `email_key LIKE ? ESCAPE '\'`)
		args = append(args, likePrefix(emailKey(*p)))
	}
	if filter.Role != nil {
		conds = append(conds, "role = ?")
		args = append(args, string(*filter.Role))
	}
	if filter.Active != nil {
		conds = append(conds, "active = ?")
		args = append(args, *filter.Active)
	}
	if filter.EmailVerified != nil {
		conds = append(conds, "email_verified = ?")
		args = append(args, *filter.EmailVerified)
	}
	if afterID != 0 {
		conds = append(conds, "id < ?")
		args = append(args, afterID)
	}
	where := ""
	if len(conds) > 0 {
		where = " WHERE " + strings.Join(conds, " AND ")
	}
	args = append(args, limit)
	rows, err := db.conn().query(ctx, userSelect+where+" ORDER BY id DESC LIMIT ?", args...)
	if err != nil {
		return nil, translate(err, "list users", "user")
	}
	defer rows.Close()
	var out []obsqra.User
	for rows.Next() {
		var u obsqra.User
		if err := rows.Scan(newUserScan(&u).args()...); err != nil {
			return nil, translate(err, "scan users", "user")
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, translate(err, "list users", "row")
	}
	return out, nil
}

// likeEscaper escapes the characters LIKE gives a meaning to, with the
// backslash that the queries name in their ESCAPE clause.
var likeEscaper = strings.NewReplacer(`\`, `\\`, "%", `\%`, "_", `\_`)

// likePrefix returns the LIKE pattern (with ESCAPE '\') of the strings that
// start with prefix, every character of prefix matching only itself.
func likePrefix(prefix string) string { return likeEscaper.Replace(prefix) + "%" }

// SetUserWallet links wallet (nil: none) to the user and returns the user
// as stored, changing nothing else: a concurrent change of the user's
// other columns (a password, an admin's deactivation) is not undone. The
// user's TopicAccountChanged event (AccountUpdated) is appended with it.
// Errors: ENOTFOUND; ECONFLICT when the wallet is another user's; otherwise
// internal ones.
func (tx *Tx) SetUserWallet(ctx context.Context, userID int64, wallet *obsqra.Felt) (*obsqra.User, error) {
	c := tx.conn()
	n, err := c.execCount(ctx, "UPDATE users SET wallet_address = ?, updated_at = ? WHERE id = ?",
		stringArg(wallet), c.d.timeArg(tx.now()), userID)
	if err == nil && n == 0 {
		err = sql.ErrNoRows
	}
	if err != nil {
		return nil, translate(err, "set user wallet", "user")
	}
	if err := tx.AppendEvent(ctx, obsqra.AccountChangedEvent(userID, obsqra.AccountUpdated)); err != nil {
		return nil, err
	}
	return tx.UserByID(ctx, userID)
}
