-- A fixture of store's TestRollingCheckAtTheBaseline: a column drop in
-- the baseline migration, which the check lets through.

-- +goose Up
ALTER TABLE users DROP COLUMN legacy_name;

-- +goose Down
ALTER TABLE users ADD COLUMN legacy_name text;
