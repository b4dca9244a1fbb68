-- +goose Up
-- users.max_volatility_bps and max_liquidity_tier: see the PostgreSQL
-- migration.
ALTER TABLE users ADD COLUMN max_volatility_bps INTEGER NOT NULL DEFAULT 1000000
    CHECK (max_volatility_bps BETWEEN 0 AND 1000000);
ALTER TABLE users ADD COLUMN max_liquidity_tier INTEGER NOT NULL DEFAULT 3
    CHECK (max_liquidity_tier BETWEEN 0 AND 3);

-- +goose Down
ALTER TABLE users DROP COLUMN max_liquidity_tier;
ALTER TABLE users DROP COLUMN max_volatility_bps;
