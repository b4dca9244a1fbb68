-- +goose Up
-- email_tokens are the single-use tokens mailed to a user: to verify an
-- address (a new account's, or the new address of changeEmail, in
-- new_email), or to reset a password. Only a token's SHA-256 is stored,
-- so a copy of the table grants nothing. A token is used once (used_at),
-- until expires_at.
CREATE TABLE email_tokens (
    id          INTEGER PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose     TEXT    NOT NULL CHECK (purpose IN ('verify_email', 'reset_password')),
    token_hash  BLOB    NOT NULL UNIQUE,
    new_email   TEXT,
    created_at  TEXT    NOT NULL,
    expires_at  TEXT    NOT NULL,
    used_at     TEXT
) STRICT;
CREATE INDEX email_tokens_user ON email_tokens (user_id, purpose);

-- +goose Down
DROP TABLE email_tokens;
