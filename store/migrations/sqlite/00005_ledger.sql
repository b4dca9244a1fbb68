-- The transaction log: each user's on-chain transactions as logged, the
-- history of every status the chain watcher saw them reach, the watcher's
-- current view of each, and the challenges of wallet linking.
--
-- transactions and transaction_events are history, append-only by
-- triggers as in 00003: a logged transaction never changes and every step
-- of its history is a row of its own. transaction_state is the watcher's
-- current view of each transaction (the latest step, the receipt, when to
-- look again): it is updated in place so that a user's list with its
-- statuses is one indexed join, and rows are never deleted. Triggers keep
-- it honest: its status only moves forward, a known execution status never
-- changes, and every (status, execution status) it shows has its step in
-- transaction_events already. Times as in 00001; amounts are a Decimal's
-- canonical text, as metrics_samples.tvl_usd.

-- +goose Up
-- amount is a positive Decimal in canonical form: digits, at most one dot,
-- no leading zero but that of "0.x", no trailing zero in the fraction, at
-- most 18 decimals (ParseDecimal bounds the 78 significant digits).
CREATE TABLE transactions (
    id            INTEGER PRIMARY KEY,
    user_id       INTEGER NOT NULL REFERENCES users (id),
    tx_hash       TEXT    NOT NULL UNIQUE CHECK (
                              length(tx_hash) = 66
                              AND substr(tx_hash, 1, 2) = '0x'
                              AND substr(tx_hash, 3) NOT GLOB '*[^0-9a-f]*'),
    type          TEXT    NOT NULL CHECK (type IN ('DEPOSIT', 'WITHDRAW', 'ALLOCATE', 'REBALANCE')),
    amount        TEXT    NOT NULL CHECK (
                              length(amount) BETWEEN 1 AND 97
                              AND amount GLOB '[0-9]*'
                              AND amount NOT GLOB '*[^0-9.]*'
                              AND amount NOT GLOB '*.*.*'
                              AND amount NOT GLOB '*.'
                              AND amount NOT GLOB '0[0-9]*'
                              AND amount NOT GLOB '*.*0'
                              AND amount != '0'
                              AND (instr(amount, '.') = 0 OR length(amount) - instr(amount, '.') <= 18)),
    token         TEXT    NOT NULL CHECK (length(token) BETWEEN 1 AND 16 AND token NOT GLOB '*[^A-Za-z0-9.]*'),
    token_address TEXT    CHECK (
                              length(token_address) = 66
                              AND substr(token_address, 1, 2) = '0x'
                              AND substr(token_address, 3) NOT GLOB '*[^0-9a-f]*'),
    details       TEXT    CHECK (details IS NULL OR (
                              length(CAST(details AS BLOB)) <= 16384
                              AND json_valid(details) AND json_type(details) = 'object')),
    created_at    TEXT    NOT NULL
) STRICT;
-- A user's transactions, newest first (the keyset of the list).
CREATE INDEX transactions_user_time_idx ON transactions (user_id, created_at DESC, id DESC);

-- transaction_events is each transaction's history: one row per status
-- (or execution status) it reached, with the node's raw answer and why.
CREATE TABLE transaction_events (
    id               INTEGER PRIMARY KEY,
    transaction_id   INTEGER NOT NULL REFERENCES transactions (id),
    status           TEXT    NOT NULL CHECK (status IN ('PENDING', 'RECEIVED', 'CANDIDATE', 'PRE_CONFIRMED',
                                                        'ACCEPTED_ON_L2', 'ACCEPTED_ON_L1', 'DROPPED')),
    execution_status TEXT    CHECK (execution_status IN ('SUCCEEDED', 'REVERTED')),
    raw_status       TEXT    NOT NULL CHECK (length(raw_status) <= 16384),
    reason           TEXT    NOT NULL CHECK (length(reason) <= 16384),
    at               TEXT    NOT NULL
) STRICT;
CREATE INDEX transaction_events_transaction_idx ON transaction_events (transaction_id, id);

-- transaction_state is the current view of each transaction: a final
-- status (ACCEPTED_ON_L1, DROPPED) is never checked again, and any other
-- always has its next check.
CREATE TABLE transaction_state (
    transaction_id   INTEGER PRIMARY KEY REFERENCES transactions (id),
    status           TEXT    NOT NULL CHECK (status IN ('PENDING', 'RECEIVED', 'CANDIDATE', 'PRE_CONFIRMED',
                                                        'ACCEPTED_ON_L2', 'ACCEPTED_ON_L1', 'DROPPED')),
    execution_status TEXT    CHECK (execution_status IN ('SUCCEEDED', 'REVERTED')),
    failure_reason   TEXT    CHECK (length(failure_reason) <= 16384),
    block_number     INTEGER CHECK (block_number >= 0),
    fee_amount       TEXT    CHECK (
                                 length(fee_amount) BETWEEN 1 AND 97
                                 AND fee_amount GLOB '[0-9]*'
                                 AND fee_amount NOT GLOB '*[^0-9.]*'),
    fee_unit         TEXT    CHECK (fee_unit IN ('WEI', 'FRI')),
    events_emitted   INTEGER CHECK (events_emitted >= 0),
    updated_at       TEXT    NOT NULL,
    last_checked_at  TEXT,
    next_check_at    TEXT,
    not_found_since  TEXT,
    CHECK ((fee_amount IS NULL) = (fee_unit IS NULL)),
    CHECK ((status IN ('ACCEPTED_ON_L1', 'DROPPED')) = (next_check_at IS NULL))
) STRICT;
-- The watcher's queue: the transactions still to follow, soonest first.
CREATE INDEX transaction_state_due_idx ON transaction_state (next_check_at, transaction_id) WHERE next_check_at IS NOT NULL;

