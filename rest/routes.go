package rest

import (
	"net/http"
	"strings"
)

// route is one route of the API: how its request is read, what it costs,
// what it answers, and the service call that answers it.
type route struct {
	method string
	// path is relative to Prefix; a {name} segment is the path
	// parameter, read by pathParam.
	path      string
	segments  []string
	pathParam *field
	tag       string
	summary   string
	doc       string
	// auth: the route needs an access token (?token= or a bearer header).
	auth bool
	// cost is charged to the caller's budget before the route runs: the
	// GraphQL API's price of an operation of the same work.
	cost  int64
	query []field
	body  *bodySpec
	// out is a value of the 200 answer's type (the OpenAPI schema is
	// made from it); alt, when set, is the other shape it may take.
	out, alt any
	// errors are the statuses it may answer besides 200 and those of
	// every route (401, 422, 429, 500, 503): documented.
	errors []int
	// fields maps the service's names of invalid inputs to the
	// request's fields.
	fields fieldMap
	// added marks a route the original did not have.
	added bool
	serve func(a *API, c *call) (any, error)
}

// bodySpec is a route's JSON body: an object of fields.
type bodySpec struct {
	// required: a missing body is reported ("loc": ["body"]).
	required bool
	fields   []field
}

// matchPath reports whether the segments of a path (below Prefix, split
// at "/") are rt's, with the value of its path parameter.
func (rt *route) matchPath(segs []string) (string, bool) {
	if len(segs) != len(rt.segments) {
		return "", false
	}
	var value string
	for i, s := range rt.segments {
		if strings.HasPrefix(s, "{") {
			if segs[i] == "" {
				return "", false
			}
			value = segs[i]
			continue
		}
		if s != segs[i] {
			return "", false
		}
	}
	return value, true
}

// Route costs, in the GraphQL API's points: a read of a page of rows costs
// about its rows' fields, a write its mutation's price.
const (
	costRead     = 10
	costHistory  = 50
	costWrite    = 25
	costAuth     = 25
	costPlanning = 100
)

// Limits of the answers.
const (
	// maxHistoryRows bounds the rows of a history answer per protocol
	// (risk) or in all (allocations): the newest are kept.
	maxHistoryRows = 1000
	maxDays        = 90
	// maxForecasts and maxSuggestions are the original's limits.
	maxForecasts   = 10
	maxSuggestions = 5
	// maxSignatureFelts bounds a wallet signature, as the GraphQL API
	// does.
	maxSignatureFelts = 32
	// maxStringBytes bounds a free string parameter.
	maxStringBytes = 1024
)

var daysParam = field{name: "days", kind: kindInt, def: int64(7), min: bound(1), max: bound(maxDays),
	doc: "The window, in days up to now."}

var protocolParam = field{name: "protocol", kind: kindString, maxLen: 64,
	doc: "Only this protocol (its slug, e.g. nostra, zklend, ekubo); an unknown one selects nothing."}

// build makes the route table and the OpenAPI document.
func (a *API) build() {
	a.table = routes()
	for _, rt := range a.table {
		rt.segments = strings.Split(rt.path, "/")
	}
	a.openAPI = openAPIDocument(a.table, a.Version)
}

