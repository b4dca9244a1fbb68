-- Market data: protocols, their metrics samples, versioned risk parameters,
-- risk scores, the hash-chained decision log and the scheduler's job runs.
--
-- History is append-only, enforced here rather than trusted to the code:
-- triggers refuse UPDATE and DELETE on metrics_samples, risk_params,
-- risk_scores and decisions (SQLite has no TRUNCATE; DELETE without WHERE
-- meets the row trigger). Decisions are also hash-chained (see
-- store/decision.go), so whoever can drop a trigger still cannot rewrite
-- them unseen. Dates are TEXT YYYY-MM-DD; times as in 00001.

-- +goose Up
CREATE TABLE protocols (
    id               INTEGER PRIMARY KEY,
    slug             TEXT    NOT NULL UNIQUE CHECK (
                                 length(slug) BETWEEN 1 AND 63
                                 AND slug NOT GLOB '*[^a-z0-9-]*'
                                 AND substr(slug, 1, 1) != '-'),
    name             TEXT    NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    chain            TEXT    NOT NULL CHECK (length(chain) BETWEEN 1 AND 50),
    category         TEXT    NOT NULL CHECK (category IN ('LENDING', 'DEX', 'YIELD', 'STAKING', 'DERIVATIVES', 'OTHER')),
    audit_score      INTEGER NOT NULL CHECK (audit_score BETWEEN 0 AND 100),
    launched_on      TEXT    NOT NULL CHECK (launched_on GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]'),
    contract_address TEXT    CHECK (
                                 length(contract_address) = 66
                                 AND substr(contract_address, 1, 2) = '0x'
                                 AND substr(contract_address, 3) NOT GLOB '*[^0-9a-f]*'),
    enabled          INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    source_ids       TEXT    NOT NULL DEFAULT '{}' CHECK (json_type(source_ids) = 'object'),
    created_at       TEXT    NOT NULL,
    updated_at       TEXT    NOT NULL
) STRICT;

