-- Accounts: users, sessions (refresh-token families), refresh tokens, the
-- login throttle and the transactional outbox. Times are timestamptz; the
-- store writes them in UTC, truncated to microseconds.

-- +goose Up
CREATE TABLE users (
    id                      bigserial   PRIMARY KEY,
    email                   text        NOT NULL,
    -- email_key is lower(email) as Go's strings.ToLower computes it: two
    -- emails that differ only in case cannot both register.
    email_key               text        NOT NULL CONSTRAINT users_email_key_unique UNIQUE,
    full_name               text        NOT NULL DEFAULT '',
    password_hash           text        NOT NULL,
    -- wallet_address is a felt in canonical form, so equal addresses are
    -- equal text and the UNIQUE constraint means what it says.
    wallet_address          text        CONSTRAINT users_wallet_address_unique UNIQUE
                                        CONSTRAINT users_wallet_address_canonical CHECK (wallet_address ~ '^0x[0-9a-f]{64}$'),
    email_verified          boolean     NOT NULL DEFAULT false,
    role                    text        NOT NULL DEFAULT 'USER' CHECK (role IN ('USER', 'ADMIN')),
    active                  boolean     NOT NULL DEFAULT true,
    risk_tolerance          text        NOT NULL DEFAULT 'MEDIUM' CHECK (risk_tolerance IN ('LOW', 'MEDIUM', 'HIGH')),
    auto_rebalance          boolean     NOT NULL DEFAULT false,
    rebalance_threshold_bps integer     NOT NULL DEFAULT 500 CHECK (rebalance_threshold_bps BETWEEN 0 AND 10000),
    max_single_bps          integer     NOT NULL DEFAULT 6000 CHECK (max_single_bps BETWEEN 1000 AND 10000),
    min_diversification     integer     NOT NULL DEFAULT 2 CHECK (min_diversification BETWEEN 1 AND 10),
    email_alerts            boolean     NOT NULL DEFAULT true,
    created_at              timestamptz NOT NULL,
    updated_at              timestamptz NOT NULL
);

CREATE TABLE sessions (
    id            text        PRIMARY KEY,
    user_id       bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at    timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,
    revoked_at    timestamptz,
    revoke_reason text        NOT NULL DEFAULT ''
);
CREATE INDEX sessions_user_id_idx ON sessions (user_id);

CREATE TABLE refresh_tokens (
    hash       text        PRIMARY KEY, -- hex SHA-256 of the token
    session_id text        NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);
CREATE INDEX refresh_tokens_session_id_idx ON refresh_tokens (session_id);

CREATE TABLE login_throttle (
    key          text        PRIMARY KEY,
    failures     integer     NOT NULL DEFAULT 0,
    -- window_start is NULL while no failure window is open.
    window_start timestamptz,
    penalty      integer     NOT NULL DEFAULT 0
);

-- events is the transactional outbox. Inserts take a transaction-level
-- advisory lock first (see store.AppendEvent), so ids become visible in id
-- order. owner_user_id has no foreign key: the outbox is history and
-- outlives what it describes.
CREATE TABLE events (
    id            bigserial   PRIMARY KEY,
    topic         text        NOT NULL,
    owner_user_id bigint,
    payload       jsonb       NOT NULL CHECK (jsonb_typeof(payload) = 'object'),
    created_at    timestamptz NOT NULL
);
CREATE INDEX events_created_at_idx ON events (created_at);

-- +goose Down
DROP TABLE events;
DROP TABLE login_throttle;
DROP TABLE refresh_tokens;
DROP TABLE sessions;
DROP TABLE users;
