package main

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/url"
	"slices"
	"time"

	"github.com/lib/pq"
)

// The bench user, registered through the API.
const (
	benchEmail    = "bench-read@example.com"
	benchPassword = "bench-read-password"
	benchName     = "Bench Reader"
)

// historyDays is the user's year of history: an allocation and two
// transactions a day.
const historyDays = 365

// backfillRows is how many risk scores show that the simulated market's
// backfill is done (5 protocols × 400 days, less the days a score needs
// to warm up), as ../shared/bench/peer-compare.sh waits for them.
const backfillRows = 1500

// usdcAddress is USDC's token contract on Starknet, the token of every
// seeded transaction.
const usdcAddress = "0x053c91253bc9682c04929ca02ed00b3e423f6710d2ee7e0d5ebb06f3ecf368a8"

// databaseURL is adminURL with its database replaced by name.
func databaseURL(adminURL, name string) (string, error) {
	u, err := url.Parse(adminURL)
	if err != nil {
		return "", fmt.Errorf("parse -pg: %w", err)
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return "", fmt.Errorf("-pg %q: want a postgres:// URL", u.Redacted())
	}
	u.Path = "/" + name
	return u.String(), nil
}

// createDatabase creates the database name on the server of adminURL.
func createDatabase(ctx context.Context, adminURL, name string) error {
	return adminExec(ctx, adminURL, "CREATE DATABASE "+pq.QuoteIdentifier(name))
}

// dropDatabase drops the database name, closing whatever connections are
// still open to it (a server killed rather than stopped leaves some).
func dropDatabase(ctx context.Context, adminURL, name string) error {
	return adminExec(ctx, adminURL, "DROP DATABASE IF EXISTS "+pq.QuoteIdentifier(name)+" WITH (FORCE)")
}

// adminExec runs stmt on its own connection to adminURL, closed at once:
// the shared server has few connections to spare.
func adminExec(ctx context.Context, adminURL, stmt string) error {
	db, err := sql.Open("postgres", adminURL)
	if err != nil {
		return fmt.Errorf("open %s: %w", adminURL, err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, stmt); err != nil {
		return fmt.Errorf("%s: %w", stmt, err)
	}
	return nil
}

// awaitBackfill waits until the simulated market has backfilled its
// history: backfillRows risk scores, within readyWithin.
func awaitBackfill(ctx context.Context, db *sql.DB) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, readyWithin)
	defer cancel()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		var n int
		if err := db.QueryRowContext(ctx, "SELECT count(*) FROM risk_scores").Scan(&n); err != nil {
			return 0, fmt.Errorf("count risk scores: %w", err)
		}
		if n >= backfillRows {
			return n, nil
		}
		select {
		case <-ctx.Done():
			return n, fmt.Errorf("backfill: %d risk scores, want %d: %w", n, backfillRows, ctx.Err())
		case <-tick.C:
		}
	}
}

// registerUser creates the bench user through the register mutation and
// returns its access token and id.
func registerUser(ctx context.Context, c gqlClient, db *sql.DB) (token string, userID int64, err error) {
	var data struct {
		Register struct {
			AccessToken string
			Auth        struct{ AccessToken string }
		}
	}
	// register answers RegisterPayload since issue 22 (auth { … }), and
	// AuthPayload before: the base binary may be either.
	input := map[string]any{"input": map[string]any{"email": benchEmail, "password": benchPassword, "fullName": benchName}}
	err = c.do(ctx, "", `mutation Register($input: RegisterInput!) { register(input: $input) { auth { accessToken } } }`, input, &data)
	if err != nil {
		err = c.do(ctx, "", `mutation Register($input: RegisterInput!) { register(input: $input) { accessToken } }`, input, &data)
	}
	if err != nil {
		return "", 0, fmt.Errorf("register %s: %w", benchEmail, err)
	}
	if data.Register.AccessToken == "" {
		data.Register.AccessToken = data.Register.Auth.AccessToken
	}
	// The API names the user by a global id; the history rows want the
	// database's.
	if err := db.QueryRowContext(ctx, "SELECT id FROM users WHERE email_key = $1", benchEmail).Scan(&userID); err != nil {
		return "", 0, fmt.Errorf("load id of %s: %w", benchEmail, err)
	}
	return data.Register.AccessToken, userID, nil
}

// weight is one protocol's share in allocations.weights, as the store
// writes it.
type weight struct {
	ProtocolID int64 `json:"protocolId"`
	WeightBps  int   `json:"weightBps"`
}

// protocolAPY is an enabled protocol and its latest daily APY.
type protocolAPY struct {
	id     int64
	apyBps int
}

