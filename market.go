package obsqra

import (
	"encoding/json"
	"io"
	"time"
)

// ProtocolCategory is what kind of DeFi protocol a protocol is.
type ProtocolCategory string

// Protocol categories.
const (
	CategoryLending     ProtocolCategory = "LENDING"
	CategoryDEX         ProtocolCategory = "DEX"
	CategoryYield       ProtocolCategory = "YIELD"
	CategoryStaking     ProtocolCategory = "STAKING"
	CategoryDerivatives ProtocolCategory = "DERIVATIVES"
	CategoryOther       ProtocolCategory = "OTHER"
)

// IsValid reports whether c is a known category.
func (c ProtocolCategory) IsValid() bool {
	switch c {
	case CategoryLending, CategoryDEX, CategoryYield, CategoryStaking, CategoryDerivatives, CategoryOther:
		return true
	}
	return false
}

// String returns the category's name.
func (c ProtocolCategory) String() string { return string(c) }

// MarshalGQL writes the category as a GraphQL enum value.
func (c ProtocolCategory) MarshalGQL(w io.Writer) { marshalEnum(w, c) }

// UnmarshalGQL reads the category from a GraphQL enum value.
func (c *ProtocolCategory) UnmarshalGQL(v any) error {
	return unmarshalEnum(c, v, ProtocolCategory.IsValid, "ProtocolCategory")
}

