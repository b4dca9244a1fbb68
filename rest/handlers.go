package rest

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/account"
)

// The answers' shapes. Fields the original did not have are marked
// "added"; the README lists them.

// tokenAnswer answers register, login and refresh.
type tokenAnswer struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int    `json:"expires_in"`
	// added: the original's frontend read user; refresh_token renews the
	// session (POST /api/v1/auth/refresh).
	RefreshToken string     `json:"refresh_token"`
	User         userAnswer `json:"user"`
}

func newTokenAnswer(p *obsqra.AuthPayload) tokenAnswer {
	return tokenAnswer{AccessToken: p.AccessToken, TokenType: "bearer", ExpiresIn: p.ExpiresIn,
		RefreshToken: p.RefreshToken, User: newUserAnswer(p.User)}
}

// pendingAnswer answers a registration when addresses must be verified
// first: the same for a new and a taken email (added).
type pendingAnswer struct {
	Message              string `json:"message"`
	VerificationRequired bool   `json:"verification_required"`
}

// userAnswer is the original's user object.
type userAnswer struct {
	ID            int64   `json:"id"`
	Email         string  `json:"email"`
	FullName      string  `json:"full_name"`
	WalletAddress *string `json:"wallet_address"`
	IsVerified    bool    `json:"is_verified"`
}

func newUserAnswer(u *obsqra.User) userAnswer {
	out := userAnswer{ID: u.ID, Email: u.Email, FullName: u.FullName, IsVerified: u.EmailVerified}
	if u.WalletAddress != nil {
		s := u.WalletAddress.String()
		out.WalletAddress = &s
	}
	return out
}

// preferencesAnswer is the preferences object of the profile.
type preferencesAnswer struct {
	RiskTolerance        string `json:"risk_tolerance"`
	AutoRebalanceEnabled bool   `json:"auto_rebalance_enabled"`
	RebalanceThreshold   number `json:"rebalance_threshold"`
	EmailAlertsEnabled   bool   `json:"email_alerts_enabled"`
	// added
	MaxSingleBps       int `json:"max_single_bps"`
	MinDiversification int `json:"min_diversification"`
	MaxVolatilityBps   int `json:"max_volatility_bps"`
	MaxLiquidityTier   int `json:"max_liquidity_tier"`
}

type profileAnswer struct {
	userAnswer
	Preferences preferencesAnswer `json:"preferences"`
}

func newProfileAnswer(u *obsqra.User) profileAnswer {
	p := u.Preferences
	return profileAnswer{userAnswer: newUserAnswer(u), Preferences: preferencesAnswer{
		RiskTolerance: strings.ToLower(string(p.RiskTolerance)), AutoRebalanceEnabled: p.AutoRebalance,
		RebalanceThreshold: bpsPercent(float64(p.RebalanceThresholdBps)), EmailAlertsEnabled: p.EmailAlerts,
		MaxSingleBps: p.MaxSingleBps, MinDiversification: p.MinDiversification,
		MaxVolatilityBps: p.MaxVolatilityBps, MaxLiquidityTier: p.MaxLiquidityTier,
	}}
}

type messageAnswer struct {
	Message string `json:"message"`
}

type messageUserAnswer struct {
	Message string `json:"message"`
	// added: the original's frontend read user.
	User userAnswer `json:"user"`
}

// challengeAnswer is a wallet challenge (added).
type challengeAnswer struct {
	TypedData obsqra.JSONObject `json:"typed_data"`
	Nonce     string            `json:"nonce"`
	ExpiresAt datetime          `json:"expires_at"`
}

type riskRow struct {
	Protocol    string   `json:"protocol"`
	RiskScore   number   `json:"risk_score"`
	Utilization *number  `json:"utilization"`
	Volatility  *number  `json:"volatility"`
	Timestamp   datetime `json:"timestamp"`
}

// allocationRow is an allocation snapshot. The original knew three
// protocols; weights (added) has every protocol's percentage.
type allocationRow struct {
	NostraPct number            `json:"nostra_pct"`
	ZklendPct number            `json:"zklend_pct"`
	EkuboPct  number            `json:"ekubo_pct"`
	Reason    *string           `json:"reason"`
	TxHash    *string           `json:"tx_hash"`
	Timestamp datetime          `json:"timestamp"`
	ID        int64             `json:"id"`
	Weights   map[string]number `json:"weights"`
}

