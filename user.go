package obsqra

import (
	"io"
	"time"
)

// Role is what a user may do beyond their own data.
type Role string

// Roles.
const (
	RoleUser  Role = "USER"
	RoleAdmin Role = "ADMIN"
)

// IsValid reports whether r is a known role.
func (r Role) IsValid() bool { return r == RoleUser || r == RoleAdmin }

// String returns the role's name.
func (r Role) String() string { return string(r) }

// MarshalGQL writes the role as a GraphQL enum value.
func (r Role) MarshalGQL(w io.Writer) { marshalEnum(w, r) }

// UnmarshalGQL reads the role from a GraphQL enum value.
func (r *Role) UnmarshalGQL(v any) error {
	return unmarshalEnum(r, v, Role.IsValid, "Role")
}

// RiskTolerance is how much protocol risk a user accepts in an allocation.
type RiskTolerance string

// Risk tolerances.
const (
	RiskLow    RiskTolerance = "LOW"
	RiskMedium RiskTolerance = "MEDIUM"
	RiskHigh   RiskTolerance = "HIGH"
)

// IsValid reports whether t is a known tolerance.
func (t RiskTolerance) IsValid() bool {
	return t == RiskLow || t == RiskMedium || t == RiskHigh
}

// String returns the tolerance's name.
func (t RiskTolerance) String() string { return string(t) }

// MarshalGQL writes the tolerance as a GraphQL enum value.
func (t RiskTolerance) MarshalGQL(w io.Writer) { marshalEnum(w, t) }

// UnmarshalGQL reads the tolerance from a GraphQL enum value.
func (t *RiskTolerance) UnmarshalGQL(v any) error {
	return unmarshalEnum(t, v, RiskTolerance.IsValid, "RiskTolerance")
}

// User is an account. PasswordHash never leaves the server.
type User struct {
	ID            int64
	Email         string
	FullName      string
	PasswordHash  string
	WalletAddress *Felt
	EmailVerified bool
	Role          Role
	Active        bool
	CreatedAt     time.Time
	UpdatedAt     time.Time
	Preferences   Preferences
}

// IsAdmin reports whether u may use administrative operations.
func (u *User) IsAdmin() bool { return u != nil && u.Role == RoleAdmin }

// Preferences are a user's settings for allocation and alerts.
type Preferences struct {
	RiskTolerance         RiskTolerance
	AutoRebalance         bool
	RebalanceThresholdBps int
	MaxSingleBps          int
	MinDiversification    int
	// MaxVolatilityBps excludes from allocations every protocol whose
	// volatility (the risk score's, in bps) is above it; MaxVolatility,
	// the default, excludes none.
	MaxVolatilityBps int
	// MaxLiquidityTier excludes every protocol whose liquidity tier (0,
	// deepest, to 3) is above it; MaxLiquidityTier, the default, excludes
	// none.
	MaxLiquidityTier int
	EmailAlerts      bool
}

// Default preference values, also used for anonymous what-if requests.
const (
	DefaultRebalanceThresholdBps = 500
	DefaultMaxSingleBps          = 6000
	DefaultMinDiversification    = 2
	// MaxDiversification bounds MinDiversification: only weights of at least
	// 1000 bps count, and at most ten of those fit in 10000 bps.
	MaxDiversification = 10
	// MaxVolatility is the largest volatility a risk score takes, in bps:
	// MaxVolatilityBps at this value excludes no protocol.
	MaxVolatility = 1_000_000
	// MaxLiquidityTier is the shallowest liquidity tier: MaxLiquidityTier
	// at this value excludes no protocol.
	MaxLiquidityTier = 3
)

// DefaultPreferences returns the preferences of a new user.
func DefaultPreferences() Preferences {
	return Preferences{
		RiskTolerance:         RiskMedium,
		AutoRebalance:         false,
		RebalanceThresholdBps: DefaultRebalanceThresholdBps,
		MaxSingleBps:          DefaultMaxSingleBps,
		MinDiversification:    DefaultMinDiversification,
		MaxVolatilityBps:      MaxVolatility,
		MaxLiquidityTier:      MaxLiquidityTier,
		EmailAlerts:           true,
	}
}

