-- +goose Up
-- protocols.position_token: see the PostgreSQL migration.
ALTER TABLE protocols ADD COLUMN position_token TEXT CHECK (json_valid(position_token) AND json_type(position_token) = 'object');
ALTER TABLE allocations ADD COLUMN wallet_block INTEGER CHECK (wallet_block >= 0);

-- +goose Down
ALTER TABLE allocations DROP COLUMN wallet_block;
ALTER TABLE protocols DROP COLUMN position_token;