type latestAllocation struct {
	NostraPct number `json:"nostra_pct"`
	ZklendPct number `json:"zklend_pct"`
	EkuboPct  number `json:"ekubo_pct"`
	// added
	Weights map[string]number `json:"weights"`
}

type dashboardScore struct {
	Protocol  string   `json:"protocol"`
	Score     number   `json:"score"`
	Timestamp datetime `json:"timestamp"`
}

type dashboardAnswer struct {
	LatestAllocation *latestAllocation `json:"latest_allocation"`
	RiskScores       []dashboardScore  `json:"risk_scores"`
	PeriodDays       int               `json:"period_days"`
}

// forecastExtra is what a forecast row adds to the original's.
type forecastExtra struct {
	ID          int64  `json:"id"`
	HorizonDays int    `json:"horizon_days"`
	TargetDate  string `json:"target_date"`
	Lower80     number `json:"lower_80"`
	Upper80     number `json:"upper_80"`
}

type riskForecastRow struct {
	Protocol      *string  `json:"protocol"`
	PredictedRisk number   `json:"predicted_risk"`
	Confidence    *number  `json:"confidence"`
	Timestamp     datetime `json:"timestamp"`
	forecastExtra
}

type yieldForecastRow struct {
	Protocol       *string  `json:"protocol"`
	PredictedYield number   `json:"predicted_yield"`
	Confidence     *number  `json:"confidence"`
	Timestamp      datetime `json:"timestamp"`
	forecastExtra
}

type suggestionRow struct {
	Allocation          map[string]number `json:"allocation"`
	Reason              *string           `json:"reason"`
	ExpectedImprovement number            `json:"expected_improvement"`
	Confidence          *number           `json:"confidence"`
	Timestamp           datetime          `json:"timestamp"`
	// added
	ID              int64  `json:"id"`
	ClearsThreshold bool   `json:"clears_threshold"`
	CostUsd         string `json:"cost_usd"`
}

type optimizationAnswer struct {
	Message string `json:"message"`
	Status  string `json:"status"`
	// added: the run's result.
	ID          int64             `json:"id"`
	Allocation  map[string]number `json:"allocation"`
	ExpectedApy number            `json:"expected_apy"`
	RiskScore   number            `json:"risk_score"`
	DecisionID  string            `json:"decision_id"`
	Timestamp   datetime          `json:"timestamp"`
}

type createdAnswer struct {
	ID     int64  `json:"id"`
	TxHash string `json:"tx_hash"`
	// added
	Status string `json:"status"`
}

type transactionRow struct {
	ID        int64             `json:"id"`
	TxHash    string            `json:"tx_hash"`
	TxType    string            `json:"tx_type"`
	Amount    *number           `json:"amount"`
	Status    string            `json:"status"`
	Details   obsqra.JSONObject `json:"details"`
	CreatedAt datetime          `json:"created_at"`
	// added: the exact amount and what the chain said.
	AmountExact     string  `json:"amount_exact"`
	Token           string  `json:"token"`
	ExecutionStatus *string `json:"execution_status"`
	FailureReason   *string `json:"failure_reason"`
	BlockNumber     *int64  `json:"block_number"`
}

type transactionAnswer struct {
	transactionRow
	UpdatedAt datetime `json:"updated_at"`
}

func newTransactionRow(t *obsqra.Transaction) transactionRow {
	out := transactionRow{ID: t.ID, TxHash: t.TxHash.String(), TxType: strings.ToLower(string(t.Type)),
		Status: strings.ToLower(string(t.Status)), Details: t.Details, CreatedAt: datetime(t.CreatedAt),
		AmountExact: t.Amount.String(), Token: t.Token, FailureReason: t.FailureReason, BlockNumber: t.BlockNumber}
	if len(out.Details) == 0 {
		out.Details = obsqra.JSONObject("{}")
	}
	// The original's float; amount_exact keeps every digit.
	f, _ := strconv.ParseFloat(t.Amount.String(), 64) // the nearest float, as Rat's, without big.Int
	amount := number(f)
	out.Amount = &amount
	if t.ExecutionStatus != nil {
		s := strings.ToLower(string(*t.ExecutionStatus))
		out.ExecutionStatus = &s
	}
	return out
}

// Handlers: each reads its inputs, calls one service and shapes the answer.

