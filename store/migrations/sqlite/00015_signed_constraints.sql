-- +goose Up
-- constraint_requests and signed_constraints: see the PostgreSQL migration.
CREATE TABLE constraint_requests (
    nonce               TEXT    PRIMARY KEY CHECK (length(nonce) = 32 AND nonce NOT GLOB '*[^0-9a-f]*'),
    user_id             INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    address             TEXT    NOT NULL CHECK (
                                    length(address) = 66
                                    AND substr(address, 1, 2) = '0x'
                                    AND substr(address, 3) NOT GLOB '*[^0-9a-f]*'),
    chain_id            TEXT    NOT NULL CHECK (length(chain_id) BETWEEN 1 AND 66),
    max_single_bps      INTEGER NOT NULL CHECK (max_single_bps BETWEEN 1000 AND 10000),
    min_diversification INTEGER NOT NULL CHECK (min_diversification BETWEEN 1 AND 10),
    max_volatility_bps  INTEGER NOT NULL CHECK (max_volatility_bps BETWEEN 0 AND 1000000),
    max_liquidity_tier  INTEGER NOT NULL CHECK (max_liquidity_tier BETWEEN 0 AND 3),
    issued_at           TEXT    NOT NULL,
    expires_at          TEXT    NOT NULL CHECK (expires_at > issued_at),
    used_at             TEXT
) STRICT;
CREATE INDEX constraint_requests_user_idx ON constraint_requests (user_id, issued_at);
CREATE INDEX constraint_requests_expires_idx ON constraint_requests (expires_at);

CREATE TABLE signed_constraints (
    id                  INTEGER PRIMARY KEY,
    user_id             INTEGER NOT NULL REFERENCES users (id),
    signer              TEXT    NOT NULL CHECK (
                                    length(signer) = 66
                                    AND substr(signer, 1, 2) = '0x'
                                    AND substr(signer, 3) NOT GLOB '*[^0-9a-f]*'),
    chain_id            TEXT    NOT NULL CHECK (length(chain_id) BETWEEN 1 AND 66),
    nonce               TEXT    NOT NULL UNIQUE CHECK (length(nonce) = 32 AND nonce NOT GLOB '*[^0-9a-f]*'),
    max_single_bps      INTEGER NOT NULL CHECK (max_single_bps BETWEEN 1000 AND 10000),
    min_diversification INTEGER NOT NULL CHECK (min_diversification BETWEEN 1 AND 10),
    max_volatility_bps  INTEGER NOT NULL CHECK (max_volatility_bps BETWEEN 0 AND 1000000),
    max_liquidity_tier  INTEGER NOT NULL CHECK (max_liquidity_tier BETWEEN 0 AND 3),
    signature           TEXT    NOT NULL CHECK (length(signature) BETWEEN 66 AND 2200),
    message_hash        TEXT    NOT NULL CHECK (
                                    length(message_hash) = 66
                                    AND substr(message_hash, 1, 2) = '0x'
                                    AND substr(message_hash, 3) NOT GLOB '*[^0-9a-f]*'),
    issued_at           TEXT    NOT NULL,
    expires_at          TEXT    NOT NULL CHECK (expires_at > issued_at),
    signed_at           TEXT    NOT NULL
) STRICT;
CREATE INDEX signed_constraints_user_idx ON signed_constraints (user_id, signed_at DESC, id DESC);
CREATE TRIGGER signed_constraints_no_update BEFORE UPDATE ON signed_constraints
BEGIN SELECT RAISE(ABORT, 'signed_constraints is append-only: UPDATE is not allowed'); END;
CREATE TRIGGER signed_constraints_no_delete BEFORE DELETE ON signed_constraints
BEGIN SELECT RAISE(ABORT, 'signed_constraints is append-only: DELETE is not allowed'); END;

-- +goose Down
DROP TABLE signed_constraints;
DROP TABLE constraint_requests;
