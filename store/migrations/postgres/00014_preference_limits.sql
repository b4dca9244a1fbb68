-- +goose Up
-- Two limits of a user's allocations beside max_single_bps and
-- min_diversification: no weight for a protocol whose volatility (bps) is
-- above max_volatility_bps, nor for one whose liquidity tier (0, deepest,
-- to 3) is above max_liquidity_tier. The defaults exclude nothing, so
-- every existing user's plans stay as they were.
ALTER TABLE users
    ADD COLUMN max_volatility_bps integer NOT NULL DEFAULT 1000000
        CHECK (max_volatility_bps BETWEEN 0 AND 1000000),
    ADD COLUMN max_liquidity_tier integer NOT NULL DEFAULT 3
        CHECK (max_liquidity_tier BETWEEN 0 AND 3);

-- +goose Down
ALTER TABLE users DROP COLUMN max_liquidity_tier, DROP COLUMN max_volatility_bps;
