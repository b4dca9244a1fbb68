-- +goose Up
-- mails is the queue of outgoing mail (package mail sends it). A mail is
-- inserted in the unit of work of the change that causes it, so it is sent
-- if and only if that change commits; it is a table of its own, not an
-- outbox event, so that it survives the outbox's pruning however long the
-- SMTP server is down.
--
-- A mail is due while sent_at and failed_at are NULL and next_attempt_at
-- has passed. A sender claims it by moving next_attempt_at forward by a
-- lease and counting the attempt; the attempt number is the claim's token,
-- so a sender whose lease ran out cannot record a result over a later
-- claim's. html_body '' means a plain-text mail; list_unsubscribe, when
-- set, is the URL of a one-click unsubscribe (RFC 8058) sent with an alert.
CREATE TABLE mails (
    id               bigserial   PRIMARY KEY,
    kind             text        NOT NULL,
    recipient        text        NOT NULL,
    subject          text        NOT NULL,
    text_body        text        NOT NULL,
    html_body        text        NOT NULL DEFAULT '',
    list_unsubscribe text,
    created_at       timestamptz NOT NULL,
    attempts         integer     NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL,
    sent_at          timestamptz,
    failed_at        timestamptz,
    last_error       text
);

-- The sender's claim: the due mails in the order they fell due.
CREATE INDEX mails_due ON mails (next_attempt_at, id) WHERE sent_at IS NULL AND failed_at IS NULL;
-- The admins' list of mails that were given up, newest first.
CREATE INDEX mails_failed ON mails (failed_at DESC, id DESC) WHERE failed_at IS NOT NULL;

-- +goose Down
DROP TABLE mails;
