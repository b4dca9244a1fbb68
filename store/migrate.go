package store

import (
	"context"
	"embed"
	"fmt"
	"hash/fnv"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// migrationFiles holds the SQL migrations of both dialects. The two folders
// move in step: migration N does the same thing in each.
//
//go:embed migrations/postgres/*.sql migrations/sqlite/*.sql
var migrationFiles embed.FS

// Migrate opens the database named by url (see Open), applies its pending
// migrations and closes it.
// Errors: EINVALID for a URL Open does not accept; otherwise internal ones.
func Migrate(ctx context.Context, url string) error {
	return MigrateWith(ctx, url, Options{})
}

// MigrateWith is Migrate with the connections tuned by opts, except that
// no statement timeout applies: a migration may rewrite a large table, and
// is bounded by ctx alone.
func MigrateWith(ctx context.Context, url string, opts Options) error {
	opts.StatementTimeout = 0
	db, err := OpenWith(ctx, url, opts)
	if err != nil {
		return err
	}
	defer db.Close()
	return db.Migrate(ctx)
}

// Migrate applies the pending migrations of db's dialect. Goose records the
// applied versions in the table goose_db_version, so running it again does
// nothing. On PostgreSQL, concurrent migrations of one schema (several
// instances starting at once) wait for each other on a session advisory lock.
// Errors: only internal ones.
func (db *DB) Migrate(ctx context.Context) error {
	provider, err := db.migrations(ctx)
	if err != nil {
		return err
	}
	// provider.Close would close db's pool, which belongs to db.
	if _, err := provider.Up(ctx); err != nil {
		return fmt.Errorf("migrate %s database: %w", db.dialect.name, err)
	}
	return nil
}

// migrations returns goose's provider of db's migrations.
func (db *DB) migrations(ctx context.Context) (*goose.Provider, error) {
	fsys, err := db.dialect.migrationFS()
	if err != nil {
		return nil, fmt.Errorf("migrations of %s: %w", db.dialect.name, err)
	}
	opts := []goose.ProviderOption{goose.WithDisableGlobalRegistry(true)}
	if db.dialect == postgresDialect {
		locker, err := db.migrationLocker(ctx)
		if err != nil {
			return nil, err
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	provider, err := goose.NewProvider(db.dialect.goose, db.db.DB, fsys, opts...)
	if err != nil {
		return nil, fmt.Errorf("prepare %s migrations: %w", db.dialect.name, err)
	}
	return provider, nil
}

// migrationLocker returns goose's PostgreSQL session locker with a lock id
// derived from the current schema: instances migrating the same schema
// exclude each other, while databases in other schemas of one server (the
// tests make one per test) migrate side by side. Goose polls for the lock,
// so the poll interval is kept at one second, for up to two minutes.
func (db *DB) migrationLocker(ctx context.Context) (lock.SessionLocker, error) {
	var schema string
	if err := db.db.QueryRowContext(ctx, "SELECT COALESCE(current_schema(), '')").Scan(&schema); err != nil {
		return nil, fmt.Errorf("read current schema: %w", err)
	}
	h := fnv.New64a()
	h.Write([]byte("obsqra migrations " + schema))
	locker, err := lock.NewPostgresSessionLocker(
		lock.WithLockID(int64(h.Sum64())),
		lock.WithLockTimeout(1, 120),
	)
	if err != nil {
		return nil, fmt.Errorf("prepare migration lock: %w", err)
	}
	return locker, nil
}
