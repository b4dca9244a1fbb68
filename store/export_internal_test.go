package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strconv"

	"github.com/obsqra/obsqra"
)

// testHash is the decision hasher of the store's tests. The store only
// threads a hasher through; the keyed one, and the verification of the
// chain, are the decision package's (and tested there).
func testHash(d *obsqra.Decision) string {
	h := sha256.New()
	h.Write([]byte(d.PrevHash + "\n" + strconv.FormatInt(d.ID, 10) + "\n" + string(d.Kind) + "\n" + d.ModelVersion + "\n" +
		d.CreatedAt.UTC().Format("2006-01-02T15:04:05.000000Z") + "\n" + string(d.Inputs) + "\n" + string(d.Output)))
	return hex.EncodeToString(h.Sum(nil))
}

// TestHash is testHash for the tests of package store_test.
var TestHash DecisionHasher = testHash

// RiskParamsVersion returns one version of the risk parameters: nothing
// but the store's tests reads an old version (that a change leaves it as it
// was is the store's guarantee, tested here).
// Errors: ENOTFOUND when there is no such version; otherwise internal ones.
func (db *DB) RiskParamsVersion(ctx context.Context, version int) (*obsqra.RiskParams, error) {
	return riskParamsWhere(ctx, db.conn(), "version = ?", version)
}
