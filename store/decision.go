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

// DecisionHasher returns the hash a decision log entry must carry, given
// the entry with its ID, PrevHash and CreatedAt set. The store has no
// hasher of its own: the decision package's, keyed by the server's secret,
// is the one to pass, so that no entry is appended under an empty key.
type DecisionHasher func(d *obsqra.Decision) string

// AppendDecision appends d to the decision log: it takes the next id, links
// d to the last entry's hash, stamps d.CreatedAt and sets d.Hash to what
// hash returns for it. Appends are serialised (an advisory lock on
// PostgreSQL, taken after the outbox's, see LockDecisions; the single writer
// on SQLite), so the chain never forks; the
// unique prev_hash would refuse a fork anyway. d.Inputs and d.Output must be
// JSON objects; they are stored byte for byte, since the hash covers their
// bytes.
// Errors: only internal ones (a nil hasher, or one that returns no hash,
// is one).
func (tx *Tx) AppendDecision(ctx context.Context, d *obsqra.Decision, hash DecisionHasher) error {
	if hash == nil {
		return errors.New("append decision: no hasher")
	}
	if err := tx.LockDecisions(ctx); err != nil {
		return err
	}
	c := tx.conn()
	var lastID int64
	prev := obsqra.GenesisHash
	err := c.queryRow(ctx, "SELECT id, hash FROM decisions ORDER BY id DESC LIMIT 1").Scan(&lastID, &prev)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return translate(err, "read last decision", "decision")
	}
	d.ID, d.PrevHash, d.CreatedAt = lastID+1, prev, tx.now()
	if d.Hash = hash(d); d.Hash == "" {
		return errors.New("append decision: the hasher returned no hash")
	}
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

// Decisions returns the decisions with ids from from through upTo, in id
// order, at most limit of them: as stored, whether or not they still
// check (a gap in the ids is a missing entry). Errors: only internal ones.
func (db *DB) Decisions(ctx context.Context, from, upTo int64, limit int) ([]obsqra.Decision, error) {
	rows, err := db.conn().query(ctx, decisionSelect+" WHERE id >= ? AND id <= ? ORDER BY id LIMIT ?", from, upTo, limit)
	if err != nil {
		return nil, translate(err, "read decision log", "decision")
	}
	defer rows.Close()
	var out []obsqra.Decision
	for rows.Next() {
		var d obsqra.Decision
		var inputs, output string
		if err := rows.Scan(decisionScanArgs(&d, &inputs, &output)...); err != nil {
			return nil, translate(err, "scan decision log", "decision")
		}
		d.Inputs, d.Output = obsqra.JSONObject(inputs), obsqra.JSONObject(output)
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, translate(err, "read decision log", "row")
	}
	return out, nil
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