func (a *API) register(c *call) (any, error) {
	reg, err := a.Accounts.Register(c.ctx, account.RegisterInput{
		Email: c.in.str("email"), Password: c.in.str("password"), FullName: c.in.str("full_name")})
	if err != nil {
		if obsqra.ErrorCode(err) == obsqra.ECONFLICT {
			// The original's words; told only where the GraphQL API
			// tells it (without verification required).
			return nil, &obsqra.Error{Code: obsqra.ECONFLICT, Message: "Email already registered", Err: err}
		}
		return nil, err
	}
	if !reg.SignedIn() {
		return pendingAnswer{Message: "Check your mailbox: follow the link we sent to verify your address, then sign in.",
			VerificationRequired: true}, nil
	}
	return newTokenAnswer(reg.Auth), nil
}

func (a *API) login(c *call) (any, error) {
	p, err := a.Accounts.Login(c.ctx, c.in.str("email"), c.in.str("password"))
	if err != nil {
		if obsqra.ErrorCode(err) == obsqra.EUNAUTHENTICATED {
			return nil, &obsqra.Error{Code: obsqra.EUNAUTHENTICATED, Message: "Invalid credentials", Err: err}
		}
		return nil, err
	}
	return newTokenAnswer(p), nil
}

func (a *API) refresh(c *call) (any, error) {
	p, err := a.Accounts.Refresh(c.ctx, c.in.str("refresh_token"))
	if err != nil {
		return nil, err
	}
	return newTokenAnswer(p), nil
}

func (a *API) logout(c *call) (any, error) {
	if err := a.Accounts.Logout(c.ctx, c.in.str("refresh_token")); err != nil {
		return nil, err
	}
	return messageAnswer{Message: "Logged out"}, nil
}

func (a *API) walletChallenge(c *call) (any, error) {
	ch, err := a.Accounts.RequestWalletChallenge(c.ctx, c.in.str("wallet_address"))
	if err != nil {
		return nil, err
	}
	return challengeAnswer{TypedData: ch.TypedData, Nonce: ch.Nonce, ExpiresAt: datetime(ch.ExpiresAt)}, nil
}

func (a *API) connectWallet(c *call) (any, error) {
	u, err := a.Accounts.ConnectWallet(c.ctx, c.in.str("wallet_address"), c.in.strings("signature"))
	if err != nil {
		if obsqra.ErrorCode(err) == obsqra.ECONFLICT {
			return nil, &obsqra.Error{Code: obsqra.ECONFLICT, Message: "Wallet already connected to another account", Err: err}
		}
		return nil, err
	}
	return messageUserAnswer{Message: "Wallet connected successfully", User: newUserAnswer(u)}, nil
}

func (a *API) updatePreferences(c *call) (any, error) {
	var patch obsqra.PreferencesPatch
	if c.in.has("risk_tolerance") {
		t := obsqra.RiskTolerance(strings.ToUpper(c.in.str("risk_tolerance")))
		if !t.IsValid() {
			return nil, obsqra.Errorf(obsqra.EINVALID, "riskTolerance must be low, medium or high, got %q", c.in.str("risk_tolerance"))
		}
		patch.RiskTolerance = &t
	}
	if c.in.has("auto_rebalance_enabled") {
		v := c.in.bool("auto_rebalance_enabled")
		patch.AutoRebalance = &v
	}
	if c.in.has("email_alerts_enabled") {
		v := c.in.bool("email_alerts_enabled")
		patch.EmailAlerts = &v
	}
	if c.in.has("rebalance_threshold") {
		pct := c.in.num("rebalance_threshold")
		if pct < 0 || pct > 100 {
			return nil, obsqra.Errorf(obsqra.EINVALID, "rebalanceThresholdBps must be between 0 and 100 percent, got %g", pct)
		}
		bps := int(pct*100 + 0.5)
		patch.RebalanceThresholdBps = &bps
	}
	for name, dst := range map[string]**int{"max_single_bps": &patch.MaxSingleBps, "min_diversification": &patch.MinDiversification,
		"max_volatility_bps": &patch.MaxVolatilityBps, "max_liquidity_tier": &patch.MaxLiquidityTier} {
		if c.in.has(name) {
			v := c.in.int(name)
			*dst = &v
		}
	}
	if _, err := a.Accounts.UpdatePreferences(c.ctx, patch); err != nil {
		return nil, err
	}
	return messageAnswer{Message: "Preferences updated"}, nil
}

