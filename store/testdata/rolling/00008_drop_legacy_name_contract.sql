-- A fixture of store's TestRollingCheckAtTheBaseline: the same column drop
-- marked a contract, which the check lets through.
-- contract: v1.4 stopped reading and writing users.legacy_name (v1.3 wrote it last)

-- +goose Up
ALTER TABLE users DROP COLUMN legacy_name;

-- +goose Down
ALTER TABLE users ADD COLUMN legacy_name text;
