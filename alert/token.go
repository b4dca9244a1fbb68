package alert

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"strconv"

	"github.com/obsqra/obsqra"
)

// tokenPurpose separates the MACs of unsubscribe tokens from anything
// else the server's secret signs.
const tokenPurpose = "alerts-unsubscribe:"

// tokenLen is the length in bytes of a decoded token: the user id (8,
// big-endian) and its HMAC-SHA256.
const tokenLen = 8 + sha256.Size

// Token returns the unsubscribe token of the user userID: the user id and
// its HMAC-SHA256 under the secret, base64url without padding. It does
// not expire (a mail read a year later still unsubscribes), and it does
// nothing but turn the user's alerts off, so a leaked one costs no more
// than alerts the user turns back on.
func (s *Service) Token(userID int64) string {
	b := make([]byte, 8, tokenLen)
	binary.BigEndian.PutUint64(b, uint64(userID))
	return base64.RawURLEncoding.EncodeToString(append(b, s.mac(userID)...))
}

// mac is the HMAC-SHA256 of the user id under the secret.
func (s *Service) mac(userID int64) []byte {
	m := hmac.New(sha256.New, s.cfg.Secret)
	m.Write([]byte(tokenPurpose + strconv.FormatInt(userID, 10)))
	return m.Sum(nil)
}

// userOf returns the user id token was made for.
// Errors: EINVALID when token is not one Token made with this secret.
func (s *Service) userOf(token string) (int64, error) {
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(b) != tokenLen {
		return 0, errBadToken
	}
	id := int64(binary.BigEndian.Uint64(b[:8]))
	if id <= 0 || !hmac.Equal(b[8:], s.mac(id)) {
		return 0, errBadToken
	}
	return id, nil
}

// errBadToken is the error of a token that is not valid, whatever is wrong
// with it, so that a forger learns nothing from it.
var errBadToken = obsqra.Errorf(obsqra.EINVALID, "this unsubscribe link is not valid: copy the whole link from the mail")
