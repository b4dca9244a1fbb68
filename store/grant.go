package store

import (
	"context"
	"fmt"
	"regexp"
	"slices"

	"github.com/lib/pq"
	"github.com/obsqra/obsqra"
)

// historyTables are the tables whose rows are never changed nor removed
// once written: the migrations give each an append-only trigger
// (obsqra_append_only on PostgreSQL), and GrantApplication grants the
// application role nothing on them but SELECT and INSERT. This is the one
// list of them in Go; a test checks it against the triggers.
var historyTables = []string{
	"metrics_samples", "risk_params", "risk_scores", "decisions", // 00003
	"predictions", "prediction_outcomes", "allocations", // 00004
	"transactions", "transaction_events", // 00005
	"signed_constraints", // 00015
}

// keptTables may be updated but never have rows removed (a trigger refuses
// DELETE and TRUNCATE): the application role may UPDATE them, not DELETE.
var keptTables = []string{"transaction_state"}

// gooseTable is goose's record of the applied migrations: only the owner
// writes it.
const gooseTable = "goose_db_version"

// roleName is what GrantApplication accepts as a role: an ordinary
// PostgreSQL identifier, quoted anyway.
var roleName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_$-]{0,62}$`)

// GrantApplication gives role, the non-owner role the server runs as, the
// privileges the store needs on the current schema of db, which must be
// connected as the tables' owner (MIGRATION_DATABASE_URL) after Migrate:
//   - USAGE on the schema, and USAGE on its sequences (bigserial ids);
//   - SELECT and INSERT on every table;
//   - UPDATE and DELETE on every table that is not history, UPDATE alone
//     on those whose rows are never removed;
//   - on history (historyTables), nothing more: UPDATE, DELETE and
//     TRUNCATE are revoked, so the server cannot rewrite history even past
//     the triggers, which only the owner can disable;
//   - on goose's version table, SELECT only.
//
// TRUNCATE, REFERENCES and TRIGGER are revoked everywhere. It runs in one
// transaction and can run again after each migration (tables added since
// get their privileges). When role is db's own (one URL for both), it does
// nothing: revoking from the owner would take its own privileges. On
// SQLite, which has no roles, it does nothing.
// Errors: EINVALID for a role that is not a plain identifier; otherwise
// internal ones (db is not the owner, the role does not exist).
func GrantApplication(ctx context.Context, db *DB, role string) error {
	if db.dialect != postgresDialect {
		return nil
	}
	if !roleName.MatchString(role) {
		return obsqra.Errorf(obsqra.EINVALID, "application role %q is not a plain PostgreSQL role name", role)
	}
	return db.WithTx(ctx, func(tx *Tx) error {
		c := tx.conn()
		var schema, self string
		if err := c.queryRow(ctx, "SELECT current_schema(), current_user").Scan(&schema, &self); err != nil {
			return translate(err, "read current schema", "schema")
		}
		if role == self {
			return nil
		}
		rows, err := c.query(ctx, "SELECT tablename FROM pg_catalog.pg_tables WHERE schemaname = ? ORDER BY tablename", schema)
		if err != nil {
			return translate(err, "list tables", "table")
		}
		var tables []string
		for rows.Next() {
			var t string
			if err := rows.Scan(&t); err != nil {
				rows.Close()
				return translate(err, "list tables", "table")
			}
			tables = append(tables, t)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("list tables: %w", err)
		}
		r, s := pq.QuoteIdentifier(role), pq.QuoteIdentifier(schema)
		stmts := []string{
			"GRANT USAGE ON SCHEMA " + s + " TO " + r,
			"GRANT USAGE ON ALL SEQUENCES IN SCHEMA " + s + " TO " + r,
		}
		for _, t := range tables {
			qt := s + "." + pq.QuoteIdentifier(t)
			stmts = append(stmts, "REVOKE ALL ON TABLE "+qt+" FROM "+r)
			switch {
			case t == gooseTable:
				stmts = append(stmts, "GRANT SELECT ON TABLE "+qt+" TO "+r)
			case slices.Contains(historyTables, t):
				stmts = append(stmts, "GRANT SELECT, INSERT ON TABLE "+qt+" TO "+r)
			case slices.Contains(keptTables, t):
				stmts = append(stmts, "GRANT SELECT, INSERT, UPDATE ON TABLE "+qt+" TO "+r)
			default:
				stmts = append(stmts, "GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE "+qt+" TO "+r)
			}
		}
		for _, stmt := range stmts {
			// Not through c.exec: DDL with no arguments, never prepared.
			c.count.Add(1)
			if _, err := tx.tx.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("grant application role: %s: %w", stmt, err)
			}
		}
		return nil
	})
}

// CurrentRole returns the role db is connected as ("" on SQLite), the role
// to pass to GrantApplication from the owner's connection.
// Errors: only internal ones.
func (db *DB) CurrentRole(ctx context.Context) (string, error) {
	if db.dialect != postgresDialect {
		return "", nil
	}
	var role string
	if err := db.conn().queryRow(ctx, "SELECT current_user").Scan(&role); err != nil {
		return "", translate(err, "read current role", "role")
	}
	return role, nil
}
