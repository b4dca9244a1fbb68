package starknet_test

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/starknet"
)

// TestConstraintApproval: the typed data names the four limits, the user
// and the nonce as a wallet shows them, the same arguments give the same
// bytes and hash, any change of a limit changes the hash, and bad
// arguments are refused.
func TestConstraintApproval(t *testing.T) {
	t.Parallel()
	addr, _ := obsqra.ParseAddress("0x4a3")
	set := obsqra.ConstraintSet{MaxSingleBps: 5000, MinDiversification: 2, MaxVolatilityBps: 800, MaxLiquidityTier: 1}
	nonce := [16]byte{1, 2, 3}
	at := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	td, hash, err := starknet.ConstraintApproval("SN_SEPOLIA", 42, addr, set, nonce, at, at.Add(10*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	var parsed struct {
		PrimaryType string
		Domain      map[string]string
		Message     map[string]any
	}
	if err := json.Unmarshal(td, &parsed); err != nil {
		t.Fatal(err)
	}
	m := parsed.Message
	if parsed.PrimaryType != "ConstraintApproval" || parsed.Domain["revision"] != "1" || parsed.Domain["chainId"] != "SN_SEPOLIA" ||
		m["user"] != "42" || m["maxSingleBps"] != "5000" || m["minDiversification"] != "2" || m["maxVolatilityBps"] != "800" ||
		m["maxLiquidityTier"] != "1" || m["nonce"] != "0x01020300000000000000000000000000" || m["statement"] != starknet.ConstraintApprovalStatement {
		t.Fatalf("typed data %s", td)
	}
	if h, err := starknet.MessageHash(td, addr); err != nil || h != hash {
		t.Errorf("hash %s, MessageHash of the bytes %s (%v)", hash, h, err)
	}
	td2, hash2, _ := starknet.ConstraintApproval("SN_SEPOLIA", 42, addr, set, nonce, at, at.Add(10*time.Minute))
	if !bytes.Equal(td, td2) || hash != hash2 {
		t.Error("the same arguments gave other bytes or another hash")
	}
	for _, other := range []obsqra.ConstraintSet{
		{MaxSingleBps: 5001, MinDiversification: 2, MaxVolatilityBps: 800, MaxLiquidityTier: 1},
		{MaxSingleBps: 5000, MinDiversification: 3, MaxVolatilityBps: 800, MaxLiquidityTier: 1},
		{MaxSingleBps: 5000, MinDiversification: 2, MaxVolatilityBps: 801, MaxLiquidityTier: 1},
		{MaxSingleBps: 5000, MinDiversification: 2, MaxVolatilityBps: 800, MaxLiquidityTier: 2},
	} {
		if _, h, err := starknet.ConstraintApproval("SN_SEPOLIA", 42, addr, other, nonce, at, at.Add(10*time.Minute)); err != nil || h == hash {
			t.Errorf("%s: hash %s (%v), want another than %s", other, h, err, hash)
		}
	}
	for name, call := range map[string]func() error{
		"no chain": func() error {
			_, _, err := starknet.ConstraintApproval("", 42, addr, set, nonce, at, at.Add(time.Minute))
			return err
		},
		"user 0": func() error {
			_, _, err := starknet.ConstraintApproval("SN_SEPOLIA", 0, addr, set, nonce, at, at.Add(time.Minute))
			return err
		},
		"expiry at issue": func() error {
			_, _, err := starknet.ConstraintApproval("SN_SEPOLIA", 42, addr, set, nonce, at, at)
			return err
		},
		"negative limit": func() error {
			bad := set
			bad.MaxVolatilityBps = -1
			_, _, err := starknet.ConstraintApproval("SN_SEPOLIA", 42, addr, bad, nonce, at, at.Add(time.Minute))
			return err
		},
	} {
		if err := call(); obsqra.ErrorCode(err) != obsqra.EINVALID {
			t.Errorf("%s: %v, want EINVALID", name, err)
		}
	}
}