CREATE TRIGGER transactions_no_update BEFORE UPDATE ON transactions
BEGIN SELECT RAISE(ABORT, 'transactions is append-only: UPDATE is not allowed'); END;
CREATE TRIGGER transactions_no_delete BEFORE DELETE ON transactions
BEGIN SELECT RAISE(ABORT, 'transactions is append-only: DELETE is not allowed'); END;
CREATE TRIGGER transaction_events_no_update BEFORE UPDATE ON transaction_events
BEGIN SELECT RAISE(ABORT, 'transaction_events is append-only: UPDATE is not allowed'); END;
CREATE TRIGGER transaction_events_no_delete BEFORE DELETE ON transaction_events
BEGIN SELECT RAISE(ABORT, 'transaction_events is append-only: DELETE is not allowed'); END;
CREATE TRIGGER transaction_state_no_delete BEFORE DELETE ON transaction_state
BEGIN SELECT RAISE(ABORT, 'transaction_state rows are never deleted: DELETE is not allowed'); END;

-- No status without its step in the history. (SQLite runs the triggers of
-- one event newest first: the forward-only check below is created after
-- these so that a step back is reported as such.)
CREATE TRIGGER transaction_state_insert_needs_history BEFORE INSERT ON transaction_state
WHEN NOT EXISTS (SELECT 1 FROM transaction_events e WHERE e.transaction_id = NEW.transaction_id
                     AND e.status = NEW.status AND e.execution_status IS NEW.execution_status)
BEGIN SELECT RAISE(ABORT, 'transaction_state: a status must be recorded in transaction_events first'); END;
CREATE TRIGGER transaction_state_update_needs_history BEFORE UPDATE OF status, execution_status ON transaction_state
WHEN (NEW.status != OLD.status OR NEW.execution_status IS NOT OLD.execution_status)
    AND NOT EXISTS (SELECT 1 FROM transaction_events e WHERE e.transaction_id = NEW.transaction_id
                        AND e.status = NEW.status AND e.execution_status IS NEW.execution_status)
BEGIN SELECT RAISE(ABORT, 'transaction_state: a status must be recorded in transaction_events first'); END;

-- The state's status moves forward only (in the order of obsqra.TxStatus),
-- belongs to the transaction it was created for, and a known execution
-- status stays.
CREATE TRIGGER transaction_state_forward_only BEFORE UPDATE ON transaction_state
WHEN NEW.transaction_id != OLD.transaction_id
    OR (OLD.execution_status IS NOT NULL AND NEW.execution_status IS NOT OLD.execution_status)
    OR (CASE NEW.status WHEN 'PENDING' THEN 0 WHEN 'RECEIVED' THEN 1 WHEN 'CANDIDATE' THEN 2 WHEN 'PRE_CONFIRMED' THEN 3
                        WHEN 'ACCEPTED_ON_L2' THEN 4 WHEN 'ACCEPTED_ON_L1' THEN 5 WHEN 'DROPPED' THEN 6 END)
     < (CASE OLD.status WHEN 'PENDING' THEN 0 WHEN 'RECEIVED' THEN 1 WHEN 'CANDIDATE' THEN 2 WHEN 'PRE_CONFIRMED' THEN 3
                        WHEN 'ACCEPTED_ON_L2' THEN 4 WHEN 'ACCEPTED_ON_L1' THEN 5 WHEN 'DROPPED' THEN 6 END)
BEGIN SELECT RAISE(ABORT, 'transaction_state: the status only moves forward and a known execution status never changes'); END;

-- wallet_challenges are the nonces a user signs to prove a wallet is
-- theirs (SNIP-12 typed data rebuilt from the row). A challenge is used
-- once: used_at is set atomically when it is consumed. Expired ones may be
-- pruned.
CREATE TABLE wallet_challenges (
    nonce      TEXT    PRIMARY KEY CHECK (length(nonce) = 32 AND nonce NOT GLOB '*[^0-9a-f]*'),
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    address    TEXT    NOT NULL CHECK (
                           length(address) = 66
                           AND substr(address, 1, 2) = '0x'
                           AND substr(address, 3) NOT GLOB '*[^0-9a-f]*'),
    chain_id   TEXT    NOT NULL CHECK (length(chain_id) BETWEEN 1 AND 66),
    issued_at  TEXT    NOT NULL,
    expires_at TEXT    NOT NULL CHECK (expires_at > issued_at),
    used_at    TEXT
) STRICT;
CREATE INDEX wallet_challenges_user_idx ON wallet_challenges (user_id);
CREATE INDEX wallet_challenges_expires_idx ON wallet_challenges (expires_at);

-- +goose Down
DROP TABLE wallet_challenges;
DROP TABLE transaction_state;
DROP TABLE transaction_events;
DROP TABLE transactions;
