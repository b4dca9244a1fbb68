-- +goose Up
-- The token a supplier of the protocol holds (obsqra.PositionToken as a
-- JSON object: address, decimals, underlying, shares, entryPoint), read
-- from users' wallets for their positions; NULL when none is named.
ALTER TABLE protocols ADD COLUMN position_token jsonb CHECK (jsonb_typeof(position_token) = 'object');
-- The block an allocation's weights were read from the user's wallet at
-- (recordAllocation fromWallet); NULL when the user gave them.
ALTER TABLE allocations ADD COLUMN wallet_block bigint CHECK (wallet_block >= 0);

-- +goose Down
ALTER TABLE allocations DROP COLUMN wallet_block;
ALTER TABLE protocols DROP COLUMN position_token;