// seedHistory inserts, in one transaction, the user's year up to now: an
// allocation a day (over 2 to 4 of the enabled protocols; the newest,
// an hour ago, half in each of the two with the lowest APY now, so that a
// suggestion moves away from it), and two transactions a day (a deposit or
// withdrawal, then the allocation's own, whose hash the allocation
// carries), each with the history steps and state the chain watcher would
// have recorded. rng makes the weights and amounts.
func seedHistory(ctx context.Context, db *sql.DB, userID int64, now time.Time, rng *rand.Rand) (err error) {
	protocols, err := enabledProtocols(ctx, db)
	if err != nil {
		return err
	}
	if len(protocols) < 2 {
		return fmt.Errorf("seed: %d enabled protocols with daily metrics, want at least 2", len(protocols))
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("seed: begin: %w", err)
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	ins, err := prepareInserts(ctx, tx)
	if err != nil {
		return err
	}
	defer ins.close()

	valueCents := int64(10_000_00)
	for i := range historyDays {
		day := now.Add(-time.Duration(historyDays-1-i) * 24 * time.Hour)
		last := i == historyDays-1

		// The day's deposit or withdrawal moves the portfolio's value.
		moveCents := int64(50_00 + rng.IntN(2000_00))
		kind := "DEPOSIT"
		if i%5 == 4 && valueCents-moveCents > 1000_00 {
			kind = "WITHDRAW"
			valueCents -= moveCents
		} else {
			valueCents += moveCents
		}
		move := ledgerTx{n: 2 * i, kind: kind, cents: moveCents, at: day.Add(-7 * time.Hour)}
		if _, err := ins.add(ctx, userID, move, now); err != nil {
			return err
		}

		kind = "REBALANCE"
		if i == 0 {
			kind = "ALLOCATE"
		}
		alloc := ledgerTx{n: 2*i + 1, kind: kind, cents: valueCents, at: day.Add(-2 * time.Hour),
			details: fmt.Sprintf(`{"source":"benchread","day":%d}`, i)}
		hash, err := ins.add(ctx, userID, alloc, now)
		if err != nil {
			return err
		}

		weights := randomWeights(rng, protocols)
		reason := "USER_INITIATED"
		switch {
		case last:
			weights = lowestAPY(protocols)
		case i%30 == 29:
			reason = "OPTIMIZATION"
		case i%7 == 6:
			reason = "AUTO_REBALANCE"
		}
		w, err := json.Marshal(weights)
		if err != nil {
			return fmt.Errorf("seed: encode weights: %w", err)
		}
		if _, err := ins.allocation.ExecContext(ctx, userID, string(w), reason, hash, cents(valueCents), day.Add(-time.Hour)); err != nil {
			return fmt.Errorf("seed: insert allocation of day %d: %w", i, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("seed: commit: %w", err)
	}
	return nil
}

// enabledProtocols returns the enabled protocols with their latest daily
// APY, by id.
func enabledProtocols(ctx context.Context, db *sql.DB) ([]protocolAPY, error) {
	rows, err := db.QueryContext(ctx, `
		SELECT DISTINCT ON (m.protocol_id) m.protocol_id, m.apy_bps
		FROM metrics_daily m JOIN protocols p ON p.id = m.protocol_id
		WHERE p.enabled
		ORDER BY m.protocol_id, m.day DESC`)
	if err != nil {
		return nil, fmt.Errorf("load protocols: %w", err)
	}
	defer rows.Close()
	var out []protocolAPY
	for rows.Next() {
		var p protocolAPY
		if err := rows.Scan(&p.id, &p.apyBps); err != nil {
			return nil, fmt.Errorf("scan protocol: %w", err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load protocols: %w", err)
	}
	return out, nil
}

// randomWeights splits 10000 bps over 2 to 4 of protocols (as many as
// there are, if fewer), at least 500 bps each in steps of 100, sorted by
// protocol id as RecordAllocation stores them.
func randomWeights(rng *rand.Rand, protocols []protocolAPY) []weight {
	k := min(2+rng.IntN(3), len(protocols))
	units := make([]int, k)
	for i := range units {
		units[i] = 5
	}
	for range 100 - 5*k {
		units[rng.IntN(k)]++
	}
	out := make([]weight, k)
	for i, j := range rng.Perm(len(protocols))[:k] {
		out[i] = weight{ProtocolID: protocols[j].id, WeightBps: 100 * units[i]}
	}
	slices.SortFunc(out, func(a, b weight) int { return int(a.ProtocolID - b.ProtocolID) })
	return out
}

// lowestAPY is half in each of the two protocols with the lowest APY now:
// the allocation any plan moves away from.
func lowestAPY(protocols []protocolAPY) []weight {
	byAPY := slices.Clone(protocols)
	slices.SortFunc(byAPY, func(a, b protocolAPY) int { return a.apyBps - b.apyBps })
	out := []weight{{byAPY[0].id, 5000}, {byAPY[1].id, 5000}}
	slices.SortFunc(out, func(a, b weight) int { return int(a.ProtocolID - b.ProtocolID) })
	return out
}

// ledgerTx is one seeded transaction.
type ledgerTx struct {
	n       int // its number in the user's history, which its hash is made from
	kind    string
	cents   int64
	at      time.Time
	details string // a JSON object, or "" for none
}

// step is one row of a transaction's history.
type step struct {
	status, exec string // exec "" is NULL
	at           time.Time
	raw, reason  string
}

// Times the seeded transactions took on their way to L1.
const (
	toL2 = 20 * time.Second
	toL1 = 6 * time.Hour
)

// steps returns t's history as the watcher records it: logged PENDING,
// then ACCEPTED_ON_L2 and ACCEPTED_ON_L1 with their execution status once
// they are past at now. One transaction in 40 reverted.
func (t ledgerTx) steps(now time.Time) []step {
	out := []step{{status: "PENDING", at: t.at, reason: "logged"}}
	exec, reason := "SUCCEEDED", "reported by the node"
	if t.reverted() {
		exec, reason = "REVERTED", "reverted: "+revertReason
	}
	for _, s := range []struct {
		status string
		after  time.Duration
	}{{"ACCEPTED_ON_L2", toL2}, {"ACCEPTED_ON_L1", toL1}} {
		at := t.at.Add(s.after)
		if at.After(now) {
			break
		}
		raw := fmt.Sprintf(`{"finality_status":%q,"execution_status":%q}`, s.status, exec)
		out = append(out, step{status: s.status, exec: exec, at: at, raw: raw, reason: reason})
		reason = "reported by the node"
	}
	return out
}

// revertReason is the failure of a reverted transaction.
const revertReason = "Failure reason: 0x753235365f737562204f766572666c6f77 ('u256_sub Overflow')."

func (t ledgerTx) reverted() bool { return t.n%40 == 17 }

// hash is t's transaction hash: a felt (below 2^251) made from the user's
// number of it, so that every run seeds the same hashes.
func (t ledgerTx) hash() string {
	sum := sha256.Sum256(fmt.Appendf(nil, "benchread transaction %d", t.n))
	sum[0] &= 0x07
	return "0x" + hex.EncodeToString(sum[:])
}

// cents formats an amount of cents as a decimal.
func cents(c int64) string { return fmt.Sprintf("%d.%02d", c/100, c%100) }

// inserts are the seeding's prepared statements.
type inserts struct {
	transaction, event, state, allocation *sql.Stmt
}

func prepareInserts(ctx context.Context, tx *sql.Tx) (*inserts, error) {
	var ins inserts
	for _, p := range []struct {
		dst **sql.Stmt
		sql string
	}{
		{&ins.transaction, `INSERT INTO transactions (user_id, tx_hash, type, amount, token, token_address, details, created_at)
			VALUES ($1, $2, $3, $4, 'USDC', $5, NULLIF($6, ''), $7) RETURNING id`},
		{&ins.event, `INSERT INTO transaction_events (transaction_id, status, execution_status, raw_status, reason, at)
			VALUES ($1, $2, NULLIF($3, ''), $4, $5, $6)`},
		{&ins.state, `INSERT INTO transaction_state (transaction_id, status, execution_status, failure_reason, block_number,
				fee_amount, fee_unit, events_emitted, updated_at, last_checked_at, next_check_at)
			VALUES ($1, $2, NULLIF($3, ''), $4, $5, $6, $7, $8, $9, $10, $11)`},
		{&ins.allocation, `INSERT INTO allocations (user_id, weights, reason, tx_hash, portfolio_value_usd, created_at)
			VALUES ($1, $2, $3, $4, $5, $6)`},
	} {
		stmt, err := tx.PrepareContext(ctx, p.sql)
		if err != nil {
			ins.close()
			return nil, fmt.Errorf("seed: prepare: %w", err)
		}
		*p.dst = stmt
	}
	return &ins, nil
}

func (ins *inserts) close() {
	for _, s := range []*sql.Stmt{ins.transaction, ins.event, ins.state, ins.allocation} {
		if s != nil {
			s.Close()
		}
	}
}

// add inserts t with its history and its state, as the store's
// InsertTransaction and the watcher's RecordStatus and RecordReceipt
// leave them: the state after its steps (a trigger refuses a state whose
// step is not in the history), the receipt once it is in a block, a next
// check while it is not final. It returns t's hash.
func (ins *inserts) add(ctx context.Context, userID int64, t ledgerTx, now time.Time) (string, error) {
	hash := t.hash()
	var id int64
	err := ins.transaction.QueryRowContext(ctx, userID, hash, t.kind, cents(t.cents), usdcAddress, t.details, t.at).Scan(&id)
	if err != nil {
		return "", fmt.Errorf("seed: insert transaction %d: %w", t.n, err)
	}
	steps := t.steps(now)
	for _, s := range steps {
		if _, err := ins.event.ExecContext(ctx, id, s.status, s.exec, s.raw, s.reason, s.at); err != nil {
			return "", fmt.Errorf("seed: insert step %s of transaction %d: %w", s.status, t.n, err)
		}
	}
	last := steps[len(steps)-1]
	var failure, block, fee, feeUnit, events, checked, next any
	if len(steps) > 1 {
		block, fee, feeUnit, events, checked = 812_000+t.n*113, fmt.Sprint(2_100_000_000_000_000+t.n*7_919), "FRI", 3, last.at
	}
	if t.reverted() && len(steps) > 1 {
		failure, events = revertReason, 0
	}
	if last.status != "ACCEPTED_ON_L1" {
		next = last.at.Add(15 * time.Second)
	}
	_, err = ins.state.ExecContext(ctx, id, last.status, last.exec, failure, block, fee, feeUnit, events, last.at, checked, next)
	if err != nil {
		return "", fmt.Errorf("seed: insert state of transaction %d: %w", t.n, err)
	}
	return hash, nil
}

// suggestion is what the seeding reads of a rebalance suggestion.
type suggestion struct {
	ID                     string
	ClearsThreshold        bool
	ExpectedImprovementBps float64
	ThresholdBps           int
}

// requestSuggestion asks the API for the user's rebalance suggestion,
// which records it (a decision in the hash-chained log and a
// REBALANCE_SUGGESTION prediction), so that the dashboard has a pending
// one. A suggestion that does not clear the user's threshold is not
// pending: the threshold is then lowered to 0 through updatePreferences
// and the suggestion asked for again (a changed threshold makes a new
// one).
func requestSuggestion(ctx context.Context, c gqlClient, token string) (*suggestion, error) {
	const query = `{ rebalanceSuggestion { id clearsThreshold expectedImprovementBps thresholdBps } }`
	var data struct{ RebalanceSuggestion *suggestion }
	if err := c.do(ctx, token, query, nil, &data); err != nil {
		return nil, fmt.Errorf("rebalanceSuggestion: %w", err)
	}
	if s := data.RebalanceSuggestion; s == nil || s.ClearsThreshold {
		return s, nil
	}
	var prefs struct{ UpdatePreferences struct{ ID string } }
	if err := c.do(ctx, token, `mutation { updatePreferences(input: { rebalanceThresholdBps: 0 }) { id } }`, nil, &prefs); err != nil {
		return nil, fmt.Errorf("updatePreferences: %w", err)
	}
	if err := c.do(ctx, token, query, nil, &data); err != nil {
		return nil, fmt.Errorf("rebalanceSuggestion at threshold 0: %w", err)
	}
	return data.RebalanceSuggestion, nil
}

// seedSummary counts what the bench reads.
type seedSummary struct {
	protocols, allocations, transactions, txEvents, riskScores, dailyMetrics, predictions int
}

func summarize(ctx context.Context, db *sql.DB, userID int64) (seedSummary, error) {
	var s seedSummary
	err := db.QueryRowContext(ctx, `SELECT
		(SELECT count(*) FROM protocols WHERE enabled),
		(SELECT count(*) FROM allocations WHERE user_id = $1),
		(SELECT count(*) FROM transactions WHERE user_id = $1),
		(SELECT count(*) FROM transaction_events e JOIN transactions t ON t.id = e.transaction_id WHERE t.user_id = $1),
		(SELECT count(*) FROM risk_scores),
		(SELECT count(*) FROM metrics_daily),
		(SELECT count(*) FROM predictions WHERE user_id = $1)`, userID).
		Scan(&s.protocols, &s.allocations, &s.transactions, &s.txEvents, &s.riskScores, &s.dailyMetrics, &s.predictions)
	if err != nil {
		return s, fmt.Errorf("count seeded rows: %w", err)
	}
	return s, nil
}
