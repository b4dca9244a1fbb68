package store

import (
	"context"
	"fmt"
)

// MigrateDownTo undoes db's migrations above version: a test makes a
// database of an older schema with it, to check what a migration does to
// the rows that schema held.
func MigrateDownTo(ctx context.Context, db *DB, version int64) error {
	provider, err := db.migrations(ctx)
	if err != nil {
		return err
	}
	if _, err := provider.DownTo(ctx, version); err != nil {
		return fmt.Errorf("migrate %s database down to %d: %w", db.dialect.name, version, err)
	}
	return nil
}
