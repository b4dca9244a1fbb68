-- +goose Up
-- Routing keys of the outbox: the protocol an event is about and its kind
-- within its topic (a prediction's kind), beside owner_user_id, so that
-- the live fan-out picks subscribers without decoding payloads. NULL is
-- none. The events already stored get theirs from their payloads, so a
-- subscriber resuming across the deploy is routed as before. events has
-- no append-only trigger (the outbox is pruned), so they can be updated
-- here, in the migration's transaction.
ALTER TABLE events ADD COLUMN protocol_id INTEGER;
ALTER TABLE events ADD COLUMN kind TEXT;
UPDATE events
   SET protocol_id = NULLIF(json_extract(payload, '$.protocolId'), 0)
 WHERE topic IN ('metrics.ingested', 'risk.scored', 'prediction.created')
   AND json_type(payload, '$.protocolId') = 'integer';
UPDATE events
   SET kind = json_extract(payload, '$.kind')
 WHERE topic = 'prediction.created'
   AND json_type(payload, '$.kind') = 'text';

-- +goose Down
ALTER TABLE events DROP COLUMN kind;
ALTER TABLE events DROP COLUMN protocol_id;
