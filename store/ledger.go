package store

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"

	"github.com/obsqra/obsqra"
)

// The transaction log keeps three tables (migration 00005):
//   - transactions, the logged core columns, never changed after insert;
//   - transaction_events, the history: a row per status a transaction
//     reached, never changed either;
//   - transaction_state, one row per transaction with its latest status,
//     receipt and watch schedule, updated in place by the watcher.
//
// The current state lives in a table of its own, rather than computed from
// the history at each read, so that the hot path, a user's page of
// transactions with their statuses, is one statement that walks
// transactions_user_time_idx and joins one row by primary key each, and
// the watcher's queue is an index on next_check_at. It is derived data
// kept in step with the history by the store (RecordStatus writes both in
// one unit of work) and by the database (triggers refuse a state whose
// step is not in the history, and a status that moves back).

// LoggedReason is the reason of every transaction's first history step.
const LoggedReason = "logged"

// transactionColumns are what every transaction query reads, in the order
// transactionScan scans them; queries alias transactions t and
// transaction_state s.
var transactionColumns = columns("t.",
	"id", "user_id", "tx_hash", "type", "amount", "token", "token_address", "details", "created_at") + ", " +
	columns("s.", "status", "execution_status", "failure_reason", "block_number", "fee_amount", "fee_unit",
		"events_emitted", "updated_at", "last_checked_at")

// transactionFrom joins each transaction to its state. Conditions on "id"
// unqualified mean t.id: transaction_state has no id column (keysetWhere
// writes it so).
const transactionFrom = " FROM transactions t JOIN transaction_state s ON s.transaction_id = t.id"

var transactionSelect = "SELECT " + transactionColumns + transactionFrom

// transactionScan holds what scanning a transaction needs beyond it.
type transactionScan struct {
	t         *obsqra.Transaction
	feeAmount *obsqra.Decimal
	feeUnit   string
}

// args returns the scan destinations, in transactionColumns order.
func (s *transactionScan) args() []any {
	t := s.t
	return []any{&t.ID, &t.UserID, &t.TxHash, &t.Type, &t.Amount, &t.Token, walletScanner{&t.TokenAddress},
		jsonObjectScanner{&t.Details}, scanTime(&t.CreatedAt),
		&t.Status, &t.ExecutionStatus, &t.FailureReason, &t.BlockNumber, decimalScanner{&s.feeAmount}, textScanner{&s.feeUnit},
		&t.EventsEmitted, scanTime(&t.UpdatedAt), scanNullTime(&t.LastCheckedAt)}
}

// finish sets what the scan read into several columns.
func (s *transactionScan) finish() {
	s.t.Fee = nil
	if s.feeAmount != nil && s.feeUnit != "" {
		s.t.Fee = &obsqra.Fee{Amount: *s.feeAmount, Unit: s.feeUnit}
	}
}

// InsertTransaction logs t: it stores the core columns (UserID, TxHash,
// Type, Amount, Token, TokenAddress, Details), the first step of its
// history (PENDING, reason LoggedReason) and its state, due for a check at
// once. Transactions are idempotent on their hash: when one with t.TxHash
// is logged already, whoever logged it, it returns that one unchanged and
// created false. The returned transaction is as stored, with its state.
// Errors: only internal ones (the caller validates; a value the database's
// checks refuse is an internal error).
func (tx *Tx) InsertTransaction(ctx context.Context, t *obsqra.Transaction) (stored *obsqra.Transaction, created bool, err error) {
	c := tx.conn()
	now := tx.now()
	at := c.d.timeArg(now)
	var id int64
	err = c.queryRow(ctx, `
		INSERT INTO transactions (user_id, tx_hash, type, amount, token, token_address, details, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (tx_hash) DO NOTHING
		RETURNING id`,
		t.UserID, t.TxHash.String(), string(t.Type), t.Amount.String(), t.Token, stringArg(t.TokenAddress),
		jsonObjectArg(t.Details), at).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		old, err := transactionWhere(ctx, c, "load logged transaction", "t.tx_hash = ?", t.TxHash.String())
		return old, false, err
	}
	if err != nil {
		return nil, false, translate(err, "insert transaction", "transaction")
	}
	if _, err := c.exec(ctx, `
		INSERT INTO transaction_events (transaction_id, status, execution_status, raw_status, reason, at)
		VALUES (?, ?, NULL, '', ?, ?)`,
		id, string(obsqra.TxPending), LoggedReason, at); err != nil {
		return nil, false, translate(err, "insert first transaction event", "transaction")
	}
	if _, err := c.exec(ctx, `
		INSERT INTO transaction_state (transaction_id, status, updated_at, next_check_at)
		VALUES (?, ?, ?, ?)`,
		id, string(obsqra.TxPending), at, at); err != nil {
		return nil, false, translate(err, "insert transaction state", "transaction")
	}
	out := &obsqra.Transaction{
		ID: id, UserID: t.UserID, TxHash: t.TxHash, Type: t.Type, Amount: t.Amount, Token: t.Token,
		TokenAddress: t.TokenAddress, Details: t.Details, CreatedAt: now, Status: obsqra.TxPending, UpdatedAt: now,
	}
	return out, true, nil
}