// protocolFilter returns the protocols a request selects: every protocol,
// or the one named by its protocol parameter (none for an unknown slug),
// and every protocol's slug by id.
func (a *API) protocolFilter(c *call) ([]int64, map[int64]string, error) {
	ps, err := a.Market.Protocols(c.ctx)
	if err != nil {
		return nil, nil, err
	}
	slugs := make(map[int64]string, len(ps))
	var ids []int64
	want := c.in.str("protocol")
	for _, p := range ps {
		slugs[p.ID] = p.Slug
		if !c.in.has("protocol") || p.Slug == want {
			ids = append(ids, p.ID)
		}
	}
	return ids, slugs, nil
}

// since is the start of the window of the request's days.
func (a *API) since(c *call) time.Time {
	return a.now().UTC().Add(-time.Duration(c.in.int("days")) * 24 * time.Hour)
}

// riskScores returns the risk scores of the selected protocols observed in
// the window, at most maxHistoryRows per protocol.
func (a *API) riskScores(c *call) ([]obsqra.RiskScore, map[int64]string, error) {
	ids, slugs, err := a.protocolFilter(c)
	if err != nil || len(ids) == 0 {
		return nil, slugs, err
	}
	from := a.since(c)
	byProtocol, err := a.Market.RiskHistory(c.ctx, ids, obsqra.HistoryPage{First: maxHistoryRows, From: &from})
	if err != nil {
		return nil, nil, err
	}
	var out []obsqra.RiskScore
	for _, id := range ids {
		rows := byProtocol[id]
		out = append(out, rows[:min(len(rows), maxHistoryRows)]...)
	}
	return out, slugs, nil
}

func newestFirst(a, b obsqra.RiskScore) int {
	if c := b.ObservedAt.Compare(a.ObservedAt); c != 0 {
		return c
	}
	return cmp.Compare(b.ID, a.ID)
}

func (a *API) riskHistory(c *call) (any, error) {
	scores, slugs, err := a.riskScores(c)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(scores, newestFirst)
	out := make([]riskRow, len(scores))
	for i, s := range scores {
		util, vol := bpsPercent(float64(s.Inputs.Utilization)), bpsPercent(float64(s.Inputs.Volatility))
		out[i] = riskRow{Protocol: slugs[s.ProtocolID], RiskScore: number(s.Score), Utilization: &util, Volatility: &vol,
			Timestamp: datetime(s.ObservedAt)}
	}
	return out, nil
}

// percentages returns weights as percentages by protocol slug, and the
// original's three.
func percentages(weights []obsqra.Weight, slugs map[int64]string) map[string]number {
	out := make(map[string]number, len(weights))
	for _, w := range weights {
		slug := slugs[w.ProtocolID]
		if slug == "" {
			slug = fmt.Sprint(w.ProtocolID)
		}
		out[slug] += bpsPercent(float64(w.WeightBps))
	}
	return out
}

func (a *API) allocationHistory(c *call) (any, error) {
	from := a.since(c)
	allocs, err := a.Portfolio.AllocationHistory(c.ctx, maxHistoryRows, nil, &from, nil)
	if err != nil {
		return nil, err
	}
	allocs = allocs[:min(len(allocs), maxHistoryRows)]
	_, slugs, err := a.protocolFilter(c) // the route has no protocol parameter: all
	if err != nil {
		return nil, err
	}
	out := make([]allocationRow, len(allocs))
	for i, al := range allocs {
		w := percentages(al.Weights, slugs)
		reason := strings.ToLower(string(al.Reason))
		row := allocationRow{NostraPct: w["nostra"], ZklendPct: w["zklend"], EkuboPct: w["ekubo"], Reason: &reason,
			Timestamp: datetime(al.CreatedAt), ID: al.ID, Weights: w}
		if al.TxHash != nil {
			h := al.TxHash.String()
			row.TxHash = &h
		}
		out[i] = row
	}
	return out, nil
}

func (a *API) dashboard(c *call) (any, error) {
	latest, err := a.Portfolio.AllocationHistory(c.ctx, 1, nil, nil, nil)
	if err != nil {
		return nil, err
	}
	scores, slugs, err := a.riskScores(c)
	if err != nil {
		return nil, err
	}
	out := dashboardAnswer{RiskScores: make([]dashboardScore, len(scores)), PeriodDays: c.in.int("days")}
	if len(latest) > 0 {
		w := percentages(latest[0].Weights, slugs)
		out.LatestAllocation = &latestAllocation{NostraPct: w["nostra"], ZklendPct: w["zklend"], EkuboPct: w["ekubo"], Weights: w}
	}
	slices.SortFunc(scores, func(x, y obsqra.RiskScore) int {
		if c := strings.Compare(slugs[x.ProtocolID], slugs[y.ProtocolID]); c != 0 {
			return c
		}
		return newestFirst(x, y)
	})
	for i, s := range scores {
		out.RiskScores[i] = dashboardScore{Protocol: slugs[s.ProtocolID], Score: number(s.Score), Timestamp: datetime(s.ObservedAt)}
	}
	return out, nil
}

