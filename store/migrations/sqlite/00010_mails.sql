-- +goose Up
-- mails is the queue of outgoing mail (package mail sends it). A mail is
-- inserted in the unit of work of the change that causes it, so it is sent
-- if and only if that change commits; it is a table of its own, not an
-- outbox event, so that it survives the outbox's pruning however long the
-- SMTP server is down. Times as in 00001.
--
-- A mail is due while sent_at and failed_at are NULL and next_attempt_at
-- has passed. A sender claims it by moving next_attempt_at forward by a
-- lease and counting the attempt; the attempt number is the claim's token,
-- so a sender whose lease ran out cannot record a result over a later
-- claim's. html_body '' means a plain-text mail; list_unsubscribe, when
-- set, is the URL of a one-click unsubscribe (RFC 8058) sent with an alert.
CREATE TABLE mails (
    id               INTEGER PRIMARY KEY,
    kind             TEXT    NOT NULL,
    recipient        TEXT    NOT NULL,
    subject          TEXT    NOT NULL,
    text_body        TEXT    NOT NULL,
    html_body        TEXT    NOT NULL DEFAULT '',
    list_unsubscribe TEXT,
    created_at       TEXT    NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TEXT    NOT NULL,
    sent_at          TEXT,
    failed_at        TEXT,
    last_error       TEXT
) STRICT;

-- The sender's claim: the due mails in the order they fell due.
CREATE INDEX mails_due ON mails (next_attempt_at, id) WHERE sent_at IS NULL AND failed_at IS NULL;
-- The admins' list of mails that were given up, newest first.
CREATE INDEX mails_failed ON mails (failed_at DESC, id DESC) WHERE failed_at IS NOT NULL;

-- +goose Down
DROP TABLE mails;
