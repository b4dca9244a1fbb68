package obsqra

import "time"

// Session is one signed-in device: a family of refresh tokens, each issued
// in exchange for the one before. The access tokens of a session stop
// working the moment it is revoked.
type Session struct {
	// ID is a random opaque string; access tokens carry it as the sid claim.
	ID        string
	UserID    int64
	CreatedAt time.Time
	// ExpiresAt bounds the whole family: no refresh token of it outlives it.
	ExpiresAt time.Time
	// RevokedAt is set once, when the session ends; nil while it is live.
	RevokedAt *time.Time
	// RevokeReason says why: "logout", "reuse", "password_changed",
	// "deactivated".
	RevokeReason string
}

// Revoked reports whether the session has ended.
func (s *Session) Revoked() bool { return s.RevokedAt != nil }

// Reasons a session is revoked.
const (
	RevokeLogout          = "logout"
	RevokeReuse           = "reuse"
	RevokePasswordChanged = "password_changed"
	RevokeDeactivated     = "deactivated"
)

// RefreshToken is a stored refresh token. The token itself is never stored,
// only its SHA-256 hash (hex), so a copy of the database cannot sign anyone in.
type RefreshToken struct {
	Hash      string
	SessionID string
	CreatedAt time.Time
	ExpiresAt time.Time
	// UsedAt is set when the token is exchanged; a second exchange is a
	// replay and revokes the session.
	UsedAt *time.Time
}