func (a *API) forecasts(c *call, risk bool) (any, error) {
	ids, slugs, err := a.protocolFilter(c)
	if err != nil {
		return nil, err
	}
	var protocolID int64 // 0: every protocol's
	if c.in.has("protocol") {
		if len(ids) == 0 {
			if risk {
				return []riskForecastRow{}, nil
			}
			return []yieldForecastRow{}, nil
		}
		protocolID = ids[0]
	}
	kind := obsqra.PredictionYieldForecast
	if risk {
		kind = obsqra.PredictionRiskForecast
	}
	ps, err := a.Advisor.Predictions(c.ctx, kind, protocolID, maxForecasts, 0)
	if err != nil {
		return nil, err
	}
	ps = ps[:min(len(ps), maxForecasts)]
	risks, yields := make([]riskForecastRow, 0, len(ps)), make([]yieldForecastRow, 0, len(ps))
	for _, p := range ps {
		var protocol *string
		if s, ok := slugs[p.ProtocolID]; ok {
			protocol = &s
		}
		conf := number(p.Confidence)
		extra := forecastExtra{ID: p.ID, HorizonDays: p.HorizonDays, TargetDate: p.Target.String()}
		if risk {
			extra.Lower80, extra.Upper80 = number(p.Lower80), number(p.Upper80)
			risks = append(risks, riskForecastRow{Protocol: protocol, PredictedRisk: number(p.Point), Confidence: &conf,
				Timestamp: datetime(p.CreatedAt), forecastExtra: extra})
			continue
		}
		// Yields are forecast in bps of APY; the original spoke percent.
		extra.Lower80, extra.Upper80 = bpsPercent(p.Lower80), bpsPercent(p.Upper80)
		yields = append(yields, yieldForecastRow{Protocol: protocol, PredictedYield: bpsPercent(p.Point), Confidence: &conf,
			Timestamp: datetime(p.CreatedAt), forecastExtra: extra})
	}
	if risk {
		return risks, nil
	}
	return yields, nil
}

func (a *API) suggestions(c *call) (any, error) {
	// The current suggestion is recorded (at most once an hour for the
	// same allocation and preferences) before the list is read.
	if _, err := a.Advisor.RebalanceSuggestion(c.ctx); err != nil && obsqra.ErrorCode(err) != obsqra.ENOTFOUND {
		// ENOTFOUND: no allocation to move from, so no suggestion.
		return nil, err
	}
	ps, err := a.Advisor.Predictions(c.ctx, obsqra.PredictionRebalanceSuggestion, 0, 4*maxSuggestions, 0)
	if err != nil {
		return nil, err
	}
	_, slugs, err := a.protocolFilter(c) // the route has no protocol parameter: all
	if err != nil {
		return nil, err
	}
	out := make([]suggestionRow, 0, maxSuggestions)
	for _, p := range ps {
		if len(out) == maxSuggestions {
			break
		}
		s, ok, err := p.Suggestion()
		if err != nil {
			return nil, err
		}
		if !ok {
			continue // an optimisation run made without an allocation
		}
		conf := number(s.Confidence)
		reason := suggestionReason(s)
		out = append(out, suggestionRow{Allocation: percentages(s.Target, slugs), Reason: &reason,
			ExpectedImprovement: bpsPercent(s.ExpectedImprovementBps), Confidence: &conf, Timestamp: datetime(s.CreatedAt),
			ID: s.ID, ClearsThreshold: s.ClearsThreshold, CostUsd: s.CostUsd.String()})
	}
	return out, nil
}

// suggestionReason says in words what the suggestion's figures say.
func suggestionReason(s *obsqra.RebalanceSuggestion) string {
	gain := float64(s.ExpectedImprovementBps) / 100
	if s.ClearsThreshold {
		return fmt.Sprintf("move to the plan for your %s risk tolerance: %+.2f %% APY expected, net of the trades' cost, above your %.2f %% threshold",
			strings.ToLower(string(s.Tolerance)), gain, float64(s.ThresholdBps)/100)
	}
	return fmt.Sprintf("not worth moving yet: %+.2f %% APY expected, net of the trades' cost, is below your %.2f %% threshold",
		gain, float64(s.ThresholdBps)/100)
}

