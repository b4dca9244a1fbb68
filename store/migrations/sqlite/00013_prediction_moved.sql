-- +goose Up
-- predictions.moved: see the PostgreSQL migration. A boolean, INTEGER 0 or
-- 1 as everywhere (00001); NULL where nothing was recorded.
ALTER TABLE predictions ADD COLUMN moved INTEGER CHECK (moved IN (0, 1));

-- +goose Down
ALTER TABLE predictions DROP COLUMN moved;
