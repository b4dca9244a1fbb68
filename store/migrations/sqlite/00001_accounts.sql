-- Accounts: users, sessions (refresh-token families), refresh tokens, the
-- login throttle and the transactional outbox.
--
-- Tables are STRICT, so a value of the wrong type is an error, not a
-- silent conversion. Booleans are INTEGER 0 or 1. Times are TEXT in UTC with
-- exactly six fractional digits, "2006-01-02T15:04:05.000000Z": fixed width,
-- so text order is time order and SQL compares them correctly.

-- +goose Up
CREATE TABLE users (
    id                      INTEGER PRIMARY KEY,
    email                   TEXT    NOT NULL,
    -- email_key is lower(email) as Go's strings.ToLower computes it: two
    -- emails that differ only in case cannot both register.
    email_key               TEXT    NOT NULL UNIQUE,
    full_name               TEXT    NOT NULL DEFAULT '',
    password_hash           TEXT    NOT NULL,
    -- wallet_address is a felt in canonical form, so equal addresses are
    -- equal text and the UNIQUE constraint means what it says.
    wallet_address          TEXT    UNIQUE CHECK (
                                        length(wallet_address) = 66
                                        AND substr(wallet_address, 1, 2) = '0x'
                                        AND substr(wallet_address, 3) NOT GLOB '*[^0-9a-f]*'),
    email_verified          INTEGER NOT NULL DEFAULT 0 CHECK (email_verified IN (0, 1)),
    role                    TEXT    NOT NULL DEFAULT 'USER' CHECK (role IN ('USER', 'ADMIN')),
    active                  INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    risk_tolerance          TEXT    NOT NULL DEFAULT 'MEDIUM' CHECK (risk_tolerance IN ('LOW', 'MEDIUM', 'HIGH')),
    auto_rebalance          INTEGER NOT NULL DEFAULT 0 CHECK (auto_rebalance IN (0, 1)),
    rebalance_threshold_bps INTEGER NOT NULL DEFAULT 500 CHECK (rebalance_threshold_bps BETWEEN 0 AND 10000),
    max_single_bps          INTEGER NOT NULL DEFAULT 6000 CHECK (max_single_bps BETWEEN 1000 AND 10000),
    min_diversification     INTEGER NOT NULL DEFAULT 2 CHECK (min_diversification BETWEEN 1 AND 10),
    email_alerts            INTEGER NOT NULL DEFAULT 1 CHECK (email_alerts IN (0, 1)),
    created_at              TEXT    NOT NULL,
    updated_at              TEXT    NOT NULL
) STRICT;

CREATE TABLE sessions (
    id            TEXT    PRIMARY KEY,
    user_id       INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at    TEXT    NOT NULL,
    expires_at    TEXT    NOT NULL,
    revoked_at    TEXT,
    revoke_reason TEXT    NOT NULL DEFAULT ''
) STRICT;
CREATE INDEX sessions_user_id_idx ON sessions (user_id);

CREATE TABLE refresh_tokens (
    hash       TEXT PRIMARY KEY, -- hex SHA-256 of the token
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at    TEXT
) STRICT;
CREATE INDEX refresh_tokens_session_id_idx ON refresh_tokens (session_id);

CREATE TABLE login_throttle (
    key          TEXT    PRIMARY KEY,
    failures     INTEGER NOT NULL DEFAULT 0,
    -- window_start is NULL while no failure window is open.
    window_start TEXT,
    penalty      INTEGER NOT NULL DEFAULT 0
) STRICT;

-- events is the transactional outbox. AUTOINCREMENT: an id is never reused,
-- even after the newest rows are pruned, so a reader's cursor stays valid.
-- owner_user_id has no foreign key: the outbox is history and outlives what
-- it describes.
CREATE TABLE events (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    topic         TEXT    NOT NULL,
    owner_user_id INTEGER,
    payload       TEXT    NOT NULL CHECK (json_valid(payload) AND json_type(payload) = 'object'),
    created_at    TEXT    NOT NULL
) STRICT;
CREATE INDEX events_created_at_idx ON events (created_at);

-- +goose Down
DROP TABLE events;
DROP TABLE login_throttle;
DROP TABLE refresh_tokens;
DROP TABLE sessions;
DROP TABLE users;
