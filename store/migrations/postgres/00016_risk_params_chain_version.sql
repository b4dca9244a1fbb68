-- +goose Up
-- The RiskEngine contract's model version (a felt, get_model_params) a
-- version of the risk parameters is, when an admin mapped it to one or
-- adopted it from the contract; NULL otherwise and for every earlier one.
ALTER TABLE risk_params ADD COLUMN chain_version text CHECK (chain_version ~ '^0x[0-9a-f]{64}$');

-- +goose Down
ALTER TABLE risk_params DROP COLUMN chain_version;
