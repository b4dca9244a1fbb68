-- The transaction log: each user's on-chain transactions as logged, the
-- history of every status the chain watcher saw them reach, the watcher's
-- current view of each, and the challenges of wallet linking.
--
-- transactions and transaction_events are history, append-only as in
-- 00003: row triggers refuse UPDATE and DELETE, a statement trigger
-- refuses TRUNCATE, and the application role is granted neither (see
-- store.GrantApplication). transaction_state is the watcher's current view
-- of each transaction (the latest step, the receipt, when to look again):
-- it is updated in place so that a user's list with its statuses is one
-- indexed join, and rows are never deleted. A trigger keeps it honest: its
-- status only moves forward, a known execution status never changes, and
-- every (status, execution status) it shows has its step in
-- transaction_events already.

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION obsqra_no_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% rows are never deleted: % is not allowed', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
-- obsqra_tx_status_rank orders the statuses as obsqra.TxStatus.Rank does.
CREATE FUNCTION obsqra_tx_status_rank(status text) RETURNS integer LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE status
        WHEN 'PENDING' THEN 0 WHEN 'RECEIVED' THEN 1 WHEN 'CANDIDATE' THEN 2 WHEN 'PRE_CONFIRMED' THEN 3
        WHEN 'ACCEPTED_ON_L2' THEN 4 WHEN 'ACCEPTED_ON_L1' THEN 5 WHEN 'DROPPED' THEN 6 END
$$;
-- +goose StatementEnd

-- amount is exact (numeric, never a float), positive, with at most 18
-- decimals and 78 integer digits. details is text, kept byte for byte as
-- written, like predictions.details.
CREATE TABLE transactions (
    id            bigserial   PRIMARY KEY,
    user_id       bigint      NOT NULL REFERENCES users (id),
    tx_hash       text        NOT NULL CONSTRAINT transactions_tx_hash_unique UNIQUE
                              CHECK (tx_hash ~ '^0x[0-9a-f]{64}$'),
    type          text        NOT NULL CHECK (type IN ('DEPOSIT', 'WITHDRAW', 'ALLOCATE', 'REBALANCE')),
    amount        numeric     NOT NULL CHECK (amount > 0 AND amount < 1e78 AND scale(amount) <= 18),
    token         text        NOT NULL CHECK (token ~ '^[A-Za-z0-9.]{1,16}$'),
    token_address text        CHECK (token_address ~ '^0x[0-9a-f]{64}$'),
    details       text        CHECK (details IS NULL OR (
                                  octet_length(details) <= 16384 AND jsonb_typeof(details::jsonb) = 'object')),
    created_at    timestamptz NOT NULL
);
-- A user's transactions, newest first (the keyset of the list).
CREATE INDEX transactions_user_time_idx ON transactions (user_id, created_at DESC, id DESC);

-- transaction_events is each transaction's history: one row per status
-- (or execution status) it reached, with the node's raw answer and why.
CREATE TABLE transaction_events (
    id               bigserial   PRIMARY KEY,
    transaction_id   bigint      NOT NULL REFERENCES transactions (id),
    status           text        NOT NULL CHECK (status IN ('PENDING', 'RECEIVED', 'CANDIDATE', 'PRE_CONFIRMED',
                                                            'ACCEPTED_ON_L2', 'ACCEPTED_ON_L1', 'DROPPED')),
    execution_status text        CHECK (execution_status IN ('SUCCEEDED', 'REVERTED')),
    raw_status       text        NOT NULL CHECK (length(raw_status) <= 16384),
    reason           text        NOT NULL CHECK (length(reason) <= 16384),
    at               timestamptz NOT NULL
);
CREATE INDEX transaction_events_transaction_idx ON transaction_events (transaction_id, id);

-- transaction_state is the current view of each transaction: a final
-- status (ACCEPTED_ON_L1, DROPPED) is never checked again, and any other
-- always has its next check.
CREATE TABLE transaction_state (
    transaction_id   bigint      PRIMARY KEY REFERENCES transactions (id),
    status           text        NOT NULL CHECK (status IN ('PENDING', 'RECEIVED', 'CANDIDATE', 'PRE_CONFIRMED',
                                                            'ACCEPTED_ON_L2', 'ACCEPTED_ON_L1', 'DROPPED')),
    execution_status text        CHECK (execution_status IN ('SUCCEEDED', 'REVERTED')),
    failure_reason   text        CHECK (length(failure_reason) <= 16384),
    block_number     bigint      CHECK (block_number >= 0),
    fee_amount       numeric     CHECK (fee_amount >= 0),
    fee_unit         text        CHECK (fee_unit IN ('WEI', 'FRI')),
    events_emitted   integer     CHECK (events_emitted >= 0),
    updated_at       timestamptz NOT NULL,
    last_checked_at  timestamptz,
    next_check_at    timestamptz,
    not_found_since  timestamptz,
    CONSTRAINT transaction_state_fee CHECK ((fee_amount IS NULL) = (fee_unit IS NULL)),
    CONSTRAINT transaction_state_schedule CHECK ((status IN ('ACCEPTED_ON_L1', 'DROPPED')) = (next_check_at IS NULL))
);
-- The watcher's queue: the transactions still to follow, soonest first.
CREATE INDEX transaction_state_due_idx ON transaction_state (next_check_at, transaction_id) WHERE next_check_at IS NOT NULL;