INSERT INTO protocols (slug, name, chain, category, audit_score, launched_on, source_ids, created_at, updated_at) VALUES
    ('nostra',   'Nostra',   'starknet', 'LENDING', 88, '2023-02-01', '{"defillama_project":"nostra-money-market"}', strftime('%Y-%m-%dT%H:%M:%f000Z', 'now'), strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    ('zklend',   'zkLend',   'starknet', 'LENDING', 85, '2023-06-01', '{"defillama_project":"zklend"}',   strftime('%Y-%m-%dT%H:%M:%f000Z', 'now'), strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    ('ekubo',    'Ekubo',    'starknet', 'DEX',     92, '2023-09-26', '{"defillama_project":"ekubo"}',    strftime('%Y-%m-%dT%H:%M:%f000Z', 'now'), strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    ('jediswap', 'JediSwap', 'starknet', 'DEX',     80, '2022-11-24', '{"defillama_project":"jediswap"}', strftime('%Y-%m-%dT%H:%M:%f000Z', 'now'), strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    ('vesu',     'Vesu',     'starknet', 'LENDING', 86, '2024-06-05', '{"defillama_project":"vesu"}',     strftime('%Y-%m-%dT%H:%M:%f000Z', 'now'), strftime('%Y-%m-%dT%H:%M:%f000Z', 'now'));

-- tvl_usd is TEXT: a Decimal's canonical text (NUMERIC affinity would round
-- it to 15 digits).
CREATE TABLE metrics_samples (
    id              INTEGER PRIMARY KEY,
    protocol_id     INTEGER NOT NULL REFERENCES protocols (id),
    observed_at     TEXT    NOT NULL,
    apy_bps         INTEGER NOT NULL CHECK (apy_bps BETWEEN -10000 AND 1000000),
    tvl_usd         TEXT    CHECK (substr(tvl_usd, 1, 1) != '-'),
    utilization_bps INTEGER NOT NULL CHECK (utilization_bps BETWEEN 0 AND 10000),
    volatility_bps  INTEGER NOT NULL CHECK (volatility_bps >= 0),
    liquidity_tier  INTEGER NOT NULL CHECK (liquidity_tier BETWEEN 0 AND 3),
    source          TEXT    NOT NULL,
    created_at      TEXT    NOT NULL,
    UNIQUE (protocol_id, observed_at, source)
) STRICT;
CREATE INDEX metrics_samples_protocol_time_idx ON metrics_samples (protocol_id, observed_at DESC, id DESC);
-- The latest sample of one source (the feed polls from its own last one).
CREATE INDEX metrics_samples_protocol_source_time_idx ON metrics_samples (protocol_id, source, observed_at DESC, id DESC);

-- metrics_daily keeps the last sample of each UTC day per protocol: the
-- daily series that volatility, forecasts and backtests read, maintained in
-- the unit of work that stores each sample. It is derived, so it may change.
CREATE TABLE metrics_daily (
    protocol_id     INTEGER NOT NULL REFERENCES protocols (id),
    day             TEXT    NOT NULL,
    observed_at     TEXT    NOT NULL,
    sample_id       INTEGER NOT NULL REFERENCES metrics_samples (id),
    apy_bps         INTEGER NOT NULL,
    utilization_bps INTEGER NOT NULL,
    volatility_bps  INTEGER NOT NULL,
    tvl_usd         TEXT,
    PRIMARY KEY (protocol_id, day)
) STRICT;

CREATE TABLE risk_params (
    version       INTEGER PRIMARY KEY,
    w_utilization INTEGER NOT NULL,
    w_volatility  INTEGER NOT NULL,
    w_liquidity0  INTEGER NOT NULL,
    w_liquidity1  INTEGER NOT NULL,
    w_liquidity2  INTEGER NOT NULL,
    w_liquidity3  INTEGER NOT NULL,
    w_audit       INTEGER NOT NULL,
    w_age         INTEGER NOT NULL,
    age_cap_days  INTEGER NOT NULL CHECK (age_cap_days > 0),
    clamp_min     INTEGER NOT NULL,
    clamp_max     INTEGER NOT NULL CHECK (clamp_min <= clamp_max AND clamp_max <= 100),
    created_by    INTEGER REFERENCES users (id),
    created_at    TEXT    NOT NULL
) STRICT;
-- Version 1: the RiskEngine contract's default ModelParams.
INSERT INTO risk_params VALUES (1, 25, 40, 0, 5, 15, 30, 3, 10, 730, 5, 95, NULL, strftime('%Y-%m-%dT%H:%M:%f000Z', 'now'));

CREATE TABLE decisions (
    id            INTEGER PRIMARY KEY,
    kind          TEXT    NOT NULL,
    inputs        TEXT    NOT NULL,
    output        TEXT    NOT NULL,
    model_version TEXT    NOT NULL,
    created_at    TEXT    NOT NULL,
    prev_hash     TEXT    NOT NULL UNIQUE,
    hash          TEXT    NOT NULL UNIQUE
) STRICT;

CREATE TABLE risk_scores (
    id             INTEGER PRIMARY KEY,
    protocol_id    INTEGER NOT NULL REFERENCES protocols (id),
    sample_id      INTEGER NOT NULL UNIQUE REFERENCES metrics_samples (id),
    observed_at    TEXT    NOT NULL,
    score          INTEGER NOT NULL CHECK (score BETWEEN 0 AND 100),
    c_utilization  INTEGER NOT NULL,
    c_volatility   INTEGER NOT NULL,
    c_liquidity    INTEGER NOT NULL,
    c_audit        INTEGER NOT NULL,
    c_age          INTEGER NOT NULL,
    c_unclamped    INTEGER NOT NULL,
    in_utilization INTEGER NOT NULL,
    in_volatility  INTEGER NOT NULL,
    in_liquidity   INTEGER NOT NULL,
    in_audit_score INTEGER NOT NULL,
    in_age_days    INTEGER NOT NULL,
    params_version INTEGER NOT NULL REFERENCES risk_params (version),
    model_version  TEXT    NOT NULL,
    computed_at    TEXT    NOT NULL,
    decision_id    INTEGER NOT NULL UNIQUE REFERENCES decisions (id)
) STRICT;
CREATE INDEX risk_scores_protocol_time_idx ON risk_scores (protocol_id, observed_at DESC, id DESC);

CREATE TRIGGER metrics_samples_no_update BEFORE UPDATE ON metrics_samples
BEGIN SELECT RAISE(ABORT, 'metrics_samples is append-only: UPDATE is not allowed'); END;
CREATE TRIGGER metrics_samples_no_delete BEFORE DELETE ON metrics_samples
BEGIN SELECT RAISE(ABORT, 'metrics_samples is append-only: DELETE is not allowed'); END;
CREATE TRIGGER risk_params_no_update BEFORE UPDATE ON risk_params
BEGIN SELECT RAISE(ABORT, 'risk_params is append-only: UPDATE is not allowed'); END;
CREATE TRIGGER risk_params_no_delete BEFORE DELETE ON risk_params
BEGIN SELECT RAISE(ABORT, 'risk_params is append-only: DELETE is not allowed'); END;
CREATE TRIGGER risk_scores_no_update BEFORE UPDATE ON risk_scores
BEGIN SELECT RAISE(ABORT, 'risk_scores is append-only: UPDATE is not allowed'); END;
CREATE TRIGGER risk_scores_no_delete BEFORE DELETE ON risk_scores
BEGIN SELECT RAISE(ABORT, 'risk_scores is append-only: DELETE is not allowed'); END;
CREATE TRIGGER decisions_no_update BEFORE UPDATE ON decisions
BEGIN SELECT RAISE(ABORT, 'decisions is append-only: UPDATE is not allowed'); END;
CREATE TRIGGER decisions_no_delete BEFORE DELETE ON decisions
BEGIN SELECT RAISE(ABORT, 'decisions is append-only: DELETE is not allowed'); END;

CREATE TABLE job_runs (
    id          INTEGER PRIMARY KEY,
    job         TEXT    NOT NULL,
    instance    TEXT    NOT NULL,
    started_at  TEXT    NOT NULL,
    finished_at TEXT,
    outcome     TEXT    NOT NULL CHECK (outcome IN ('RUNNING', 'SUCCEEDED', 'FAILED', 'TIMED_OUT', 'ABANDONED')),
    error       TEXT    NOT NULL DEFAULT ''
) STRICT;
CREATE INDEX job_runs_job_idx ON job_runs (job, id DESC);

-- +goose Down
DROP TABLE job_runs;
DROP TABLE risk_scores;
DROP TABLE decisions;
DROP TABLE risk_params;
DROP TABLE metrics_daily;
DROP TABLE metrics_samples;
DROP TABLE protocols;
