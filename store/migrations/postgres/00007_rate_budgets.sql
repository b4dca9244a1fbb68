-- +goose Up
-- rate_budgets holds the shared token buckets of the request rate limits
-- (package ratelimit): one row per budget key (a user, a client address),
-- its tokens as of refilled_us (microseconds since the Unix epoch, by the
-- clock of the instance that last leased from it). Instances lease tokens
-- from a row in chunks, so that every token admitted anywhere was taken
-- from the row first. A row that has refilled completely is the same as no
-- row, and is pruned.
CREATE TABLE rate_budgets (
    key         text             PRIMARY KEY,
    tokens      double precision NOT NULL,
    refilled_us bigint           NOT NULL
);

-- +goose Down
DROP TABLE rate_budgets;
