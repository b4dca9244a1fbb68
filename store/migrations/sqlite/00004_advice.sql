-- Advice: predictions (forecasts of a protocol's APY or risk score, and the
-- rebalance suggestions made to users), their outcomes once the target day
-- has passed, and users' allocations.
--
-- All three are history and append-only, enforced by triggers as in 00003:
-- a prediction is judged against what it said when it was made, so neither
-- it nor its outcome may change, and a new allocation supersedes, never
-- edits, the last. Dates are TEXT YYYY-MM-DD; times as in 00001.

-- +goose Up
-- A prediction is of a protocol (a forecast) or for a user (a suggestion,
-- whose details hold its plan and trades as a JSON object). user_id NULL
-- marks a market-wide prediction, which every viewer may see.
CREATE TABLE predictions (
    id            INTEGER PRIMARY KEY,
    kind          TEXT    NOT NULL CHECK (kind IN ('RISK_FORECAST', 'YIELD_FORECAST', 'REBALANCE_SUGGESTION')),
    protocol_id   INTEGER REFERENCES protocols (id),
    user_id       INTEGER REFERENCES users (id),
    horizon_days  INTEGER NOT NULL CHECK (horizon_days BETWEEN 1 AND 365),
    origin        TEXT    NOT NULL CHECK (origin GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]'),
    target        TEXT    NOT NULL CHECK (target GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]'),
    point         REAL    NOT NULL,
    lower80       REAL    NOT NULL,
    upper80       REAL    NOT NULL,
    lower95       REAL    NOT NULL,
    upper95       REAL    NOT NULL,
    confidence    REAL    NOT NULL,
    tolerance     REAL    NOT NULL,
    last          REAL    NOT NULL,
    model         TEXT    NOT NULL,
    model_version TEXT    NOT NULL,
    inputs_digest TEXT    NOT NULL,
    window_start  TEXT    NOT NULL CHECK (window_start GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]'),
    window_end    TEXT    NOT NULL CHECK (window_end GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]'),
    decision_id   INTEGER REFERENCES decisions (id),
    details       TEXT    CHECK (details IS NULL OR json_type(details) = 'object'),
    created_at    TEXT    NOT NULL,
    -- A suggestion has no protocol, and a forecast always has one.
    CHECK ((kind = 'REBALANCE_SUGGESTION') = (protocol_id IS NULL)),
    CHECK (kind != 'REBALANCE_SUGGESTION' OR user_id IS NOT NULL)
) STRICT;
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
    prediction_id INTEGER PRIMARY KEY REFERENCES predictions (id),
    actual        REAL    NOT NULL,
    error         REAL    NOT NULL,
    scored_at     TEXT    NOT NULL
) STRICT;

-- weights is a JSON array of {"protocolId": n, "weightBps": n}; tx_hash a
-- felt in canonical form; portfolio_value_usd a Decimal's canonical text,
-- as metrics_samples.tvl_usd.
CREATE TABLE allocations (
    id                  INTEGER PRIMARY KEY,
    user_id             INTEGER NOT NULL REFERENCES users (id),
    weights             TEXT    NOT NULL CHECK (json_type(weights) = 'array'),
    reason              TEXT    NOT NULL CHECK (reason IN ('USER_INITIATED', 'AUTO_REBALANCE', 'OPTIMIZATION')),
    tx_hash             TEXT    CHECK (
                                    length(tx_hash) = 66
                                    AND substr(tx_hash, 1, 2) = '0x'
                                    AND substr(tx_hash, 3) NOT GLOB '*[^0-9a-f]*'),
    suggestion_id       INTEGER REFERENCES predictions (id),
    decision_id         INTEGER REFERENCES decisions (id),
    portfolio_value_usd TEXT    CHECK (substr(portfolio_value_usd, 1, 1) != '-'),
    created_at          TEXT    NOT NULL
) STRICT;
CREATE INDEX allocations_user_time_idx ON allocations (user_id, created_at DESC, id DESC);
-- Whether a suggestion was followed.
CREATE INDEX allocations_suggestion_idx ON allocations (suggestion_id);

CREATE TRIGGER predictions_no_update BEFORE UPDATE ON predictions
BEGIN SELECT RAISE(ABORT, 'predictions is append-only: UPDATE is not allowed'); END;
CREATE TRIGGER predictions_no_delete BEFORE DELETE ON predictions
BEGIN SELECT RAISE(ABORT, 'predictions is append-only: DELETE is not allowed'); END;
CREATE TRIGGER prediction_outcomes_no_update BEFORE UPDATE ON prediction_outcomes
BEGIN SELECT RAISE(ABORT, 'prediction_outcomes is append-only: UPDATE is not allowed'); END;
CREATE TRIGGER prediction_outcomes_no_delete BEFORE DELETE ON prediction_outcomes
BEGIN SELECT RAISE(ABORT, 'prediction_outcomes is append-only: DELETE is not allowed'); END;
CREATE TRIGGER allocations_no_update BEFORE UPDATE ON allocations
BEGIN SELECT RAISE(ABORT, 'allocations is append-only: UPDATE is not allowed'); END;
CREATE TRIGGER allocations_no_delete BEFORE DELETE ON allocations
BEGIN SELECT RAISE(ABORT, 'allocations is append-only: DELETE is not allowed'); END;

-- +goose Down
DROP TABLE allocations;
DROP TABLE prediction_outcomes;
DROP TABLE predictions;