// Transaction returns the transaction with the given id, with its state.
// It does not check who may see it.
// Errors: ENOTFOUND when there is none; otherwise internal ones.
func (db *DB) Transaction(ctx context.Context, id int64) (*obsqra.Transaction, error) {
	return transactionWhere(ctx, db.conn(), "load transaction", "t.id = ?", id)
}

// Transaction is (*DB).Transaction as this unit of work sees it.
func (tx *Tx) Transaction(ctx context.Context, id int64) (*obsqra.Transaction, error) {
	return transactionWhere(ctx, tx.conn(), "load transaction", "t.id = ?", id)
}

// TransactionByHash returns the transaction logged with hash, with its
// state. It does not check who may see it.
// Errors: ENOTFOUND when there is none; otherwise internal ones.
func (db *DB) TransactionByHash(ctx context.Context, hash obsqra.Felt) (*obsqra.Transaction, error) {
	return transactionWhere(ctx, db.conn(), "load transaction by hash", "t.tx_hash = ?", hash.String())
}

func transactionWhere(ctx context.Context, c conn, op, cond string, args ...any) (*obsqra.Transaction, error) {
	s := &transactionScan{t: new(obsqra.Transaction)}
	if err := c.queryRow(ctx, transactionSelect+" WHERE "+cond, args...).Scan(s.args()...); err != nil {
		return nil, translate(err, op, "transaction")
	}
	s.finish()
	return s.t, nil
}

// Transactions returns a page of at most limit of the user's transactions
// that filter selects, with their state, newest first ((created_at, id)
// descending), after the position after when it is set: one statement.
// Errors: EINVALID for a limit below 1; otherwise internal ones.
func (db *DB) Transactions(ctx context.Context, userID int64, filter obsqra.TransactionFilter, after *obsqra.HistoryKey, limit int) ([]obsqra.Transaction, error) {
	if limit < 1 {
		return nil, obsqra.Errorf(obsqra.EINVALID, "limit must be at least 1, got %d", limit)
	}
	c := db.conn()
	where, args := keysetWhere(c, "t.user_id", userID, "t.created_at", filter.From, filter.To, after)
	if filter.Type != nil {
		where += " AND t.type = ?"
		args = append(args, string(*filter.Type))
	}
	if filter.Status != nil {
		where += " AND s.status = ?"
		args = append(args, string(*filter.Status))
	}
	args = append(args, limit)
	rows, err := c.query(ctx, transactionSelect+" WHERE "+where+" ORDER BY t.created_at DESC, t.id DESC LIMIT ?", args...)
	if err != nil {
		return nil, translate(err, "list transactions", "transaction")
	}
	defer rows.Close()
	var out []obsqra.Transaction
	for rows.Next() {
		var t obsqra.Transaction
		s := &transactionScan{t: &t}
		if err := rows.Scan(s.args()...); err != nil {
			return nil, translate(err, "scan transaction", "transaction")
		}
		s.finish()
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, translate(err, "list transactions", "row")
	}
	return out, nil
}

// maxIDsPerStatement bounds the ids one IN list carries, far below either
// dialect's limit of arguments.
const maxIDsPerStatement = 500

