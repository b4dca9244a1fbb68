package store

import (
	"context"
	"database/sql"
	"errors"

	"github.com/obsqra/obsqra"
)

// decisionLockKey is the pg_advisory_xact_lock key that serialises decision
// appends on PostgreSQL ("obsqra/decisions" in short ASCII). A unit of work
// that appends both decisions and events takes this lock first.
const decisionLockKey int64 = 0x6f62737172646563

var decisionSelect = "SELECT " + columns("",
	"id", "kind", "inputs", "output", "model_version", "created_at", "prev_hash", "hash") + " FROM decisions"

func decisionScanArgs(d *obsqra.Decision, inputs, output *string) []any {
	return []any{&d.ID, &d.Kind, inputs, output, &d.ModelVersion, scanTime(&d.CreatedAt), &d.PrevHash, &d.Hash}
}

// AppendDecision appends d to the decision log: it takes the next id, links
// d to the last entry's hash, stamps d.CreatedAt and sets d.Hash. Appends
// are serialised (an advisory lock on PostgreSQL, the single writer on
// SQLite), so the chain never forks; the unique prev_hash would refuse a
// fork anyway. d.Inputs and d.Output must be JSON objects; they are stored
// byte for byte, since the hash covers their bytes.
// Errors: only internal ones.
func (tx *Tx) AppendDecision(ctx context.Context, d *obsqra.Decision) error {
	c := tx.conn()
	if c.d.eventLock != "" {
		if _, err := c.exec(ctx, c.d.eventLock, decisionLockKey); err != nil {
			return translate(err, "lock decision log", "decision")
		}
	}
	var lastID int64
	prev := obsqra.GenesisHash
	err := c.queryRow(ctx, "SELECT id, hash FROM decisions ORDER BY id DESC LIMIT 1").Scan(&lastID, &prev)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return translate(err, "read last decision", "decision")
	}
	d.ID, d.PrevHash, d.CreatedAt = lastID+1, prev, tx.now()
	d.Hash = d.ComputeHash(tx.db.DecisionKey)
	_, err = c.exec(ctx, `
		INSERT INTO decisions (id, kind, inputs, output, model_version, created_at, prev_hash, hash)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		d.ID, string(d.Kind), string(d.Inputs), string(d.Output), d.ModelVersion, c.d.timeArg(d.CreatedAt), d.PrevHash, d.Hash)
	return translate(err, "append decision", "decision")
}

// Decision returns the decision with the given id.
// Errors: ENOTFOUND when there is none; otherwise internal ones.
func (db *DB) Decision(ctx context.Context, id int64) (*obsqra.Decision, error) {
	d := new(obsqra.Decision)
	var inputs, output string
	if err := db.conn().queryRow(ctx, decisionSelect+" WHERE id = ?", id).Scan(decisionScanArgs(d, &inputs, &output)...); err != nil {
		return nil, translate(err, "load decision", "decision")
	}
	d.Inputs, d.Output = obsqra.JSONObject(inputs), obsqra.JSONObject(output)
	return d, nil
}

// decisionChainBatch is how many entries VerifyDecisionChain reads per
// statement.
const decisionChainBatch = 2000

// VerifyDecisionChain walks the decision log from its first entry through
// upTo, recomputing each entry's hash with db.DecisionKey and checking that
// it links to its predecessor's and that ids leave no gap. It returns the
// first entry that fails (upTo+1 when entries are missing), or 0 when the
// chain is whole. Errors: only internal ones.
func (db *DB) VerifyDecisionChain(ctx context.Context, upTo int64) (brokenAt int64, err error) {
	return db.VerifyDecisionRange(ctx, 0, obsqra.GenesisHash, upTo)
}

// VerifyDecisionRange is VerifyDecisionChain from the entry after afterID,
// taking afterHash as the hash of entry afterID; an empty afterHash is read
// from the log (trusting entry afterID as it is). Errors: only internal
// ones.
func (db *DB) VerifyDecisionRange(ctx context.Context, afterID int64, afterHash string, upTo int64) (brokenAt int64, err error) {
	c := db.conn()
	if afterHash == "" {
		if afterID == 0 {
			afterHash = obsqra.GenesisHash
		} else if err := c.queryRow(ctx, "SELECT hash FROM decisions WHERE id = ?", afterID).Scan(&afterHash); errors.Is(err, sql.ErrNoRows) {
			return afterID, nil
		} else if err != nil {
			return 0, translate(err, "read decision hash", "decision")
		}
	}
	prev, next := afterHash, afterID+1
	for next <= upTo {
		rows, err := c.query(ctx, decisionSelect+" WHERE id >= ? AND id <= ? ORDER BY id LIMIT ?", next, upTo, decisionChainBatch)
		if err != nil {
			return 0, translate(err, "read decision log", "decision")
		}
		n := 0
		for rows.Next() {
			n++
			var d obsqra.Decision
			var inputs, output string
			if err := rows.Scan(decisionScanArgs(&d, &inputs, &output)...); err != nil {
				rows.Close()
				return 0, translate(err, "scan decision log", "decision")
			}
			d.Inputs, d.Output = obsqra.JSONObject(inputs), obsqra.JSONObject(output)
			if d.ID != next || d.PrevHash != prev || d.ComputeHash(db.DecisionKey) != d.Hash {
				rows.Close()
				return next, nil
			}
			prev, next = d.Hash, next+1
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return 0, translate(err, "read decision log", "row")
		}
		if n == 0 {
			return next, nil // entries up to upTo are missing
		}
	}
	return 0, nil
}

// LastDecision returns the id and hash of the newest decision, or 0 and
// the genesis hash for an empty log. Errors: only internal ones.
func (db *DB) LastDecision(ctx context.Context) (int64, string, error) {
	var id int64
	hash := obsqra.GenesisHash
	err := db.conn().queryRow(ctx, "SELECT id, hash FROM decisions ORDER BY id DESC LIMIT 1").Scan(&id, &hash)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, "", translate(err, "read last decision", "decision")
	}
	return id, hash, nil
}