// routes is the table of the API, in the original's order.
func routes() []*route {
	tokenErrors := []int{http.StatusBadRequest}
	return []*route{
		{
			method: http.MethodPost, path: "/auth/register", tag: "auth", summary: "Create an account",
			doc: "Signs up with an email and a password (at least 8 characters). Without REQUIRE_EMAIL_VERIFICATION it signs in at once and answers the tokens; " +
				"with it, the answer is the same for a new and a taken email (a pending registration, no tokens) and a link is mailed.",
			cost: costAuth,
			body: &bodySpec{required: true, fields: []field{
				{name: "email", kind: kindEmail, required: true, maxLen: maxStringBytes, doc: "The sign-in address."},
				{name: "password", kind: kindString, required: true, maxLen: maxStringBytes, doc: "At least 8 characters, at most 72 bytes."},
				{name: "full_name", kind: kindString, def: "", maxLen: maxStringBytes, doc: "Optional (the original required it; its frontend never sent it)."},
			}},
			out: tokenAnswer{}, alt: pendingAnswer{}, errors: []int{http.StatusBadRequest},
			fields: fieldMap{{"email", []any{"body", "email"}, "email"}, {"password", []any{"body", "password"}, "password"},
				{"fullName", []any{"body", "full_name"}, "full_name"}},
			serve: (*API).register,
		},
		{
			method: http.MethodPost, path: "/auth/login", tag: "auth", summary: "Sign in",
			doc:  "Answers an access token and a refresh token for an email and password.",
			cost: costAuth,
			body: &bodySpec{required: true, fields: []field{
				{name: "email", kind: kindEmail, required: true, maxLen: maxStringBytes},
				{name: "password", kind: kindString, required: true, maxLen: maxStringBytes},
			}},
			out: tokenAnswer{}, errors: []int{http.StatusUnauthorized, http.StatusForbidden},
			serve: (*API).login,
		},
		{
			method: http.MethodGet, path: "/auth/me", tag: "auth", summary: "The signed-in user",
			auth: true, cost: costRead, out: userAnswer{},
			serve: func(a *API, c *call) (any, error) { return newUserAnswer(c.user), nil },
		},
		{
			method: http.MethodPost, path: "/auth/wallet-challenge", tag: "auth", summary: "A challenge for the wallet to sign", added: true,
			doc: "Answers SNIP-12 typed data for the wallet to sign; send its signature to connect-wallet within expires_at. " +
				"A new challenge retires the earlier ones for the address.",
			auth: true, cost: costWrite,
			body: &bodySpec{fields: []field{
				{name: "wallet_address", kind: kindString, required: true, orQuery: true, maxLen: maxStringBytes, doc: "The Starknet account address, in the body or the query."},
			}},
			out:    challengeAnswer{},
			fields: fieldMap{{"address", []any{"body", "wallet_address"}, "wallet_address"}},
			serve:  (*API).walletChallenge,
		},
		{
			method: http.MethodPost, path: "/auth/connect-wallet", tag: "auth", summary: "Link a wallet",
			doc: "Links the wallet whose account contract accepts the signature of the latest challenge (POST /api/v1/auth/wallet-challenge). " +
				"The original took a bare address; this server needs proof that the caller holds the wallet.",
			auth: true, cost: costWrite,
			body: &bodySpec{fields: []field{
				{name: "wallet_address", kind: kindString, required: true, orQuery: true, maxLen: maxStringBytes, doc: "The Starknet account address, in the body or the query."},
				{name: "signature", kind: kindStrings, required: true, maxItems: maxSignatureFelts, added: true,
					doc:     "The felts of the wallet's signature of the challenge.",
					missing: "sign the challenge of POST /api/v1/auth/wallet-challenge with the wallet and send the felts of its signature as signature"},
			}},
			out: messageUserAnswer{}, errors: tokenErrors,
			fields: fieldMap{{"input.address", []any{"body", "wallet_address"}, "wallet_address"},
				{"input.signature", []any{"body", "signature"}, "signature"}, {"signature", []any{"body", "signature"}, "signature"}},
			serve: (*API).connectWallet,
		},
		{
			method: http.MethodPost, path: "/auth/refresh", tag: "auth", summary: "Refresh a session", added: true,
			doc:  "Trades a refresh token for new tokens of the same session. A refresh token works once; presenting it again ends the session.",
			cost: costAuth,
			body: &bodySpec{required: true, fields: []field{{name: "refresh_token", kind: kindString, required: true, maxLen: maxStringBytes}}},
			out:  tokenAnswer{}, errors: []int{http.StatusUnauthorized},
			serve: (*API).refresh,
		},
		{
			method: http.MethodPost, path: "/auth/logout", tag: "auth", summary: "End a session", added: true,
			doc:  "Ends the session of the refresh token. Ending a session that has ended already succeeds.",
			cost: costAuth,
			body: &bodySpec{required: true, fields: []field{{name: "refresh_token", kind: kindString, required: true, maxLen: maxStringBytes}}},
			out:  messageAnswer{}, errors: []int{http.StatusUnauthorized},
			serve: (*API).logout,
		},
		{
			method: http.MethodGet, path: "/users/profile", tag: "users", summary: "The user and their preferences",
			auth: true, cost: costRead, out: profileAnswer{},
			serve: func(a *API, c *call) (any, error) { return newProfileAnswer(c.user), nil },
		},
		{
			method: http.MethodPut, path: "/users/preferences", tag: "users", summary: "Change preferences",
			doc:  "Changes the preferences sent and keeps the others.",
			auth: true, cost: costWrite,
			body: &bodySpec{required: true, fields: []field{
				{name: "risk_tolerance", kind: kindString, maxLen: 16, enum: []string{"low", "medium", "high"}},
				{name: "auto_rebalance_enabled", kind: kindBool},
				{name: "rebalance_threshold", kind: kindNumber, doc: "Percent, 0–100 (rounded to basis points)."},
				{name: "email_alerts_enabled", kind: kindBool},
				{name: "max_single_bps", kind: kindInt, added: true, doc: "The largest weight of one protocol, 1000–10000 bps."},
				{name: "min_diversification", kind: kindInt, added: true, doc: "How many protocols at least hold 10 % or more, 1–10."},
				{name: "max_volatility_bps", kind: kindInt, added: true, doc: "Protocols more volatile than this get nothing."},
				{name: "max_liquidity_tier", kind: kindInt, added: true, doc: "Protocols of a higher (shallower) tier, 0–3, get nothing."},
			}},
			out: messageAnswer{},
			fields: fieldMap{{"riskTolerance", []any{"body", "risk_tolerance"}, "risk_tolerance"},
				{"rebalanceThresholdBps", []any{"body", "rebalance_threshold"}, "rebalance_threshold (in bps)"},
				{"maxSingleBps", []any{"body", "max_single_bps"}, "max_single_bps"},
				{"minDiversification", []any{"body", "min_diversification"}, "min_diversification"},
				{"maxVolatilityBps", []any{"body", "max_volatility_bps"}, "max_volatility_bps"},
				{"maxLiquidityTier", []any{"body", "max_liquidity_tier"}, "max_liquidity_tier"}},
			serve: (*API).updatePreferences,
		},
		{
			method: http.MethodGet, path: "/analytics/risk-history", tag: "analytics", summary: "Risk scores of the protocols",
			doc:  "The protocols' risk scores observed in the last days, newest first: at most 1000 per protocol.",
			auth: true, cost: costHistory, query: []field{protocolParam, daysParam}, out: []riskRow{},
			serve: (*API).riskHistory,
		},
		{
			method: http.MethodGet, path: "/analytics/allocation-history", tag: "analytics", summary: "Your allocations",
			doc:  "Your allocation snapshots of the last days, newest first: at most 1000.",
			auth: true, cost: costHistory, query: []field{daysParam}, out: []allocationRow{},
			serve: (*API).allocationHistory,
		},
		{
			method: http.MethodGet, path: "/analytics/dashboard", tag: "analytics", summary: "Your latest allocation and the risk scores",
			doc:  "Your latest allocation (whatever its age) and every risk score of the last days, by protocol, newest first.",
			auth: true, cost: costHistory, query: []field{daysParam}, out: dashboardAnswer{},
			serve: (*API).dashboard,
		},
		{
			method: http.MethodGet, path: "/predictions/risk-forecast", tag: "predictions", summary: "Risk forecasts",
			doc:  "The latest recorded forecasts of the protocols' risk scores, newest first (at most 10).",
			auth: true, cost: costRead, query: []field{protocolParam}, out: []riskForecastRow{},
			serve: func(a *API, c *call) (any, error) { return a.forecasts(c, true) },
		},
		{
			method: http.MethodGet, path: "/predictions/yield-forecast", tag: "predictions", summary: "Yield forecasts",
			doc:  "The latest recorded forecasts of the protocols' APY (percent), newest first (at most 10).",
			auth: true, cost: costRead, query: []field{protocolParam}, out: []yieldForecastRow{},
			serve: func(a *API, c *call) (any, error) { return a.forecasts(c, false) },
		},
		{
			method: http.MethodGet, path: "/predictions/rebalance-suggestions", tag: "predictions", summary: "Your rebalance suggestions",
			doc: "Your suggestions, newest first (at most 5). The current one is made first, when you hold an allocation " +
				"and none was made for it in the last hour.",
			auth: true, cost: costPlanning, out: []suggestionRow{},
			serve: (*API).suggestions,
		},
		{
			method: http.MethodPost, path: "/predictions/run-optimization", tag: "predictions", summary: "Run an optimisation",
			doc: "Computes your optimal allocation on current data, records it in the decision log and answers it. " +
				"The original only answered \"queued\". 404 while no protocol has the 30 days of history a plan needs.",
			auth: true, cost: costPlanning, out: optimizationAnswer{}, errors: []int{http.StatusNotFound},
			serve: (*API).runOptimization,
		},
		{
			method: http.MethodPost, path: "/transactions/", tag: "transactions", summary: "Log a transaction",
			doc: "Logs a transaction you sent; the server follows it on Starknet until it is final. Logging the same hash again answers the same record; " +
				"a hash another user logged is refused (400).",
			auth: true, cost: costWrite,
			body: &bodySpec{required: true, fields: []field{
				{name: "tx_hash", kind: kindString, required: true, maxLen: 80, doc: "The transaction hash (a felt)."},
				{name: "tx_type", kind: kindString, required: true, maxLen: 16, enum: []string{"deposit", "withdraw", "allocate", "rebalance"}},
				{name: "amount", kind: kindDecimal, doc: "More than 0 (required by this server's ledger), in the token's units; a number or a decimal string."},
				{name: "details", kind: kindObject, doc: "Free-form; details.asset names the token when token is left out."},
				{name: "token", kind: kindString, maxLen: 32, added: true, doc: "The token's symbol, e.g. STRK (default: details.asset)."},
			}},
			out: createdAnswer{}, errors: tokenErrors,
			fields: fieldMap{{"input.txHash", []any{"body", "tx_hash"}, "tx_hash"}, {"input.type", []any{"body", "tx_type"}, "tx_type"},
				{"input.amount", []any{"body", "amount"}, "amount"}, {"input.token", []any{"body", "token"}, "token"},
				{"input.details", []any{"body", "details"}, "details"}},
			serve: (*API).createTransaction,
		},
		{
			method: http.MethodGet, path: "/transactions/", tag: "transactions", summary: "Your transactions",
			doc:  "Your logged transactions, newest first.",
			auth: true, cost: costHistory,
			query: []field{
				{name: "tx_type", kind: kindString, maxLen: 16, enum: []string{"deposit", "withdraw", "allocate", "rebalance"}},
				{name: "status", kind: kindString, maxLen: 32, doc: "A status as the answer gives it (pending, accepted_on_l2, …)."},
				{name: "limit", kind: kindInt, def: int64(50), min: bound(1), max: bound(100)},
			},
			out:   []transactionRow{},
			serve: (*API).transactions,
		},
		{
			method: http.MethodGet, path: "/transactions/{tx_hash}", tag: "transactions", summary: "One of your transactions",
			auth: true, cost: costRead,
			pathParam: &field{name: "tx_hash", kind: kindString, required: true, maxLen: 80},
			out:       transactionAnswer{}, errors: []int{http.StatusNotFound},
			fields: fieldMap{{"hash", []any{"path", "tx_hash"}, "tx_hash"}},
			serve:  (*API).transaction,
		},
	}
}