CREATE TRIGGER transactions_append_only BEFORE UPDATE OR DELETE ON transactions
    FOR EACH ROW EXECUTE FUNCTION obsqra_append_only();
CREATE TRIGGER transactions_no_truncate BEFORE TRUNCATE ON transactions
    FOR EACH STATEMENT EXECUTE FUNCTION obsqra_append_only();
CREATE TRIGGER transaction_events_append_only BEFORE UPDATE OR DELETE ON transaction_events
    FOR EACH ROW EXECUTE FUNCTION obsqra_append_only();
CREATE TRIGGER transaction_events_no_truncate BEFORE TRUNCATE ON transaction_events
    FOR EACH STATEMENT EXECUTE FUNCTION obsqra_append_only();
CREATE TRIGGER transaction_state_no_delete BEFORE DELETE ON transaction_state
    FOR EACH ROW EXECUTE FUNCTION obsqra_no_delete();
CREATE TRIGGER transaction_state_no_truncate BEFORE TRUNCATE ON transaction_state
    FOR EACH STATEMENT EXECUTE FUNCTION obsqra_no_delete();

-- +goose StatementBegin
-- obsqra_transaction_state_guard: the state's status moves forward only,
-- belongs to the transaction it was created for, a known execution status
-- stays, and no (status, execution status) shows without its step in the
-- history.
CREATE FUNCTION obsqra_transaction_state_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF NEW.transaction_id <> OLD.transaction_id
            OR obsqra_tx_status_rank(NEW.status) < obsqra_tx_status_rank(OLD.status)
            OR (OLD.execution_status IS NOT NULL AND NEW.execution_status IS DISTINCT FROM OLD.execution_status) THEN
            RAISE EXCEPTION 'transaction_state: the status only moves forward and a known execution status never changes (% % to % %)',
                OLD.status, coalesce(OLD.execution_status, '-'), NEW.status, coalesce(NEW.execution_status, '-')
                USING ERRCODE = 'check_violation';
        END IF;
        IF NEW.status = OLD.status AND NEW.execution_status IS NOT DISTINCT FROM OLD.execution_status THEN
            RETURN NEW;
        END IF;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM transaction_events e WHERE e.transaction_id = NEW.transaction_id
                       AND e.status = NEW.status AND e.execution_status IS NOT DISTINCT FROM NEW.execution_status) THEN
        RAISE EXCEPTION 'transaction_state: a status must be recorded in transaction_events first'
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$;
-- +goose StatementEnd
CREATE TRIGGER transaction_state_guard BEFORE INSERT OR UPDATE ON transaction_state
    FOR EACH ROW EXECUTE FUNCTION obsqra_transaction_state_guard();

-- wallet_challenges are the nonces a user signs to prove a wallet is
-- theirs (SNIP-12 typed data rebuilt from the row). A challenge is used
-- once: used_at is set atomically when it is consumed. Expired ones may be
-- pruned.
CREATE TABLE wallet_challenges (
    nonce      text        PRIMARY KEY CHECK (nonce ~ '^[0-9a-f]{32}$'),
    user_id    bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    address    text        NOT NULL CHECK (address ~ '^0x[0-9a-f]{64}$'),
    chain_id   text        NOT NULL CHECK (length(chain_id) BETWEEN 1 AND 66),
    issued_at  timestamptz NOT NULL,
    expires_at timestamptz NOT NULL CHECK (expires_at > issued_at),
    used_at    timestamptz
);
CREATE INDEX wallet_challenges_user_idx ON wallet_challenges (user_id);
CREATE INDEX wallet_challenges_expires_idx ON wallet_challenges (expires_at);

-- +goose Down
DROP TABLE wallet_challenges;
DROP TABLE transaction_state;
DROP TABLE transaction_events;
DROP TABLE transactions;
DROP FUNCTION obsqra_transaction_state_guard();
DROP FUNCTION obsqra_tx_status_rank(text);
DROP FUNCTION obsqra_no_delete();
