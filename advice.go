package obsqra

import (
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// PredictionKind is what a prediction forecasts.
type PredictionKind string

// Prediction kinds.
const (
	// PredictionRiskForecast forecasts a protocol's risk score (0–100).
	PredictionRiskForecast PredictionKind = "RISK_FORECAST"
	// PredictionYieldForecast forecasts a protocol's APY in bps.
	PredictionYieldForecast PredictionKind = "YIELD_FORECAST"
	// PredictionRebalanceSuggestion forecasts the APY, in bps, of the
	// target allocation a suggestion (or an optimisation run) proposed.
	PredictionRebalanceSuggestion PredictionKind = "REBALANCE_SUGGESTION"
)

// IsValid reports whether k is a known kind.
func (k PredictionKind) IsValid() bool {
	return k == PredictionRiskForecast || k == PredictionYieldForecast || k == PredictionRebalanceSuggestion
}

// String returns the kind's name.
func (k PredictionKind) String() string { return string(k) }

// MarshalGQL writes the kind as a GraphQL enum value.
func (k PredictionKind) MarshalGQL(w io.Writer) { marshalEnum(w, k) }

// UnmarshalGQL reads the kind from a GraphQL enum value.
func (k *PredictionKind) UnmarshalGQL(v any) error {
	return unmarshalEnum(k, v, PredictionKind.IsValid, "PredictionKind")
}

// Forecast is a forecast of a protocol's daily APY or risk score, made from
// the stored daily history that ends on WindowEnd.
type Forecast struct {
	Kind        PredictionKind
	ProtocolID  int64
	HorizonDays int
	// Target is the day forecast: HorizonDays after the day the forecast
	// was made (today; WindowEnd, the last observed day, may be earlier
	// when the feed is late).
	Target Date
	Point  float64
	// The 80 % and 95 % prediction intervals.
	Lower80, Upper80 float64
	Lower95, Upper95 float64
	// Confidence is the calibrated probability that the value on Target
	// lies within Tolerance of Point.
	Confidence float64
	Tolerance  float64
	// Model is the method that made the point (e.g. "median7");
	// ModelVersion the version of Obsqra's forecasting as a whole.
	Model        string
	ModelVersion string
	// WindowStart and WindowEnd are the first and last days of history used.
	WindowStart, WindowEnd Date
	// Last is the value on WindowEnd: the naive forecast to beat.
	Last float64
	// InputsDigest is the hex SHA-256 of the series and settings the
	// forecast was computed from.
	InputsDigest string
	// Moved reports whether the series forecast moved before the forecast
	// was made: its values on the observed days of the ml.MovedWindow (30)
	// days up to and including the origin are not all equal, the rule of
	// ml.Outcome.Moved. For a yield forecast the series is the APY; for a
	// risk forecast the risk score, the value forecast and judged.
	Moved bool
}

// Prediction is a forecast or a suggestion as the server recorded it, to be
// judged when its target day has passed. Only the outcome (Actual, Error,
// ScoredAt) is ever added to it; nothing else changes. Its JSON form, the
// prediction as recorded without its outcome, is the payload of a
// prediction.created event (see the event catalogue).
type Prediction struct {
	ID   int64          `json:"id"`
	Kind PredictionKind `json:"kind"`
	// ProtocolID is the forecast protocol; 0 for a suggestion.
	ProtocolID int64 `json:"protocolId,omitempty"`
	// UserID is the user a suggestion was made for; 0 for market forecasts.
	UserID      int64 `json:"userId,omitempty"`
	HorizonDays int   `json:"horizonDays"`
	// Origin is the day the prediction was made from (today by the
	// server's clock; WindowEnd may be earlier); Target = Origin +
	// HorizonDays.
	Origin       Date    `json:"origin"`
	Target       Date    `json:"target"`
	Point        float64 `json:"point"`
	Lower80      float64 `json:"lower80"`
	Upper80      float64 `json:"upper80"`
	Lower95      float64 `json:"lower95"`
	Upper95      float64 `json:"upper95"`
	Confidence   float64 `json:"confidence"`
	Tolerance    float64 `json:"tolerance"`
	Last         float64 `json:"last"`
	Model        string  `json:"model"`
	ModelVersion string  `json:"modelVersion"`
	InputsDigest string  `json:"inputsDigest"`
	WindowStart  Date    `json:"windowStart"`
	WindowEnd    Date    `json:"windowEnd"`
	// DecisionID is the decision that recorded a suggestion; 0 for none.
	DecisionID int64 `json:"decisionId,omitempty"`
	// Details holds a suggestion's plan and trades (a JSON object); nil
	// for forecasts.
	Details   JSONObject `json:"details,omitempty"`
	CreatedAt time.Time  `json:"createdAt"`
	// Moved records Forecast.Moved for a forecast: whether its series
	// moved in the 30 days up to and including the origin. nil where
	// nothing was recorded: suggestions, and the predictions made before
	// it was (they never count as moving). Only ModelPerformance reads it;
	// it is not part of the prediction.created payload.
	Moved *bool `json:"-"`

	// Actual is the value observed on Target and Error is Actual − Point;
	// both nil until the outcome job scored the prediction.
	Actual   *float64   `json:"-"`
	Error    *float64   `json:"-"`
	ScoredAt *time.Time `json:"-"`
}

// NodeID returns the prediction's global id.
func (p *Prediction) NodeID() string { return NodeID(NodePrediction, p.ID) }

// PredictionFilter selects predictions. Zero fields select all.
type PredictionFilter struct {
	Kind *PredictionKind
	// Protocol is a protocol's slug.
	Protocol *string
}

// PredictionOutcome is what became of a prediction.
type PredictionOutcome struct {
	PredictionID int64
	Actual       float64
	ScoredAt     time.Time
}

// ModelPerformance summarises the matured predictions of one kind and
// horizon.
type ModelPerformance struct {
	Kind        PredictionKind
	HorizonDays int
	WindowDays  int
	Count       int
	// MAE is the mean absolute error; nil without predictions.
	MAE *float64
	// RelativeMAE is MAE over the naive forecast's (the value at the
	// origin); nil when that is 0 or there are no predictions.
	RelativeMAE *float64
	// Coverage80 and Coverage95 are the shares of actual values inside the
	// 80 % and the 95 % intervals; nil without predictions.
	Coverage80 *float64
	Coverage95 *float64
	// MovingForecasts counts the predictions recorded as made from a
	// series that moved in the 30 days up to and including their origin
	// (Prediction.Moved true; those made before it was recorded never
	// count), as BacktestReport.MovingForecasts does. MovingCoverage80
	// and MovingCoverage95 are the coverage of those alone; nil without
	// any.
	MovingForecasts  int
	MovingCoverage80 *float64
	MovingCoverage95 *float64
	Calibration      []CalibrationBin
}

// CalibrationBin is one row of a calibration table: predictions whose
// confidence fell in [ConfidenceFrom, ConfidenceTo) (the last bin includes
// 1), their mean confidence
// (Predicted) and how often they hit within their tolerance (Observed).
type CalibrationBin struct {
	ConfidenceFrom float64
	ConfidenceTo   float64
	Predicted      float64
	Observed       float64
	Count          int
}

// AllocationReason is why an allocation was made.
type AllocationReason string

// Allocation reasons.
const (
	ReasonUserInitiated AllocationReason = "USER_INITIATED"
	ReasonAutoRebalance AllocationReason = "AUTO_REBALANCE"
	ReasonOptimization  AllocationReason = "OPTIMIZATION"
)

// IsValid reports whether r is a known reason.
func (r AllocationReason) IsValid() bool {
	return r == ReasonUserInitiated || r == ReasonAutoRebalance || r == ReasonOptimization
}

// String returns the reason's name.
func (r AllocationReason) String() string { return string(r) }

// MarshalGQL writes the reason as a GraphQL enum value.
func (r AllocationReason) MarshalGQL(w io.Writer) { marshalEnum(w, r) }

// UnmarshalGQL reads the reason from a GraphQL enum value.
func (r *AllocationReason) UnmarshalGQL(v any) error {
	return unmarshalEnum(r, v, AllocationReason.IsValid, "AllocationReason")
}

// Weight is one protocol's share of an allocation, in bps.
type Weight struct {
	ProtocolID int64 `json:"protocolId"`
	WeightBps  int   `json:"weightBps"`
}

// WeightInput is a weight as a client gives it: a protocol slug.
type WeightInput struct {
	Protocol  string
	WeightBps int
}

// Allocation is a snapshot of how a user holds their portfolio. Snapshots
// are append-only: a new allocation supersedes, never edits, the last. Its
// JSON form is the payload of an allocation.recorded event (see the event
// catalogue).
type Allocation struct {
	ID     int64 `json:"id"`
	UserID int64 `json:"userId"`
	// Weights sum to exactly 10000, ordered by protocol id.
	Weights []Weight         `json:"weights"`
	Reason  AllocationReason `json:"reason"`
	TxHash  *Felt            `json:"txHash,omitempty"`
	// SuggestionID and DecisionID are set when the allocation follows a
	// stored plan (a REBALANCE_SUGGESTION prediction); 0 otherwise.
	SuggestionID int64 `json:"suggestionId,omitempty"`
	DecisionID   int64 `json:"decisionId,omitempty"`
	// PortfolioValueUsd is the value the user gave, or nil.
	PortfolioValueUsd *Decimal `json:"portfolioValueUsd,omitempty"`
	// WalletBlock is the block the weights were read from the user's
	// wallet at (recordAllocation fromWallet); 0 when the user gave them.
	WalletBlock int64     `json:"walletBlock,omitempty"`
	CreatedAt   time.Time `json:"createdAt"`
}

// NodeID returns the allocation's global id.
func (a *Allocation) NodeID() string { return NodeID(NodeAllocation, a.ID) }

// RecordAllocationInput is what recordAllocation takes.
type RecordAllocationInput struct {
	Weights []WeightInput
	Reason  AllocationReason
	TxHash  *Felt
	// SuggestionID is the global id of the suggestion followed, if any.
	SuggestionID *string
	// PortfolioValueUsd is the portfolio's value in USD, if known; later
	// suggestions cost their trades on it.
	PortfolioValueUsd *Decimal
	// FromWallet derives the weights from the linked wallet's positions
	// (WalletPositions) instead of Weights, which must then be empty.
	FromWallet *bool
}

// OptimizeAllocationInput is what optimizeAllocation takes; nil fields take
// the user's preferences (or the defaults for an anonymous what-if).
type OptimizeAllocationInput struct {
	// Protocols are slugs; nil means every enabled protocol.
	Protocols          []string
	RiskTolerance      *RiskTolerance
	MaxSingleBps       *int
	MinDiversification *int
	MaxVolatilityBps   *int
	MaxLiquidityTier   *int
	PortfolioValueUsd  *Decimal
}

// DefaultPortfolioValueUsd is the portfolio value suggestions cost their
// trades on when the user has not given one.
var DefaultPortfolioValueUsd = MustDecimal("10000")

// AllocationPlan is an optimal allocation for a tolerance and limits.
type AllocationPlan struct {
	Weights []Weight `json:"weights"`
	// ExpectedApyBps is Σ weight × forecast APY, rounded to bps.
	ExpectedApyBps int `json:"expectedApyBps"`
	// PortfolioRiskScore is Σ weight × latest risk score / 10000.
	PortfolioRiskScore float64 `json:"portfolioRiskScore"`
	// ConstraintsMet is the contract's constraint check of Weights.
	ConstraintsMet bool `json:"constraintsMet"`
	// ParityWeights is the contract's own (risk-parity) allocation.
	ParityWeights      []Weight      `json:"parityWeights"`
	RiskTolerance      RiskTolerance `json:"riskTolerance"`
	MaxSingleBps       int           `json:"maxSingleBps"`
	MinDiversification int           `json:"minDiversification"`
	// MaxVolatilityBps and MaxLiquidityTier are the limits the plan's
	// protocols were held to (a protocol above either got no weight); nil
	// in plans recorded before they existed.
	MaxVolatilityBps  *int    `json:"maxVolatilityBps,omitempty"`
	MaxLiquidityTier  *int    `json:"maxLiquidityTier,omitempty"`
	PortfolioValueUsd Decimal `json:"portfolioValueUsd"`
	HorizonDays       int     `json:"horizonDays"`
}

// RebalanceTrade is one move of a rebalance.
type RebalanceTrade struct {
	ProtocolID int64 `json:"protocolId"`
	FromBps    int   `json:"fromBps"`
	ToBps      int   `json:"toBps"`
	// AmountUsd is signed: negative withdraws.
	AmountUsd Decimal `json:"amountUsd"`
}

// RebalanceSuggestion is a move from the user's allocation to a plan, with
// its economics. It is stored as a REBALANCE_SUGGESTION prediction of the
// target's APY, so it shares the prediction's id.
type RebalanceSuggestion struct {
	ID     int64 `json:"-"`
	UserID int64 `json:"-"`
	// AllocationID is the allocation it moves from.
	AllocationID int64            `json:"allocationId"`
	Current      []Weight         `json:"current"`
	Target       []Weight         `json:"target"`
	Trades       []RebalanceTrade `json:"trades"`
	// ExpectedImprovementBps is the forecast annual gain net of the cost
	// spread over the horizon, in bps of the portfolio.
	ExpectedImprovementBps float64 `json:"expectedImprovementBps"`
	CostUsd                Decimal `json:"costUsd"`
	// BreakEvenDays is nil when the move never pays for itself.
	BreakEvenDays   *float64 `json:"breakEvenDays"`
	ClearsThreshold bool     `json:"clearsThreshold"`
	ThresholdBps    int      `json:"thresholdBps"`
	// Confidence is the probability that the move pays for itself within
	// the horizon.
	Confidence float64        `json:"confidence"`
	Tolerance  RiskTolerance  `json:"tolerance"`
	Plan       AllocationPlan `json:"plan"`
	DecisionID int64          `json:"-"`
	CreatedAt  time.Time      `json:"-"`
}

// NodeID returns the suggestion's global id.
func (s *RebalanceSuggestion) NodeID() string { return NodeID(NodeRebalanceSuggestion, s.ID) }

// OptimizationRun is a plan computed for a user and recorded as a decision
// and a REBALANCE_SUGGESTION prediction.
type OptimizationRun struct {
	// ID is the id of the prediction that records the run.
	ID         int64
	Plan       AllocationPlan
	CreatedAt  time.Time
	DecisionID int64
	// Suggestion is the move from the user's allocation; nil when the user
	// has none.
	Suggestion *RebalanceSuggestion
}

// NodeID returns the run's global id: of its own type, though it shares
// its number with the prediction that records the run.
func (r *OptimizationRun) NodeID() string { return NodeID(NodeOptimizationRun, r.ID) }

// Dashboard is a user's portfolio at a glance.
type Dashboard struct {
	UserID           int64
	WindowDays       int
	LatestAllocation *Allocation
	// The portfolio figures are nil without an allocation, or when a
	// holding lacks the figure (no data in the window).
	ExpectedApyBps      *int
	PortfolioRiskScore  *float64
	PortfolioRiskChange *float64
	Protocols           []DashboardProtocol
	RealisedApyBps      *int
	PendingSuggestion   *RebalanceSuggestion
}

// NodeID returns the dashboard's global id, one per user and window.
func (d *Dashboard) NodeID() string { return DashboardNodeID(d.UserID, d.WindowDays) }

// DashboardProtocol is one held protocol on a dashboard. Figures are nil
// when the protocol has no data in the window.
type DashboardProtocol struct {
	ProtocolID        int64
	WeightBps         int
	RiskScore         *int
	RiskChange        *int
	ApyBps            *int
	ApyChangeBps      *int
	ApySlopeBpsPerDay *float64
	// ExpectedApyBps is the forecast APY the portfolio figure used.
	ExpectedApyBps *float64
}

// PortfolioRiskPoint is the user's weighted risk score on one day.
type PortfolioRiskPoint struct {
	Date      Date
	RiskScore float64
}

// BacktestReport is a walk-forward evaluation of the forecasts and a run
// of the allocation strategies over the stored daily history.
type BacktestReport struct {
	ProtocolIDs []int64
	HorizonDays int
	WindowDays  int
	From, To    Date
	// Forecasts is how many walk-forward forecasts were scored.
	Forecasts   int
	MAE         *float64
	RelativeMAE *float64
	Coverage80  *float64
	Coverage95  *float64
	// MovingForecasts counts the scored forecasts of series that moved
	// in the ml.MovedWindow (30) days up to and including their origin
	// (ml.Outcome.Moved): a rate that sat still is covered by nearly any
	// interval. MovingCoverage80 and MovingCoverage95 are the coverage of
	// those forecasts alone; nil without any.
	MovingForecasts  int
	MovingCoverage80 *float64
	MovingCoverage95 *float64
	Calibration      []CalibrationBin
	Strategies       []StrategyResult
}

// StrategyResult is what an allocation strategy earned in a backtest.
type StrategyResult struct {
	Strategy         string
	RealisedYieldBps float64
	VolatilityBps    float64
	WorstDrawdownBps float64
	Turnover         float64
	Rebalances       int
	CostBps          float64
}

// Suggestion returns the rebalance suggestion a REBALANCE_SUGGESTION
// prediction records, and false for any other prediction or for a plan made
// while the user held no allocation (there was nothing to move from).
func (p *Prediction) Suggestion() (*RebalanceSuggestion, bool, error) {
	if p.Kind != PredictionRebalanceSuggestion || len(p.Details) == 0 {
		return nil, false, nil
	}
	s := new(RebalanceSuggestion)
	if err := json.Unmarshal(p.Details, s); err != nil {
		return nil, false, fmt.Errorf("decode suggestion %d: %w", p.ID, err)
	}
	s.ID, s.UserID, s.DecisionID, s.CreatedAt = p.ID, p.UserID, p.DecisionID, p.CreatedAt
	return s, s.AllocationID != 0, nil
}
