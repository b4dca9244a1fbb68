-- Market data: protocols, their metrics samples, versioned risk parameters,
-- risk scores, the hash-chained decision log and the scheduler's job runs.
--
-- History is append-only, enforced here rather than trusted to the code:
-- row triggers refuse UPDATE and DELETE on metrics_samples, risk_params,
-- risk_scores and decisions, and a statement trigger refuses TRUNCATE.
-- Decisions are also hash-chained (see store/decision.go), so even the
-- table owner, who can disable triggers, cannot rewrite them unseen.

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION obsqra_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % is not allowed', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
-- +goose StatementEnd

CREATE TABLE protocols (
    id               bigserial   PRIMARY KEY,
    slug             text        NOT NULL CONSTRAINT protocols_slug_unique UNIQUE
                                 CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    name             text        NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    chain            text        NOT NULL CHECK (length(chain) BETWEEN 1 AND 50),
    category         text        NOT NULL CHECK (category IN ('LENDING', 'DEX', 'YIELD', 'STAKING', 'DERIVATIVES', 'OTHER')),
    audit_score      integer     NOT NULL CHECK (audit_score BETWEEN 0 AND 100),
    launched_on      date        NOT NULL,
    contract_address text        CHECK (contract_address ~ '^0x[0-9a-f]{64}$'),
    enabled          boolean     NOT NULL DEFAULT true,
    source_ids       jsonb       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(source_ids) = 'object'),
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL
);

INSERT INTO protocols (slug, name, chain, category, audit_score, launched_on, source_ids, created_at, updated_at) VALUES
    ('nostra',   'Nostra',   'starknet', 'LENDING', 88, '2023-02-01', '{"defillama_project": "nostra-money-market"}', now(), now()),
    ('zklend',   'zkLend',   'starknet', 'LENDING', 85, '2023-06-01', '{"defillama_project": "zklend"}',   now(), now()),
    ('ekubo',    'Ekubo',    'starknet', 'DEX',     92, '2023-09-26', '{"defillama_project": "ekubo"}',    now(), now()),
    ('jediswap', 'JediSwap', 'starknet', 'DEX',     80, '2022-11-24', '{"defillama_project": "jediswap"}', now(), now()),
    ('vesu',     'Vesu',     'starknet', 'LENDING', 86, '2024-06-05', '{"defillama_project": "vesu"}',     now(), now());

CREATE TABLE metrics_samples (
    id              bigserial   PRIMARY KEY,
    protocol_id     bigint      NOT NULL REFERENCES protocols (id),
    observed_at     timestamptz NOT NULL,
    apy_bps         integer     NOT NULL CHECK (apy_bps BETWEEN -10000 AND 1000000),
    tvl_usd         numeric     CHECK (tvl_usd >= 0),
    utilization_bps integer     NOT NULL CHECK (utilization_bps BETWEEN 0 AND 10000),
    volatility_bps  integer     NOT NULL CHECK (volatility_bps >= 0),
    liquidity_tier  integer     NOT NULL CHECK (liquidity_tier BETWEEN 0 AND 3),
    source          text        NOT NULL,
    created_at      timestamptz NOT NULL,
    CONSTRAINT metrics_samples_observation_unique UNIQUE (protocol_id, observed_at, source)
);
CREATE INDEX metrics_samples_protocol_time_idx ON metrics_samples (protocol_id, observed_at DESC, id DESC);
-- The latest sample of one source (the feed polls from its own last one).
CREATE INDEX metrics_samples_protocol_source_time_idx ON metrics_samples (protocol_id, source, observed_at DESC, id DESC);

-- metrics_daily keeps the last sample of each UTC day per protocol: the
-- daily series that volatility, forecasts and backtests read, maintained in
-- the unit of work that stores each sample. It is derived, so it may change.
CREATE TABLE metrics_daily (
    protocol_id     bigint      NOT NULL REFERENCES protocols (id),
    day             date        NOT NULL,
    observed_at     timestamptz NOT NULL,
    sample_id       bigint      NOT NULL REFERENCES metrics_samples (id),
    apy_bps         integer     NOT NULL,
    utilization_bps integer     NOT NULL,
    volatility_bps  integer     NOT NULL,
    tvl_usd         numeric,
    PRIMARY KEY (protocol_id, day)
);

CREATE TABLE risk_params (
    version       integer     PRIMARY KEY,
    w_utilization integer     NOT NULL,
    w_volatility  integer     NOT NULL,
    w_liquidity0  integer     NOT NULL,
    w_liquidity1  integer     NOT NULL,
    w_liquidity2  integer     NOT NULL,
    w_liquidity3  integer     NOT NULL,
    w_audit       integer     NOT NULL,
    w_age         integer     NOT NULL,
    age_cap_days  integer     NOT NULL CHECK (age_cap_days > 0),
    clamp_min     integer     NOT NULL,
    clamp_max     integer     NOT NULL CHECK (clamp_min <= clamp_max AND clamp_max <= 100),
    created_by    bigint      REFERENCES users (id),
    created_at    timestamptz NOT NULL
);
-- Version 1: the RiskEngine contract's default ModelParams.
INSERT INTO risk_params VALUES (1, 25, 40, 0, 5, 15, 30, 3, 10, 730, 5, 95, NULL, now());

