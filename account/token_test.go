package account

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/obsqra/obsqra"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

func newTestTokens(t *testing.T, now time.Time) *Tokens {
	t.Helper()
	tok, err := NewTokens(testKey, 30*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	tok.Now = func() time.Time { return now }
	return tok
}

func TestTokensRoundTrip(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	tok := newTestTokens(t, now)
	s, err := tok.Issue(42, "sess")
	if err != nil {
		t.Fatal(err)
	}
	at, err := tok.Parse(s)
	uid, sid := at.UserID, at.SessionID
	if err != nil || uid != 42 || sid != "sess" || !at.ExpiresAt.Equal(now.Add(30*time.Minute)) {
		t.Fatalf("Parse(Issue(42, sess)) = %d, %q, expires %v, %v", uid, sid, at.ExpiresAt, err)
	}
	// Within the leeway after expiry the token still works; after it, not.
	tok.Now = func() time.Time { return now.Add(30*time.Minute + Leeway/2) }
	if _, err := tok.Parse(s); err != nil {
		t.Fatalf("Parse within leeway: %v", err)
	}
	tok.Now = func() time.Time { return now.Add(30*time.Minute + Leeway + time.Second) }
	if _, err := tok.Parse(s); obsqra.ErrorCode(err) != obsqra.EUNAUTHENTICATED || !strings.Contains(obsqra.ErrorMessage(err), "expired") {
		t.Fatalf("Parse(expired) error = %v, want EUNAUTHENTICATED expired", err)
	}
}

// sign makes a token with arbitrary claims and method, as a forger would.
func sign(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestTokensRefuseForgeries(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	tok := newTestTokens(t, now)
	valid := func() jwt.MapClaims {
		return jwt.MapClaims{
			"iss": Issuer, "aud": Audience, "sub": "42", "sid": "sess", "jti": "j",
			"iat": now.Unix(), "exp": now.Add(time.Minute).Unix(),
		}
	}
	without := func(k string) jwt.MapClaims { c := valid(); delete(c, k); return c }
	with := func(k string, v any) jwt.MapClaims { c := valid(); c[k] = v; return c }

	// Sanity: the forger's helper makes acceptable tokens when it has the key.
	if _, err := tok.Parse(sign(t, jwt.SigningMethodHS256, testKey, valid())); err != nil {
		t.Fatalf("Parse(well-formed token) = %v", err)
	}

	header := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
	body := base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"obsqra","aud":"obsqra-api","sub":"42","sid":"sess","jti":"j","exp":9999999999,"iat":1}`))
	refresh, _, _ := newRefreshToken(tok.Rand)
	tests := []struct {
		name  string
		token string
	}{
		{"alg none", header + "." + body + "."},
		{"alg none via library", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, valid())},
		{"HS256 with another key", sign(t, jwt.SigningMethodHS256, []byte("another key another key another!"), valid())},
		{"HS512 with our key", sign(t, jwt.SigningMethodHS512, testKey, valid())},
		{"expired", sign(t, jwt.SigningMethodHS256, testKey, with("exp", now.Add(-time.Hour).Unix()))},
		{"no exp", sign(t, jwt.SigningMethodHS256, testKey, without("exp"))},
		{"no iat", sign(t, jwt.SigningMethodHS256, testKey, without("iat"))},
		{"iat in the future", sign(t, jwt.SigningMethodHS256, testKey, with("iat", now.Add(time.Hour).Unix()))},
		{"no sub", sign(t, jwt.SigningMethodHS256, testKey, without("sub"))},
		{"sub not a number", sign(t, jwt.SigningMethodHS256, testKey, with("sub", "admin"))},
		{"no sid", sign(t, jwt.SigningMethodHS256, testKey, without("sid"))},
		{"no jti", sign(t, jwt.SigningMethodHS256, testKey, without("jti"))},
		{"wrong issuer", sign(t, jwt.SigningMethodHS256, testKey, with("iss", "someone"))},
		{"no issuer", sign(t, jwt.SigningMethodHS256, testKey, without("iss"))},
		{"wrong audience", sign(t, jwt.SigningMethodHS256, testKey, with("aud", "other"))},
		{"no audience", sign(t, jwt.SigningMethodHS256, testKey, without("aud"))},
		{"refresh token as access token", refresh},
		{"empty", ""},
		{"garbage", "a.b.c"},
	}
	for _, tt := range tests {
		if _, err := tok.Parse(tt.token); obsqra.ErrorCode(err) != obsqra.EUNAUTHENTICATED {
			t.Errorf("Parse(%s) error = %v, want EUNAUTHENTICATED", tt.name, err)
		}
	}
}

func TestNewTokensRefusesShortKey(t *testing.T) {
	t.Parallel()
	if _, err := NewTokens([]byte("short"), time.Minute); err == nil {
		t.Fatal("NewTokens(short key) succeeded")
	}
}

func TestRefreshTokenShape(t *testing.T) {
	t.Parallel()
	tok, hash, err := newRefreshToken(newTestTokens(t, time.Now()).Rand)
	if err != nil {
		t.Fatal(err)
	}
	if !looksLikeRefreshToken(tok) || hashRefreshToken(tok) != hash || len(hash) != 64 {
		t.Fatalf("newRefreshToken() = %q, %q", tok, hash)
	}
	for _, bad := range []string{"", "ort_", tok + "x", strings.TrimPrefix(tok, "ort_"), "ort_" + strings.Repeat("!", 43)} {
		if looksLikeRefreshToken(bad) {
			t.Errorf("looksLikeRefreshToken(%q) = true", bad)
		}
	}
}