// TransactionHistory returns, keyed by transaction id, the history of each
// of the user's transactions among ids, oldest step first: one statement
// per 500 distinct ids. A transaction that is not the user's, or does not
// exist, is absent.
// Errors: only internal ones.
func (db *DB) TransactionHistory(ctx context.Context, userID int64, ids []int64) (map[int64][]obsqra.TxStatusChange, error) {
	out := make(map[int64][]obsqra.TxStatusChange, len(ids))
	c := db.conn()
	for _, group := range pageGroupsOf(ids, maxIDsPerStatement) {
		args := make([]any, 0, len(group)+1)
		args = append(args, userID)
		for _, id := range group {
			args = append(args, id)
		}
		rows, err := c.query(ctx, "SELECT "+columns("e.", "id", "transaction_id", "status", "execution_status", "raw_status", "reason", "at")+
			" FROM transaction_events e JOIN transactions t ON t.id = e.transaction_id"+
			" WHERE t.user_id = ? AND e.transaction_id IN (?"+strings.Repeat(", ?", len(group)-1)+")"+
			" ORDER BY e.transaction_id, e.id", args...)
		if err != nil {
			return nil, translate(err, "load transaction history", "transaction")
		}
		if err := scanHistory(rows, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// scanHistory reads history rows into out and closes rows.
func scanHistory(rows *sql.Rows, out map[int64][]obsqra.TxStatusChange) error {
	defer rows.Close()
	for rows.Next() {
		var e obsqra.TxStatusChange
		if err := rows.Scan(&e.ID, &e.TransactionID, &e.Status, &e.ExecutionStatus, &e.RawStatus, &e.Reason, scanTime(&e.At)); err != nil {
			return translate(err, "scan transaction history", "transaction")
		}
		out[e.TransactionID] = append(out[e.TransactionID], e)
	}
	if err := rows.Err(); err != nil {
		return translate(err, "load transaction history", "row")
	}
	return nil
}

// pageGroupsOf returns the distinct ids, in their first order, in groups
// of at most size.
func pageGroupsOf(ids []int64, size int) [][]int64 {
	seen := make(map[int64]bool, len(ids))
	var groups [][]int64
	for _, id := range ids {
		if seen[id] {
			continue
		}
		seen[id] = true
		if len(groups) == 0 || len(groups[len(groups)-1]) == size {
			groups = append(groups, make([]int64, 0, min(size, len(ids))))
		}
		groups[len(groups)-1] = append(groups[len(groups)-1], id)
	}
	return groups
}

// DueTransactions returns at most limit transactions whose status is not
// final and whose next check is due at now, soonest due first (then by
// id), with their state and schedule: one statement on the index of the
// schedule.
// Errors: EINVALID for a limit below 1; otherwise internal ones.
func (db *DB) DueTransactions(ctx context.Context, now time.Time, limit int) ([]obsqra.WatchedTransaction, error) {
	if limit < 1 {
		return nil, obsqra.Errorf(obsqra.EINVALID, "limit must be at least 1, got %d", limit)
	}
	c := db.conn()
	// next_check_at is NULL exactly when the status is final (a check of
	// transaction_state), so the index holds the transactions to follow
	// and nothing else.
	rows, err := c.query(ctx, "SELECT "+transactionColumns+", s.next_check_at, s.not_found_since"+transactionFrom+
		" WHERE s.next_check_at <= ? ORDER BY s.next_check_at, s.transaction_id LIMIT ?", c.d.timeArg(now), limit)
	if err != nil {
		return nil, translate(err, "list due transactions", "transaction")
	}
	defer rows.Close()
	var out []obsqra.WatchedTransaction
	for rows.Next() {
		var w obsqra.WatchedTransaction
		s := &transactionScan{t: &w.Transaction}
		if err := rows.Scan(append(s.args(), scanTime(&w.NextCheckAt), scanNullTime(&w.NotFoundSince))...); err != nil {
			return nil, translate(err, "scan due transaction", "transaction")
		}
		s.finish()
		out = append(out, w)
	}
	if err := rows.Err(); err != nil {
		return nil, translate(err, "list due transactions", "row")
	}
	return out, nil
}

// RecordStatus appends a step to the history of transaction id, stamped
// now, and makes it the transaction's state: its status, its execution
// status (nil keeps the known one) and failure reason. A final status ends
// the transaction's watch. Statuses only move forward: the step must
// reach a later status, or learn the execution status at the same one.
// It returns the step as stored.
// Errors: EINVALID for an unknown status; ENOTFOUND when there is no such
// transaction; ECONFLICT for a step back, a step that changes a known
// execution status, or one that changes nothing; otherwise internal ones.
func (tx *Tx) RecordStatus(ctx context.Context, id int64, u obsqra.StatusUpdate) (*obsqra.TxStatusChange, error) {
	if !u.Status.IsValid() || (u.ExecutionStatus != nil && !u.ExecutionStatus.IsValid()) {
		return nil, obsqra.Errorf(obsqra.EINVALID, "unknown transaction status %q", u.Status)
	}
	c := tx.conn()
	var cur obsqra.TxStatus
	var curExec *obsqra.ExecutionStatus
	err := c.queryRow(ctx, "SELECT status, execution_status FROM transaction_state WHERE transaction_id = ?"+c.d.forUpdate, id).
		Scan(&cur, &curExec)
	if err != nil {
		return nil, translate(err, "load transaction state", "transaction")
	}
	exec := curExec
	switch {
	case curExec != nil && u.ExecutionStatus != nil && *u.ExecutionStatus != *curExec:
		return nil, obsqra.Errorf(obsqra.ECONFLICT, "transaction %d: the execution status is %s already, not %s", id, *curExec, *u.ExecutionStatus)
	case curExec == nil:
		exec = u.ExecutionStatus
	}
	switch {
	case u.Status.Rank() < cur.Rank():
		return nil, obsqra.Errorf(obsqra.ECONFLICT, "transaction %d: the status cannot move back from %s to %s", id, cur, u.Status)
	case u.Status == cur && (exec == nil) == (curExec == nil):
		return nil, obsqra.Errorf(obsqra.ECONFLICT, "transaction %d: %s is its status already", id, cur)
	}
	now := tx.now()
	at := c.d.timeArg(now)
	step := &obsqra.TxStatusChange{TransactionID: id, Status: u.Status, ExecutionStatus: exec, RawStatus: u.RawStatus, Reason: u.Reason, At: now}
	err = c.queryRow(ctx, `
		INSERT INTO transaction_events (transaction_id, status, execution_status, raw_status, reason, at)
		VALUES (?, ?, ?, ?, ?, ?)
		RETURNING id`,
		id, string(u.Status), execArg(exec), u.RawStatus, u.Reason, at).Scan(&step.ID)
	if err != nil {
		return nil, translate(err, "insert transaction event", "transaction")
	}
	var failure any
	if u.FailureReason != nil {
		failure = *u.FailureReason
	}
	// A final status is never checked again: the schedule check of
	// transaction_state wants next_check_at NULL with it.
	_, err = c.exec(ctx, `
		UPDATE transaction_state SET status = ?, execution_status = ?, failure_reason = COALESCE(?, failure_reason),
			updated_at = ?, next_check_at = CASE WHEN ? THEN NULL ELSE next_check_at END
		WHERE transaction_id = ?`,
		string(u.Status), execArg(exec), failure, at, u.Status.IsFinal(), id)
	if err != nil {
		return nil, translate(err, "update transaction state", "transaction")
	}
	return step, nil
}

// RecordReceipt sets the block number, fee and events count of transaction
// id from its receipt; a nil field keeps what is known.
// Errors: ENOTFOUND when there is no such transaction; otherwise internal
// ones (a negative block number, fee or count is refused by the
// database).
func (tx *Tx) RecordReceipt(ctx context.Context, id int64, r obsqra.Receipt) error {
	c := tx.conn()
	var feeAmount, feeUnit any
	if r.Fee != nil {
		feeAmount, feeUnit = r.Fee.Amount.String(), r.Fee.Unit
	}
	var events any
	if r.EventsEmitted != nil {
		events = *r.EventsEmitted
	}
	var block any
	if r.BlockNumber != nil {
		block = *r.BlockNumber
	}
	n, err := c.execCount(ctx, `
		UPDATE transaction_state SET block_number = COALESCE(?, block_number),
			fee_amount = COALESCE(?, fee_amount), fee_unit = COALESCE(?, fee_unit),
			events_emitted = COALESCE(?, events_emitted), updated_at = ?
		WHERE transaction_id = ?`,
		block, feeAmount, feeUnit, events, c.d.timeArg(tx.now()), id)
	if err != nil {
		return translate(err, "record transaction receipt", "transaction")
	}
	if n == 0 {
		return obsqra.Errorf(obsqra.ENOTFOUND, "transaction not found")
	}
	return nil
}

// TouchTransaction records that the watcher checked transaction id at
// checkedAt, when to check it next (nil once its status is final: the
// database refuses nil for a status that is not, and a time for one that
// is) and since when the node has not known it (nil when it does).
// Errors: ENOTFOUND when there is no such transaction; otherwise internal
// ones.
func (tx *Tx) TouchTransaction(ctx context.Context, id int64, checkedAt time.Time, nextCheckAt, notFoundSince *time.Time) error {
	c := tx.conn()
	n, err := c.execCount(ctx,
		"UPDATE transaction_state SET last_checked_at = ?, next_check_at = ?, not_found_since = ? WHERE transaction_id = ?",
		c.d.timeArg(checkedAt), c.d.nullTimeArg(nextCheckAt), c.d.nullTimeArg(notFoundSince), id)
	if err != nil {
		return translate(err, "record transaction check", "transaction")
	}
	if n == 0 {
		return obsqra.Errorf(obsqra.ENOTFOUND, "transaction not found")
	}
	return nil
}