-- decisions is the hash-chained decision log. inputs and output are text,
-- not jsonb: the hash covers their exact bytes, which jsonb would reorder.
CREATE TABLE decisions (
    id            bigserial   PRIMARY KEY,
    kind          text        NOT NULL,
    inputs        text        NOT NULL,
    output        text        NOT NULL,
    model_version text        NOT NULL,
    created_at    timestamptz NOT NULL,
    prev_hash     text        NOT NULL CONSTRAINT decisions_prev_hash_unique UNIQUE,
    hash          text        NOT NULL CONSTRAINT decisions_hash_unique UNIQUE
);

CREATE TABLE risk_scores (
    id             bigserial   PRIMARY KEY,
    protocol_id    bigint      NOT NULL REFERENCES protocols (id),
    sample_id      bigint      NOT NULL CONSTRAINT risk_scores_sample_unique UNIQUE REFERENCES metrics_samples (id),
    observed_at    timestamptz NOT NULL,
    score          integer     NOT NULL CHECK (score BETWEEN 0 AND 100),
    c_utilization  integer     NOT NULL,
    c_volatility   integer     NOT NULL,
    c_liquidity    integer     NOT NULL,
    c_audit        integer     NOT NULL,
    c_age          integer     NOT NULL,
    c_unclamped    integer     NOT NULL,
    in_utilization integer     NOT NULL,
    in_volatility  integer     NOT NULL,
    in_liquidity   integer     NOT NULL,
    in_audit_score integer     NOT NULL,
    in_age_days    integer     NOT NULL,
    params_version integer     NOT NULL REFERENCES risk_params (version),
    model_version  text        NOT NULL,
    computed_at    timestamptz NOT NULL,
    decision_id    bigint      NOT NULL UNIQUE REFERENCES decisions (id)
);
CREATE INDEX risk_scores_protocol_time_idx ON risk_scores (protocol_id, observed_at DESC, id DESC);

CREATE TRIGGER metrics_samples_append_only BEFORE UPDATE OR DELETE ON metrics_samples
    FOR EACH ROW EXECUTE FUNCTION obsqra_append_only();
CREATE TRIGGER metrics_samples_no_truncate BEFORE TRUNCATE ON metrics_samples
    FOR EACH STATEMENT EXECUTE FUNCTION obsqra_append_only();
CREATE TRIGGER risk_params_append_only BEFORE UPDATE OR DELETE ON risk_params
    FOR EACH ROW EXECUTE FUNCTION obsqra_append_only();
CREATE TRIGGER risk_params_no_truncate BEFORE TRUNCATE ON risk_params
    FOR EACH STATEMENT EXECUTE FUNCTION obsqra_append_only();
CREATE TRIGGER risk_scores_append_only BEFORE UPDATE OR DELETE ON risk_scores
    FOR EACH ROW EXECUTE FUNCTION obsqra_append_only();
CREATE TRIGGER risk_scores_no_truncate BEFORE TRUNCATE ON risk_scores
    FOR EACH STATEMENT EXECUTE FUNCTION obsqra_append_only();
CREATE TRIGGER decisions_append_only BEFORE UPDATE OR DELETE ON decisions
    FOR EACH ROW EXECUTE FUNCTION obsqra_append_only();
CREATE TRIGGER decisions_no_truncate BEFORE TRUNCATE ON decisions
    FOR EACH STATEMENT EXECUTE FUNCTION obsqra_append_only();

-- job_runs records every run of a scheduler job; a run's row is updated
-- once, when it finishes.
CREATE TABLE job_runs (
    id          bigserial   PRIMARY KEY,
    job         text        NOT NULL,
    instance    text        NOT NULL,
    started_at  timestamptz NOT NULL,
    finished_at timestamptz,
    outcome     text        NOT NULL CHECK (outcome IN ('RUNNING', 'SUCCEEDED', 'FAILED', 'TIMED_OUT', 'ABANDONED')),
    error       text        NOT NULL DEFAULT ''
);
CREATE INDEX job_runs_job_idx ON job_runs (job, id DESC);

-- +goose Down
DROP TABLE job_runs;
DROP TABLE risk_scores;
DROP TABLE decisions;
DROP TABLE risk_params;
DROP TABLE metrics_daily;
DROP TABLE metrics_samples;
DROP TABLE protocols;
DROP FUNCTION obsqra_append_only();
