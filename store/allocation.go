package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/obsqra/obsqra"
)

var allocationColumns = []string{
	"id", "user_id", "weights", "reason", "tx_hash", "suggestion_id", "decision_id",
	"portfolio_value_usd", "wallet_block", "created_at"}

var allocationSelect = "SELECT " + columns("", allocationColumns...) + " FROM allocations"

func allocationScanArgs(a *obsqra.Allocation) []any {
	return []any{&a.ID, &a.UserID, weightsScanner{&a.Weights}, &a.Reason, walletScanner{dst: &a.TxHash},
		idScanner{&a.SuggestionID}, idScanner{&a.DecisionID}, decimalScanner{&a.PortfolioValueUsd},
		idScanner{&a.WalletBlock}, scanTime(&a.CreatedAt)}
}

// weightsScanner reads a JSON array of weights.
type weightsScanner struct{ dst *[]obsqra.Weight }

func (s weightsScanner) Scan(src any) error {
	var b []byte
	switch v := src.(type) {
	case string:
		b = []byte(v)
	case []byte:
		b = v
	default:
		return fmt.Errorf("scan weights from %T", src)
	}
	*s.dst = nil
	if err := json.Unmarshal(b, s.dst); err != nil {
		return fmt.Errorf("scan weights: %w", err)
	}
	return nil
}

// InsertAllocation stores a and sets a.ID and a.CreatedAt. The weights are
// stored as a JSON array in the order given; SuggestionID and DecisionID 0
// are stored as NULL.
// Errors: only internal ones (the caller validates).
func (tx *Tx) InsertAllocation(ctx context.Context, a *obsqra.Allocation) error {
	weights, err := json.Marshal(a.Weights)
	if err != nil {
		return fmt.Errorf("encode allocation weights: %w", err)
	}
	c := tx.conn()
	now := tx.now()
	err = c.queryRow(ctx, `
		INSERT INTO allocations (user_id, weights, reason, tx_hash, suggestion_id, decision_id,
			portfolio_value_usd, wallet_block, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		RETURNING id`,
		a.UserID, string(weights), string(a.Reason), stringArg(a.TxHash), idArg(a.SuggestionID), idArg(a.DecisionID),
		stringArg(a.PortfolioValueUsd), idArg(a.WalletBlock), c.d.timeArg(now)).Scan(&a.ID)
	if err != nil {
		return translate(err, "insert allocation", "allocation")
	}
	a.CreatedAt = now
	return nil
}

// Allocation returns the allocation with the given id. It does not check
// who may see it.
// Errors: ENOTFOUND when there is none; otherwise internal ones.
func (db *DB) Allocation(ctx context.Context, id int64) (*obsqra.Allocation, error) {
	a := new(obsqra.Allocation)
	if err := db.conn().queryRow(ctx, allocationSelect+" WHERE id = ?", id).Scan(allocationScanArgs(a)...); err != nil {
		return nil, translate(err, "load allocation", "allocation")
	}
	return a, nil
}

// LatestAllocation returns the user's newest allocation, by creation time
// and then id: the one in effect.
// Errors: ENOTFOUND when the user has none; otherwise internal ones.
func (db *DB) LatestAllocation(ctx context.Context, userID int64) (*obsqra.Allocation, error) {
	return latestAllocation(ctx, db.conn(), userID)
}

// LatestAllocation is (*DB).LatestAllocation as this unit of work sees it.
func (tx *Tx) LatestAllocation(ctx context.Context, userID int64) (*obsqra.Allocation, error) {
	return latestAllocation(ctx, tx.conn(), userID)
}

func latestAllocation(ctx context.Context, c conn, userID int64) (*obsqra.Allocation, error) {
	a := new(obsqra.Allocation)
	err := c.queryRow(ctx, allocationSelect+" WHERE user_id = ? ORDER BY created_at DESC, id DESC LIMIT 1", userID).
		Scan(allocationScanArgs(a)...)
	if err != nil {
		return nil, translate(err, "load latest allocation", "allocation")
	}
	return a, nil
}

// AllocationQuery selects a page of a user's allocations, newest first ((created_at DESC, id DESC)).
type AllocationQuery struct {
	UserID   int64
	From, To *time.Time         // bound created_at, inclusive
	After    *obsqra.HistoryKey // continue after this (created_at, id) position
	Limit    int
}

// Allocations returns the page of a user's allocations q selects, newest
// first. Errors: EINVALID for a limit below 1; otherwise internal ones.
func (db *DB) Allocations(ctx context.Context, q AllocationQuery) ([]obsqra.Allocation, error) {
	if q.Limit < 1 {
		return nil, obsqra.Errorf(obsqra.EINVALID, "limit must be at least 1, got %d", q.Limit)
	}
	c := db.conn()
	where, args := keysetWhere(c, "user_id", q.UserID, "created_at", q.From, q.To, q.After)
	args = append(args, q.Limit)
	return queryAllocations(ctx, c, "list allocations",
		allocationSelect+" WHERE "+where+" ORDER BY created_at DESC, id DESC LIMIT ?", args...)
}

// AllocationsSince returns, oldest first, the user's allocation in effect
// at since (the newest created at or before it), if any, followed by every
// allocation created after since, in one statement: the allocations that
// held the portfolio from since on. The last is the user's latest.
// Errors: only internal ones.
func (db *DB) AllocationsSince(ctx context.Context, userID int64, since time.Time) ([]obsqra.Allocation, error) {
	c := db.conn()
	list := columns("", allocationColumns...)
	at := c.d.timeArg(since)
	return queryAllocations(ctx, c, "list allocations since",
		"SELECT "+list+" FROM (SELECT "+list+" FROM allocations WHERE user_id = ? AND created_at <= ?"+
			" ORDER BY created_at DESC, id DESC LIMIT 1) AS in_effect"+
			" UNION ALL SELECT "+list+" FROM allocations WHERE user_id = ? AND created_at > ?"+
			" ORDER BY created_at, id",
		userID, at, userID, at)
}

// queryAllocations runs query, which selects allocationColumns, and
// returns its rows; op names it in errors.
func queryAllocations(ctx context.Context, c conn, op, query string, args ...any) ([]obsqra.Allocation, error) {
	rows, err := c.query(ctx, query, args...)
	if err != nil {
		return nil, translate(err, op, "allocation")
	}
	defer rows.Close()
	var out []obsqra.Allocation
	for rows.Next() {
		var a obsqra.Allocation
		if err := rows.Scan(allocationScanArgs(&a)...); err != nil {
			return nil, translate(err, op, "allocation")
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, translate(err, op, "row")
	}
	return out, nil
}

// AllocationsByTxHash returns, for each of hashes, the user's newest
// allocation recorded with that transaction hash, in one statement;
// hashes without one are absent.
// Errors: only internal ones.
func (db *DB) AllocationsByTxHash(ctx context.Context, userID int64, hashes []obsqra.Felt) (map[obsqra.Felt]obsqra.Allocation, error) {
	out := make(map[obsqra.Felt]obsqra.Allocation, len(hashes))
	if len(hashes) == 0 {
		return out, nil
	}
	args := []any{userID}
	for _, h := range hashes {
		args = append(args, h.String())
	}
	all, err := queryAllocations(ctx, db.conn(), "load allocations by transaction",
		allocationSelect+" WHERE user_id = ? AND tx_hash IN ("+placeholders(len(hashes))+") ORDER BY created_at, id", args...)
	if err != nil {
		return nil, err
	}
	for _, a := range all {
		out[*a.TxHash] = a // oldest first: the newest wins
	}
	return out, nil
}
