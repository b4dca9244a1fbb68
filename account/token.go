package account

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/obsqra/obsqra"
)

// Token parameters. Access tokens are HS256 JWTs; refresh tokens are opaque.
const (
	// Issuer is the iss claim of every access token.
	Issuer = "obsqra"
	// Audience is the aud claim of every access token.
	Audience = "obsqra-api"
	// TokenType is the type clients put before the access token.
	TokenType = "Bearer"
	// Leeway tolerates clock skew between servers when checking exp and iat.
	Leeway = 30 * time.Second
	// refreshTokenPrefix marks refresh tokens so that logs and support can
	// tell them apart from access tokens at a glance.
	refreshTokenPrefix = "ort_"
)

// accessClaims are the claims of an access token. Every one of them is
// required: sub and sid name the user and the session, jti the token.
type accessClaims struct {
	SessionID string `json:"sid"`
	jwt.RegisteredClaims
}

// Tokens issues and checks access tokens with one HMAC key.
type Tokens struct {
	key []byte
	ttl time.Duration
	// Now is the clock; tests set it.
	Now func() time.Time
	// Rand is the source of token ids; tests may set it.
	Rand   io.Reader
	parser *jwt.Parser
}

// NewTokens returns Tokens signing with key (at least 32 bytes) whose access
// tokens live for ttl.
func NewTokens(key []byte, ttl time.Duration) (*Tokens, error) {
	if len(key) < 32 {
		return nil, fmt.Errorf("token signing key must be at least 32 bytes, got %d", len(key))
	}
	if ttl <= 0 {
		return nil, fmt.Errorf("access token lifetime must be positive, got %s", ttl)
	}
	t := &Tokens{key: append([]byte(nil), key...), ttl: ttl, Now: time.Now, Rand: rand.Reader}
	t.parser = jwt.NewParser(
		// Pinning the method refuses alg "none" and any asymmetric algorithm
		// whose public key could be confused with our secret.
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(Issuer),
		jwt.WithAudience(Audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(Leeway),
		jwt.WithTimeFunc(func() time.Time { return t.Now() }),
	)
	return t, nil
}

// TTL returns the lifetime of access tokens.
func (t *Tokens) TTL() time.Duration { return t.ttl }

// Issue returns a signed access token for the user in the session.
func (t *Tokens) Issue(userID int64, sessionID string) (string, error) {
	jti, err := randomString(t.Rand, 16)
	if err != nil {
		return "", err
	}
	now := t.Now().UTC().Truncate(time.Second)
	claims := accessClaims{
		SessionID: sessionID,
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    Issuer,
			Subject:   strconv.FormatInt(userID, 10),
			Audience:  jwt.ClaimStrings{Audience},
			ExpiresAt: jwt.NewNumericDate(now.Add(t.ttl)),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        jti,
		},
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(t.key)
	if err != nil {
		return "", fmt.Errorf("sign access token: %w", err)
	}
	return s, nil
}

// AccessToken is what a valid access token says.
type AccessToken struct {
	UserID    int64
	SessionID string
	ExpiresAt time.Time // the exp claim
}

// Parse checks an access token's signature and claims and returns what it
// names. Errors are EUNAUTHENTICATED.
func (t *Tokens) Parse(token string) (AccessToken, error) {
	var claims accessClaims
	_, err := t.parser.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) { return t.key, nil })
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return AccessToken{}, obsqra.Errorf(obsqra.EUNAUTHENTICATED, "access token has expired")
	case err != nil:
		return AccessToken{}, obsqra.Errorf(obsqra.EUNAUTHENTICATED, "invalid access token")
	}
	userID, convErr := strconv.ParseInt(claims.Subject, 10, 64)
	if convErr != nil || userID <= 0 || claims.SessionID == "" || claims.ID == "" || claims.IssuedAt == nil || claims.ExpiresAt == nil {
		return AccessToken{}, obsqra.Errorf(obsqra.EUNAUTHENTICATED, "invalid access token")
	}
	return AccessToken{UserID: userID, SessionID: claims.SessionID, ExpiresAt: claims.ExpiresAt.Time}, nil
}

// newRefreshToken returns a fresh opaque refresh token and the hash under
// which it is stored.
func newRefreshToken(r io.Reader) (token, hash string, err error) {
	s, err := randomString(r, 32)
	if err != nil {
		return "", "", err
	}
	token = refreshTokenPrefix + s
	return token, hashRefreshToken(token), nil
}

// hashRefreshToken returns the stored form of a refresh token. A plain
// SHA-256 is enough: the token has 256 bits of entropy, nothing to brute-force.
func hashRefreshToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// looksLikeRefreshToken reports whether s has the shape of a refresh token,
// so that garbage never reaches the database.
func looksLikeRefreshToken(s string) bool {
	rest, ok := strings.CutPrefix(s, refreshTokenPrefix)
	if !ok || len(rest) != base64.RawURLEncoding.EncodedLen(32) {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(rest)
	return err == nil
}

func randomString(r io.Reader, n int) (string, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", fmt.Errorf("read random bytes: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
