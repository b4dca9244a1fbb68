-- A fixture of store's TestRollingCheckAtTheBaseline: the same column drop
-- one past the baseline, unmarked, which the check refuses.

-- +goose Up
ALTER TABLE users DROP COLUMN legacy_name;

-- +goose Down
ALTER TABLE users ADD COLUMN legacy_name text;
