-- Advice: predictions (forecasts of a protocol's APY or risk score, and the
-- rebalance suggestions made to users), their outcomes once the target day
-- has passed, and users' allocations.
--
-- All three are history and append-only, enforced by triggers as in 00003
-- (row triggers against UPDATE and DELETE, a statement trigger against
-- TRUNCATE): a prediction is judged against what it said when it was made,
-- so neither it nor its outcome may change, and a new allocation
-- supersedes, never edits, the last.

-- +goose Up
-- A prediction is of a protocol (a forecast) or for a user (a suggestion,
-- whose details hold its plan and trades as a JSON object). user_id NULL
-- marks a market-wide prediction, which every viewer may see. details is
-- text, kept byte for byte as written, like decisions.inputs.
CREATE TABLE predictions (
    id            bigserial        PRIMARY KEY,
    kind          text             NOT NULL CHECK (kind IN ('RISK_FORECAST', 'YIELD_FORECAST', 'REBALANCE_SUGGESTION')),
    protocol_id   bigint           REFERENCES protocols (id),
    user_id       bigint           REFERENCES users (id),
    horizon_days  integer          NOT NULL CHECK (horizon_days BETWEEN 1 AND 365),
    origin        date             NOT NULL,
    target        date             NOT NULL,
    point         double precision NOT NULL,
    lower80       double precision NOT NULL,
    upper80       double precision NOT NULL,
    lower95       double precision NOT NULL,
    upper95       double precision NOT NULL,
    confidence    double precision NOT NULL,
    tolerance     double precision NOT NULL,
    last          double precision NOT NULL,
    model         text             NOT NULL,
    model_version text             NOT NULL,
    inputs_digest text             NOT NULL,
    window_start  date             NOT NULL,
    window_end    date             NOT NULL,
    decision_id   bigint           REFERENCES decisions (id),
    details       text             CHECK (details IS NULL OR jsonb_typeof(details::jsonb) = 'object'),
    created_at    timestamptz      NOT NULL,
    -- A suggestion has no protocol, and a forecast always has one.
    CONSTRAINT predictions_protocol_by_kind CHECK ((kind = 'REBALANCE_SUGGESTION') = (protocol_id IS NULL)),
    CONSTRAINT predictions_suggestion_user CHECK (kind != 'REBALANCE_SUGGESTION' OR user_id IS NOT NULL)
);
-- The newest forecasts of a protocol, of a user, of a kind; the due ones.
-- predictions_protocol_idx holds user_id before id so that the newest
-- market-wide forecast of a protocol (user_id IS NULL) is its first entry
-- after the equal prefix, and a query can ask for an order that only this
-- index gives (see latestPredictions in store/advice.go).
CREATE INDEX predictions_protocol_idx ON predictions (protocol_id, kind, horizon_days, user_id, id DESC);
CREATE INDEX predictions_user_idx ON predictions (user_id, kind, id DESC);
CREATE INDEX predictions_kind_idx ON predictions (kind, id DESC);
CREATE INDEX predictions_target_idx ON predictions (target, id);

-- error is actual - point.
CREATE TABLE prediction_outcomes (
    prediction_id bigint           PRIMARY KEY REFERENCES predictions (id),
    actual        double precision NOT NULL,
    error         double precision NOT NULL,
    scored_at     timestamptz      NOT NULL
);

-- weights is a JSON array of {"protocolId": n, "weightBps": n}, text like
-- predictions.details; tx_hash a felt in canonical form.
CREATE TABLE allocations (
    id                  bigserial   PRIMARY KEY,
    user_id             bigint      NOT NULL REFERENCES users (id),
    weights             text        NOT NULL CHECK (jsonb_typeof(weights::jsonb) = 'array'),
    reason              text        NOT NULL CHECK (reason IN ('USER_INITIATED', 'AUTO_REBALANCE', 'OPTIMIZATION')),
    tx_hash             text        CHECK (tx_hash ~ '^0x[0-9a-f]{64}$'),
    suggestion_id       bigint      REFERENCES predictions (id),
    decision_id         bigint      REFERENCES decisions (id),
    portfolio_value_usd numeric     CHECK (portfolio_value_usd >= 0),
    created_at          timestamptz NOT NULL
);
CREATE INDEX allocations_user_time_idx ON allocations (user_id, created_at DESC, id DESC);
-- Whether a suggestion was followed.
CREATE INDEX allocations_suggestion_idx ON allocations (suggestion_id);

CREATE TRIGGER predictions_append_only BEFORE UPDATE OR DELETE ON predictions
    FOR EACH ROW EXECUTE FUNCTION obsqra_append_only();
CREATE TRIGGER predictions_no_truncate BEFORE TRUNCATE ON predictions
    FOR EACH STATEMENT EXECUTE FUNCTION obsqra_append_only();
CREATE TRIGGER prediction_outcomes_append_only BEFORE UPDATE OR DELETE ON prediction_outcomes
    FOR EACH ROW EXECUTE FUNCTION obsqra_append_only();
CREATE TRIGGER prediction_outcomes_no_truncate BEFORE TRUNCATE ON prediction_outcomes
    FOR EACH STATEMENT EXECUTE FUNCTION obsqra_append_only();
CREATE TRIGGER allocations_append_only BEFORE UPDATE OR DELETE ON allocations
    FOR EACH ROW EXECUTE FUNCTION obsqra_append_only();
CREATE TRIGGER allocations_no_truncate BEFORE TRUNCATE ON allocations
    FOR EACH STATEMENT EXECUTE FUNCTION obsqra_append_only();

-- +goose Down
DROP TABLE allocations;
DROP TABLE prediction_outcomes;
DROP TABLE predictions;
