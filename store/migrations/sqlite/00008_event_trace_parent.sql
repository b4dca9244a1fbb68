-- +goose Up
-- The W3C traceparent of the span an outbox event was appended in, so that
-- the delivery's span links to the commit's; NULL when the event was
-- appended outside a trace, and for every event the previous release
-- appends (it leaves the column out).
ALTER TABLE events ADD COLUMN trace_parent TEXT;

-- +goose Down
ALTER TABLE events DROP COLUMN trace_parent;