// Protocol is a DeFi protocol whose risk and yield Obsqra follows. Protocols
// are data: admins add and change them, and the migrations seed the
// Starknet protocols Obsqra starts with.
type Protocol struct {
	ID   int64
	Slug string // lowercase letters, digits and dashes; unique
	Name string
	// Chain is the network the protocol runs on, e.g. "starknet".
	Chain    string
	Category ProtocolCategory
	// AuditScore is 0–100, the RiskEngine's audit input.
	AuditScore int
	// LaunchedOn is the protocol's launch day; its age derives from it.
	LaunchedOn      Date
	ContractAddress *Felt
	// Enabled protocols are polled, scored and offered in allocations.
	Enabled bool
	// SourceIDs are the identifiers feeds know the protocol by, keyed by
	// source: {"defillama_project": "zklend"} or {"defillama_pool": "<uuid>"}.
	SourceIDs map[string]string
	// PositionToken is the token a supplier of the protocol holds, read
	// from a wallet for its positions; nil when none is named.
	PositionToken *PositionToken
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// PositionToken is the token that stands for a position in a protocol.
type PositionToken struct {
	Address Felt `json:"address"`
	// Decimals are those of the underlying amounts: the token's own for a
	// plain token (an aToken mirrors its asset), the asset's for a share
	// token. 0–18 (MaxDecimalFraction).
	Decimals int `json:"decimals"`
	// Underlying is the asset the position is in (a stablecoin, say):
	// positions of one underlying can be weighed against each other.
	Underlying Felt `json:"underlying"`
	// Shares marks an ERC-4626 share token: its balance converts to the
	// underlying with convertToAssets (convert_to_assets) on the same block.
	Shares bool `json:"shares"`
	// EntryPoint is the balance function's name: balanceOf or balance_of.
	EntryPoint string `json:"entryPoint"`
}

// NodeID returns the protocol's global id.
func (p *Protocol) NodeID() string { return NodeID(NodeProtocol, p.ID) }

// AgeDays returns the protocol's age in whole days at t (0 before launch).
func (p *Protocol) AgeDays(t time.Time) int {
	return max(0, int(DateOf(t)-p.LaunchedOn))
}

// ProtocolInput creates or replaces a protocol, keyed by Slug.
type ProtocolInput struct {
	Slug            string
	Name            string
	Chain           string
	Category        ProtocolCategory
	AuditScore      int
	LaunchedOn      Date
	ContractAddress *Felt
	Enabled         bool
	SourceIDs       map[string]string
	PositionToken   *PositionToken
}

// Metrics sources: where a sample came from.
const (
	SourceSimulated = "simulated"
	SourceDefiLlama = "defillama"
	SourceImport    = "import"
	SourceAdmin     = "admin"
)

// MetricsSample is one observation of a protocol's market: as a feed
// reported it, plus the values the server derived at ingestion. Its JSON
// form is the payload of a metrics.ingested event (see the event
// catalogue); changing a tag changes what the outbox holds.
type MetricsSample struct {
	ID         int64     `json:"id"`
	ProtocolID int64     `json:"protocolId"`
	ObservedAt time.Time `json:"observedAt"`
	// ApyBps is the supply APY in basis points.
	ApyBps int `json:"apyBps"`
	// TvlUsd is the total value locked in USD; nil when the feed does not
	// know it.
	TvlUsd *Decimal `json:"tvlUsd"`
	// UtilizationBps is borrowed ÷ supplied, in basis points (0–10000).
	UtilizationBps int `json:"utilizationBps"`
	// VolatilityBps is the standard deviation of the daily APY over the
	// trailing 30 days, in basis points, derived at ingestion.
	VolatilityBps int `json:"volatilityBps"`
	// LiquidityTier is 0 (deepest) to 3, derived from TvlUsd.
	LiquidityTier int `json:"liquidityTier"`
	// Source is where the sample came from (Source* constants).
	Source string `json:"source"`
	// Stale is set on a protocol's latest sample when its feed has not
	// confirmed it recently (the feed is down or late). It describes the
	// feed now, not the sample as stored, so events do not carry it.
	Stale     bool      `json:"-"`
	CreatedAt time.Time `json:"createdAt"`
}

// NodeID returns the sample's global id.
func (m *MetricsSample) NodeID() string { return NodeID(NodeMetricsSample, m.ID) }

// MetricsInput is one sample as a feed or an admin pushes it.
type MetricsInput struct {
	// Protocol is the protocol's slug.
	Protocol       string
	ObservedAt     time.Time
	ApyBps         int
	TvlUsd         *Decimal
	UtilizationBps int
}

// RiskInputs are the five inputs of the RiskEngine's parity formula, named
// as `obsqra ml score` names them.
type RiskInputs struct {
	Utilization int `json:"utilization"` // bps, 0–10000
	Volatility  int `json:"volatility"`  // bps
	Liquidity   int `json:"liquidity"`   // tier 0–3
	AuditScore  int `json:"auditScore"`  // 0–100
	AgeDays     int `json:"ageDays"`
}

// RiskComponents are the parts a risk score is summed from.
type RiskComponents struct {
	Utilization int `json:"utilization"`
	Volatility  int `json:"volatility"`
	Liquidity   int `json:"liquidity"`
	Audit       int `json:"audit"`
	Age         int `json:"age"`
	// Unclamped is the sum of the five before clamping.
	Unclamped int `json:"unclamped"`
}

// RiskModelVersion names the scoring model: the RiskEngine contract's
// parity formula. It changes only if the formula does.
const RiskModelVersion = "parity-v1"

// RiskScore is a protocol's risk (0–100) as the RiskEngine contract would
// score it, with what it was computed from. Its JSON form is the payload of
// a risk.scored event (see the event catalogue).
type RiskScore struct {
	ID int64 `json:"id"`
	// ProtocolID is 0 for a preview (riskScorePreview: a RiskScore that is
	// not stored, shown without an id as a RiskScorePreview).
	ProtocolID int64 `json:"protocolId"`
	// SampleID is the metrics sample scored; 0 for a preview.
	SampleID int64 `json:"sampleId"`
	// ObservedAt is when the scored sample was observed.
	ObservedAt    time.Time      `json:"observedAt"`
	Score         int            `json:"score"`
	Components    RiskComponents `json:"components"`
	Inputs        RiskInputs     `json:"inputs"`
	ParamsVersion int            `json:"paramsVersion"` // 0 for a preview
	ModelVersion  string         `json:"modelVersion"`
	ComputedAt    time.Time      `json:"computedAt"`
	// DecisionID is the decision that recorded the score; 0 for a preview.
	DecisionID int64 `json:"decisionId"`
}

// NodeID returns the score's global id.
func (s *RiskScore) NodeID() string { return NodeID(NodeRiskScore, s.ID) }

// RiskParams is one version of the risk model's parameters (the
// RiskEngine's ModelParams), and what package ml scores with. Scores keep
// the version they were computed with; a change creates a new version. The
// zero value is not useful: start from DefaultRiskParams or the stored
// version and merge a RiskParamsPatch over it.
type RiskParams struct {
	Version      int
	WUtilization int `json:"wUtilization"`
	WVolatility  int `json:"wVolatility"`
	WLiquidity0  int `json:"wLiquidity0"`
	WLiquidity1  int `json:"wLiquidity1"`
	WLiquidity2  int `json:"wLiquidity2"`
	WLiquidity3  int `json:"wLiquidity3"`
	WAudit       int `json:"wAudit"`
	WAge         int `json:"wAge"`
	AgeCapDays   int `json:"ageCapDays"`
	ClampMin     int `json:"clampMin"`
	ClampMax     int `json:"clampMax"`
	// ChainVersion is the RiskEngine contract's model version these
	// parameters are (its get_model_params), when an admin mapped them to
	// one or adopted them from it; nil otherwise. Decisions scored with
	// them name it.
	ChainVersion *Felt `json:"chainVersion,omitempty"`
	// CreatedBy is the admin who set them; 0 for the seeded defaults.
	CreatedBy int64     `json:"-"`
	CreatedAt time.Time `json:"-"`
}

// DeployedRiskParams is a RiskEngine model version's deployed parameters
// beside a version of ours.
type DeployedRiskParams struct {
	// RiskParams are the deployed values; ChainVersion names the model
	// version (Version and the provenance fields are zero).
	RiskParams
	// Known is false when the contract answered all zeros: it has no such
	// version.
	Known bool
	// Matches reports whether the deployed values are Ours'.
	Matches bool
	Ours    *RiskParams
}

// RiskParamsPatch holds parameters given in part; nil fields keep the
// value they are merged over.
type RiskParamsPatch struct {
	WUtilization *int `json:"wUtilization"`
	WVolatility  *int `json:"wVolatility"`
	WLiquidity0  *int `json:"wLiquidity0"`
	WLiquidity1  *int `json:"wLiquidity1"`
	WLiquidity2  *int `json:"wLiquidity2"`
	WLiquidity3  *int `json:"wLiquidity3"`
	WAudit       *int `json:"wAudit"`
	WAge         *int `json:"wAge"`
	AgeCapDays   *int `json:"ageCapDays"`
	ClampMin     *int `json:"clampMin"`
	ClampMax     *int `json:"clampMax"`
	// ChainVersion maps the new version to the RiskEngine's model version
	// of that felt; FromChainVersion adopts that model version's deployed
	// parameters as the new version (no other field may be given with
	// it). setRiskParams only.
	ChainVersion     *string `json:"-"`
	FromChainVersion *string `json:"-"`
}

// Apply returns p with the fields set in patch replaced (Version and the
// provenance fields are kept).
func (patch RiskParamsPatch) Apply(p RiskParams) RiskParams {
	set := func(dst *int, v *int) {
		if v != nil {
			*dst = *v
		}
	}
	set(&p.WUtilization, patch.WUtilization)
	set(&p.WVolatility, patch.WVolatility)
	set(&p.WLiquidity0, patch.WLiquidity0)
	set(&p.WLiquidity1, patch.WLiquidity1)
	set(&p.WLiquidity2, patch.WLiquidity2)
	set(&p.WLiquidity3, patch.WLiquidity3)
	set(&p.WAudit, patch.WAudit)
	set(&p.WAge, patch.WAge)
	set(&p.AgeCapDays, patch.AgeCapDays)
	set(&p.ClampMin, patch.ClampMin)
	set(&p.ClampMax, patch.ClampMax)
	return p
}

// DefaultRiskParams returns the RiskEngine contract's default ModelParams
// (25, 40, 0, 5, 15, 30, 3, 10, 730, 5, 95), with no version.
func DefaultRiskParams() RiskParams {
	return RiskParams{
		WUtilization: 25,
		WVolatility:  40,
		WLiquidity0:  0,
		WLiquidity1:  5,
		WLiquidity2:  15,
		WLiquidity3:  30,
		WAudit:       3,
		WAge:         10,
		AgeCapDays:   730,
		ClampMin:     5,
		ClampMax:     95,
	}
}

// MaxRiskParam bounds every weight the RiskEngine's formula accepts, so
// that no product of its 64-bit arithmetic can overflow (the largest factor
// is a volatility of 1,000,000 bps).
const MaxRiskParam = 1_000_000_000

// Validate returns an EINVALID error naming the first parameter out of
// the formula's range: weights are non-negative (and at most MaxRiskParam),
// AgeCapDays > 0, and 0 ≤ ClampMin ≤ ClampMax ≤ 100.
func (p RiskParams) Validate() error {
	fields := []struct {
		name string
		v    int
	}{
		{"wUtilization", p.WUtilization},
		{"wVolatility", p.WVolatility},
		{"wLiquidity0", p.WLiquidity0},
		{"wLiquidity1", p.WLiquidity1},
		{"wLiquidity2", p.WLiquidity2},
		{"wLiquidity3", p.WLiquidity3},
		{"wAudit", p.WAudit},
		{"wAge", p.WAge},
		{"ageCapDays", p.AgeCapDays},
		{"clampMin", p.ClampMin},
		{"clampMax", p.ClampMax},
	}
	for _, f := range fields {
		if f.v < 0 || f.v > MaxRiskParam {
			return Errorf(EINVALID, "%s must be between 0 and %d, got %d", f.name, MaxRiskParam, f.v)
		}
	}
	if p.AgeCapDays == 0 {
		return Errorf(EINVALID, "ageCapDays must be greater than 0")
	}
	if p.ClampMax > 100 {
		return Errorf(EINVALID, "clampMax must be at most 100, got %d", p.ClampMax)
	}
	if p.ClampMin > p.ClampMax {
		return Errorf(EINVALID, "clampMin (%d) must not exceed clampMax (%d)", p.ClampMin, p.ClampMax)
	}
	return nil
}

// DecisionKind is what a decision decided.
type DecisionKind string

// Decision kinds.
const (
	DecisionRiskScore DecisionKind = "RISK_SCORE"
	// DecisionOptimization records an allocation plan computed for a user
	// and the rebalance from their allocation to it.
	DecisionOptimization DecisionKind = "OPTIMIZATION"
)

// String returns the kind's name.
func (k DecisionKind) String() string { return string(k) }

// MarshalGQL writes the kind as a GraphQL enum value.
func (k DecisionKind) MarshalGQL(w io.Writer) { marshalEnum(w, k) }

// UnmarshalGQL reads the kind from a GraphQL enum value.
func (k *DecisionKind) UnmarshalGQL(v any) error {
	return unmarshalEnum(k, v, DecisionKind.IsValid, "DecisionKind")
}

// IsValid reports whether k is a known kind.
func (k DecisionKind) IsValid() bool { return k == DecisionRiskScore || k == DecisionOptimization }

// Decision is one entry of the decision log: what the server decided, from
// which inputs, with which model. Entries are append-only and hash-chained:
// Hash covers the entry's content and PrevHash, the previous entry's Hash,
// so a changed or removed entry breaks every hash after it.
type Decision struct {
	ID           int64
	Kind         DecisionKind
	Inputs       JSONObject
	Output       JSONObject
	ModelVersion string
	CreatedAt    time.Time
	// PrevHash and Hash are hex SHA-256 digests; the first entry's PrevHash
	// is 64 zeros.
	PrevHash string
	Hash     string
}

// NodeID returns the decision's global id.
func (d *Decision) NodeID() string { return NodeID(NodeDecision, d.ID) }

// GenesisHash is the PrevHash of the first decision.
const GenesisHash = "0000000000000000000000000000000000000000000000000000000000000000"

// DecisionVerification is the result of recomputing a decision from its
// recorded inputs and checking the chain up to it.
type DecisionVerification struct {
	Decision *Decision
	// Recomputed is the output the model gives now for the recorded inputs.
	Recomputed JSONObject
	// Matches reports whether Recomputed equals the recorded output.
	Matches bool
	// ChainValid reports whether every entry up to and including this one
	// hashes to its recorded Hash and links to its predecessor.
	ChainValid bool
	// BrokenAt is the first entry whose hash or link does not check, or 0.
	BrokenAt int64
	// OnChainScore is the score the deployed RiskEngine gives the recorded
	// inputs of a risk score decision, and MatchesOnChain whether it is the
	// recorded score; both nil when no RiskEngine is configured, for other
	// decisions, or when asking it failed (OnChainErr says why).
	OnChainScore   *int
	MatchesOnChain *bool
	OnChainErr     error
	// ConstraintsSigned reports whether an allocation plan obeyed a
	// constraint set the user's wallet signed; SignatureValid whether that
	// set's signature verifies now (nil when unsigned, or with no node to
	// ask); ConstraintsMet whether the recorded plan meets the limits it
	// recorded, the signed ones included (nil for other decisions).
	ConstraintsSigned bool
	SignatureValid    *bool
	ConstraintsMet    *bool
	// SignatureErr is why SignatureValid is nil for a signed plan when the
	// node could not be asked: that field's error, not the verification's.
	SignatureErr error
}

// RiskScoreDecision is the recorded form of a risk score decision: its
// inputs, enough to recompute it.
type RiskScoreDecision struct {
	Protocol      string     `json:"protocol"`
	SampleID      int64      `json:"sampleId"`
	ObservedAt    time.Time  `json:"observedAt"`
	Inputs        RiskInputs `json:"inputs"`
	ParamsVersion int        `json:"paramsVersion"`
	Params        RiskParams `json:"params"`
}

// RiskScoreOutcome is the recorded output of a risk score decision.
type RiskScoreOutcome struct {
	Score      int            `json:"score"`
	Components RiskComponents `json:"components"`
}

// EncodeDecision returns v as the compact JSON object a decision records.
func EncodeDecision(v any) (JSONObject, error) {
	b, err := json.Marshal(v)
	return JSONObject(b), err
}

// Recomputed returns out, a decision's output computed again from its
// recorded inputs, encoded as the log records outputs, and whether it is
// d's recorded output to the byte: what verifying d comes down to.
func (d *Decision) Recomputed(out any) (JSONObject, bool) {
	b, err := EncodeDecision(out)
	if err != nil {
		return nil, false
	}
	return b, string(b) == string(d.Output)
}

// DailyPoint is a protocol's last sample of one UTC day.
type DailyPoint struct {
	Day            Date
	ObservedAt     time.Time
	SampleID       int64
	ApyBps         int
	UtilizationBps int
	VolatilityBps  int
	TvlUsd         *Decimal
	// RiskScore and LiquidityTier are the score of the day's sample and the
	// liquidity tier it was scored with; nil when the sample is not scored.
	RiskScore     *int
	LiquidityTier *int
}
