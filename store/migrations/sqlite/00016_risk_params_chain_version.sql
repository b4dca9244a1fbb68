-- +goose Up
-- risk_params.chain_version: see the PostgreSQL migration.
ALTER TABLE risk_params ADD COLUMN chain_version TEXT CHECK (
    length(chain_version) = 66
    AND substr(chain_version, 1, 2) = '0x'
    AND substr(chain_version, 3) NOT GLOB '*[^0-9a-f]*');

-- +goose Down
ALTER TABLE risk_params DROP COLUMN chain_version;
