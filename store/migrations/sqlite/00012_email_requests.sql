-- +goose Up
-- email_requests: see the PostgreSQL migration.
CREATE TABLE email_requests (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    purpose      TEXT    NOT NULL,
    email        TEXT    NOT NULL,
    requested_at TEXT    NOT NULL
) STRICT;

-- +goose Down
DROP TABLE email_requests;
