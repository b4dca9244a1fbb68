-- +goose Up
-- alert_state is the outbox cursor of the alerts job (package alert): the
-- last event id it has turned into alerts. One row, id 1; the job moves
-- it with a compare-and-set in the unit of work that records the alerts,
-- so two leaders that overlap cannot both process an event.
CREATE TABLE alert_state (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    event_id INTEGER NOT NULL
) STRICT;

-- alerts are what a user is to be mailed about, each once: the UNIQUE key
-- (a suggestion's id, a transaction's id and status, a risk score's id)
-- makes a replayed event add nothing. protocol_id is the protocol of a
-- risk rise, for the once-per-24-hours rule. mailed_at is set when the
-- alert went into a digest mail (queued in the same unit of work). Times
-- as in 00001.
CREATE TABLE alerts (
    id          INTEGER PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users (id),
    kind        TEXT    NOT NULL,
    subject_key TEXT    NOT NULL,
    protocol_id INTEGER REFERENCES protocols (id),
    detail      TEXT    NOT NULL,
    created_at  TEXT    NOT NULL,
    mailed_at   TEXT,
    UNIQUE (user_id, kind, subject_key)
) STRICT;

-- The digest: each user's unmailed alerts.
CREATE INDEX alerts_unmailed ON alerts (user_id, id) WHERE mailed_at IS NULL;
-- The digest's interval: each user's last mailed alert.
CREATE INDEX alerts_mailed ON alerts (user_id, mailed_at) WHERE mailed_at IS NOT NULL;
-- The risk rise's quiet period: a user's alerts of a protocol, newest first.
CREATE INDEX alerts_protocol ON alerts (user_id, kind, protocol_id, created_at) WHERE protocol_id IS NOT NULL;

-- +goose Down
DROP TABLE alerts;
DROP TABLE alert_state;