func (a *API) runOptimization(c *call) (any, error) {
	run, err := a.Advisor.RunOptimization(c.ctx)
	if err != nil {
		return nil, err
	}
	_, slugs, err := a.protocolFilter(c) // the route has no protocol parameter: all
	if err != nil {
		return nil, err
	}
	return optimizationAnswer{Message: "Optimization completed", Status: "completed", ID: run.ID,
		Allocation: percentages(run.Plan.Weights, slugs), ExpectedApy: bpsPercent(float64(run.Plan.ExpectedApyBps)),
		RiskScore: number(run.Plan.PortfolioRiskScore), DecisionID: obsqra.NodeID(obsqra.NodeDecision, run.DecisionID),
		Timestamp: datetime(run.CreatedAt)}, nil
}

func (a *API) createTransaction(c *call) (any, error) {
	hash, err := obsqra.ParseFelt(c.in.str("tx_hash"))
	if err != nil {
		return nil, obsqra.Errorf(obsqra.EINVALID, "input.txHash: %s", obsqra.ErrorMessage(err))
	}
	typ := obsqra.TxType(strings.ToUpper(c.in.str("tx_type")))
	if !typ.IsValid() {
		return nil, obsqra.Errorf(obsqra.EINVALID, "input.type must be deposit, withdraw, allocate or rebalance, got %q", c.in.str("tx_type"))
	}
	amount, ok := c.in.decimal("amount")
	if !ok {
		return nil, obsqra.Errorf(obsqra.EINVALID, "input.amount is required here: this server's ledger keeps the amount of every transaction")
	}
	details := c.in.object("details")
	var detailsJSON obsqra.JSONObject
	if details != nil {
		raw, err := json.Marshal(details)
		if err != nil {
			return nil, err
		}
		detailsJSON = raw
	}
	token := c.in.str("token")
	if !c.in.has("token") {
		token, _ = details["asset"].(string)
	}
	if token == "" {
		return nil, obsqra.Errorf(obsqra.EINVALID, "input.token is required: the token's symbol (such as STRK), here or as details.asset")
	}
	t, err := a.Ledger.LogTransaction(c.ctx, obsqra.LogTransactionInput{TxHash: hash, Type: typ, Amount: amount, Token: token,
		Details: detailsJSON})
	if err != nil {
		if obsqra.ErrorCode(err) == obsqra.ECONFLICT {
			return nil, &obsqra.Error{Code: obsqra.ECONFLICT, Message: "Transaction already logged by another account", Err: err}
		}
		return nil, err
	}
	return createdAnswer{ID: t.ID, TxHash: t.TxHash.String(), Status: strings.ToLower(string(t.Status))}, nil
}

func (a *API) transactions(c *call) (any, error) {
	var filter obsqra.TransactionFilter
	if c.in.has("tx_type") {
		t := obsqra.TxType(strings.ToUpper(c.in.str("tx_type")))
		if !t.IsValid() {
			return []transactionRow{}, nil // the original matched exactly: nothing
		}
		filter.Type = &t
	}
	if c.in.has("status") {
		s := obsqra.TxStatus(strings.ToUpper(c.in.str("status")))
		if !s.IsValid() {
			return []transactionRow{}, nil
		}
		filter.Status = &s
	}
	limit := c.in.int("limit")
	ts, err := a.Ledger.Transactions(c.ctx, filter, limit, nil)
	if err != nil {
		return nil, err
	}
	ts = ts[:min(len(ts), limit)]
	out := make([]transactionRow, len(ts))
	for i := range ts {
		out[i] = newTransactionRow(&ts[i])
	}
	return out, nil
}

func (a *API) transaction(c *call) (any, error) {
	t, err := a.Ledger.Transaction(c.ctx, c.in.str("tx_hash"))
	if err != nil {
		if obsqra.ErrorCode(err) == obsqra.ENOTFOUND {
			return nil, &obsqra.Error{Code: obsqra.ENOTFOUND, Message: "Transaction not found", Err: err}
		}
		return nil, err
	}
	return transactionAnswer{transactionRow: newTransactionRow(t), UpdatedAt: datetime(t.UpdatedAt)}, nil
}