// Validate returns an EINVALID error naming the first field out of range.
// A weight counts toward diversification at 1000 bps or more, so at most 10
// protocols can count, and a maximum single weight under 1000 bps could never
// let any protocol count.
func (p Preferences) Validate() error {
	switch {
	case !p.RiskTolerance.IsValid():
		return Errorf(EINVALID, "riskTolerance must be LOW, MEDIUM or HIGH")
	case p.RebalanceThresholdBps < 0 || p.RebalanceThresholdBps > 10000:
		return Errorf(EINVALID, "rebalanceThresholdBps must be between 0 and 10000 basis points, got %d", p.RebalanceThresholdBps)
	}
	return p.Limits().Validate("")
}

// Limits returns the four allocation limits of p, which a wallet may sign
// as a ConstraintSet.
func (p Preferences) Limits() ConstraintSet {
	return ConstraintSet{MaxSingleBps: p.MaxSingleBps, MinDiversification: p.MinDiversification,
		MaxVolatilityBps: p.MaxVolatilityBps, MaxLiquidityTier: p.MaxLiquidityTier}
}

// PreferencesPatch holds the preferences a request changes; nil fields stay.
type PreferencesPatch struct {
	RiskTolerance         *RiskTolerance
	AutoRebalance         *bool
	RebalanceThresholdBps *int
	MaxSingleBps          *int
	MinDiversification    *int
	MaxVolatilityBps      *int
	MaxLiquidityTier      *int
	EmailAlerts           *bool
}

// Apply returns p with the patch's set fields changed.
func (patch PreferencesPatch) Apply(p Preferences) Preferences {
	if patch.RiskTolerance != nil {
		p.RiskTolerance = *patch.RiskTolerance
	}
	if patch.AutoRebalance != nil {
		p.AutoRebalance = *patch.AutoRebalance
	}
	if patch.RebalanceThresholdBps != nil {
		p.RebalanceThresholdBps = *patch.RebalanceThresholdBps
	}
	if patch.MaxSingleBps != nil {
		p.MaxSingleBps = *patch.MaxSingleBps
	}
	if patch.MinDiversification != nil {
		p.MinDiversification = *patch.MinDiversification
	}
	if patch.MaxVolatilityBps != nil {
		p.MaxVolatilityBps = *patch.MaxVolatilityBps
	}
	if patch.MaxLiquidityTier != nil {
		p.MaxLiquidityTier = *patch.MaxLiquidityTier
	}
	if patch.EmailAlerts != nil {
		p.EmailAlerts = *patch.EmailAlerts
	}
	return p
}

// NodeID returns the user's global id.
func (u *User) NodeID() string { return NodeID(NodeUser, u.ID) }

// UserFilter selects users, for an admin looking for an account (the
// users query); nil fields select all.
type UserFilter struct {
	// EmailPrefix selects the emails that start with it, in any case. Every
	// character matches itself: % and _ are not wildcards.
	EmailPrefix *string
	Role        *Role
	Active      *bool
	// EmailVerified selects users by whether they verified their email.
	EmailVerified *bool
}

// Registration is what registering answers: the new session's tokens, or
// none when the address must be verified before signing in.
type Registration struct {
	// Auth is the new session, nil when the address must be verified
	// first.
	Auth *AuthPayload
}

// SignedIn reports whether r holds the new session's tokens.
func (r *Registration) SignedIn() bool { return r.Auth != nil }

// AuthPayload is the result of signing in or refreshing a session.
type AuthPayload struct {
	AccessToken  string
	RefreshToken string
	TokenType    string
	// ExpiresIn is the access token's lifetime in seconds.
	ExpiresIn int
	User      *User
}

// FailedMail is a mail the sender gave up on (refused for good, or out of
// attempts), as admins see it.
type FailedMail struct {
	ID        int64
	Kind      string
	Recipient string
	Subject   string
	Attempts  int
	CreatedAt time.Time
	FailedAt  time.Time
	// LastError is the SMTP server's (or the connection's) last answer.
	LastError string
}
