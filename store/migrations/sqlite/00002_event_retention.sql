-- +goose Up
-- event_retention remembers the highest outbox id ever pruned, so that a
-- subscriber resuming from an older cursor is told its events are gone
-- (ids have gaps, so the smallest id left cannot say so).
CREATE TABLE event_retention (
    id             INTEGER PRIMARY KEY CHECK (id = 1),
    pruned_through INTEGER NOT NULL
) STRICT;
INSERT INTO event_retention (id, pruned_through) VALUES (1, 0);

-- +goose Down
DROP TABLE event_retention;
