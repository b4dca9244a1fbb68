-- +goose Up
-- Routing keys of the outbox: the protocol an event is about and its kind
-- within its topic (a prediction's kind), beside owner_user_id, so that
-- the live fan-out picks subscribers without decoding payloads. NULL is
-- none. The events already stored get theirs from their payloads, so a
-- subscriber resuming across the deploy is routed as before. events has
-- no append-only trigger (the outbox is pruned), so they can be updated
-- here, in the migration's transaction.
ALTER TABLE events ADD COLUMN protocol_id bigint;
ALTER TABLE events ADD COLUMN kind text;
UPDATE events
   SET protocol_id = NULLIF((payload->>'protocolId')::bigint, 0)
 WHERE topic IN ('metrics.ingested', 'risk.scored', 'prediction.created')
   AND jsonb_typeof(payload->'protocolId') = 'number';
UPDATE events
   SET kind = payload->>'kind'
 WHERE topic = 'prediction.created'
   AND jsonb_typeof(payload->'kind') = 'string';

-- +goose Down
ALTER TABLE events DROP COLUMN kind;
ALTER TABLE events DROP COLUMN protocol_id;
