-- +goose Up
-- reset_requests: see the PostgreSQL migration.
CREATE TABLE reset_requests (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    email        TEXT    NOT NULL,
    requested_at TEXT    NOT NULL
) STRICT;

-- +goose Down
DROP TABLE reset_requests;
