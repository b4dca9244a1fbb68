-- +goose Up
-- Whether a forecast's series moved before it was made: its values on the
-- observed days of the 30 days up to and including the origin were not
-- all equal (ml.Outcome.Moved's rule), recorded by the advisor with the
-- forecast. modelPerformance's moving coverage counts only the forecasts
-- with moved true: a rate that sat still is covered by nearly any interval.
-- NULL where nothing was recorded: suggestions, every prediction made
-- before this column existed, and every one the previous release inserts
-- (it leaves the column out); none of them counts as moving.
ALTER TABLE predictions ADD COLUMN moved boolean;

-- +goose Down
ALTER TABLE predictions DROP COLUMN moved;
