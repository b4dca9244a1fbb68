-- +goose Up
-- constraint_requests are the constraint sets waiting for a user's linked
-- wallet to sign them (SNIP-12 typed data rebuilt from the row, consumed
-- once, as wallet_challenges); signed_constraints are the sets a wallet
-- signed, append-only: a user's newest is the set their plans obey.
CREATE TABLE constraint_requests (
    nonce               text        PRIMARY KEY CHECK (nonce ~ '^[0-9a-f]{32}$'),
    user_id             bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    address             text        NOT NULL CHECK (address ~ '^0x[0-9a-f]{64}$'),
    chain_id            text        NOT NULL CHECK (length(chain_id) BETWEEN 1 AND 66),
    max_single_bps      integer     NOT NULL CHECK (max_single_bps BETWEEN 1000 AND 10000),
    min_diversification integer     NOT NULL CHECK (min_diversification BETWEEN 1 AND 10),
    max_volatility_bps  integer     NOT NULL CHECK (max_volatility_bps BETWEEN 0 AND 1000000),
    max_liquidity_tier  integer     NOT NULL CHECK (max_liquidity_tier BETWEEN 0 AND 3),
    issued_at           timestamptz NOT NULL,
    expires_at          timestamptz NOT NULL CHECK (expires_at > issued_at),
    used_at             timestamptz
);
CREATE INDEX constraint_requests_user_idx ON constraint_requests (user_id, issued_at);
CREATE INDEX constraint_requests_expires_idx ON constraint_requests (expires_at);

CREATE TABLE signed_constraints (
    id                  bigserial   PRIMARY KEY,
    user_id             bigint      NOT NULL REFERENCES users (id),
    signer              text        NOT NULL CHECK (signer ~ '^0x[0-9a-f]{64}$'),
    chain_id            text        NOT NULL CHECK (length(chain_id) BETWEEN 1 AND 66),
    nonce               text        NOT NULL UNIQUE CHECK (nonce ~ '^[0-9a-f]{32}$'),
    max_single_bps      integer     NOT NULL CHECK (max_single_bps BETWEEN 1000 AND 10000),
    min_diversification integer     NOT NULL CHECK (min_diversification BETWEEN 1 AND 10),
    max_volatility_bps  integer     NOT NULL CHECK (max_volatility_bps BETWEEN 0 AND 1000000),
    max_liquidity_tier  integer     NOT NULL CHECK (max_liquidity_tier BETWEEN 0 AND 3),
    -- Every felt of the signature, canonical 0x and 64 hex digits, comma
    -- separated.
    signature           text        NOT NULL CHECK (length(signature) BETWEEN 66 AND 2200),
    message_hash        text        NOT NULL CHECK (message_hash ~ '^0x[0-9a-f]{64}$'),
    -- The signed message's times: with the rest, they rebuild its hash.
    issued_at           timestamptz NOT NULL,
    expires_at          timestamptz NOT NULL CHECK (expires_at > issued_at),
    signed_at           timestamptz NOT NULL
);
CREATE INDEX signed_constraints_user_idx ON signed_constraints (user_id, signed_at DESC, id DESC);
-- What a wallet signed is history: never rewritten nor removed.
CREATE TRIGGER signed_constraints_append_only BEFORE UPDATE OR DELETE ON signed_constraints
    FOR EACH ROW EXECUTE FUNCTION obsqra_append_only();
CREATE TRIGGER signed_constraints_no_truncate BEFORE TRUNCATE ON signed_constraints
    FOR EACH STATEMENT EXECUTE FUNCTION obsqra_append_only();

-- +goose Down
DROP TABLE signed_constraints;
DROP TABLE constraint_requests;
