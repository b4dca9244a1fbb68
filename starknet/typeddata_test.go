package starknet_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/NethermindEth/starknet.go/typeddata"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/starknet"
)

// A challenge with fixed inputs.
var (
	challengeAddress = "0x0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	challengeNonce   = [16]byte{0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff}
	challengeIssued  = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	challengeExpires = challengeIssued.Add(5 * time.Minute)

	// challengeJSON is the challenge's typed data, byte for byte.
	challengeJSON = `{"types":{` +
		`"StarknetDomain":[{"name":"name","type":"shortstring"},{"name":"version","type":"shortstring"},{"name":"chainId","type":"shortstring"},{"name":"revision","type":"shortstring"}],` +
		`"WalletLink":[{"name":"statement","type":"string"},{"name":"user","type":"felt"},{"name":"nonce","type":"u128"},{"name":"issuedAt","type":"timestamp"},{"name":"expiresAt","type":"timestamp"}]},` +
		`"primaryType":"WalletLink",` +
		`"domain":{"name":"Obsqra","version":"1","chainId":"SN_SEPOLIA","revision":"1"},` +
		`"message":{"statement":"Link this wallet to your Obsqra account","user":"42","nonce":"0x00112233445566778899aabbccddeeff","issuedAt":1767323045,"expiresAt":1767323345}}`
	// challengeHash is its message hash for challengeAddress. starknet.js
	// 7.1.0 (typedData.getMessageHash), what browser wallets build on,
	// gives the same hash for the same JSON and address: checked by hand
	// when this test was written, since no test may reach a registry.
	challengeHash = "0x0563eb1d8fdf336ef36787fea8408027cb434ebadcae27c67bd8d71998a42538"
)

func TestWalletChallenge(t *testing.T) {
	t.Parallel()
	address := mustFelt(t, challengeAddress)
	js, hash, err := starknet.WalletChallenge("SN_SEPOLIA", 42, address, challengeNonce, challengeIssued, challengeExpires)
	if err != nil {
		t.Fatalf("WalletChallenge: %v", err)
	}
	if string(js) != challengeJSON {
		t.Errorf("WalletChallenge JSON =\n%s\nwant\n%s", js, challengeJSON)
	}
	if hash.String() != challengeHash {
		t.Errorf("WalletChallenge hash = %s, want %s", hash, challengeHash)
	}

	// The same inputs give the same bytes and hash, every time.
	js2, hash2, err := starknet.WalletChallenge("SN_SEPOLIA", 42, address, challengeNonce, challengeIssued, challengeExpires)
	if err != nil || string(js2) != string(js) || hash2 != hash {
		t.Errorf("WalletChallenge again = %s, %s, %v; want the same", js2, hash2, err)
	}

	// starknet.go, on its own, finds the same hash in the same JSON.
	var td typeddata.TypedData
	if err := json.Unmarshal(js, &td); err != nil {
		t.Fatalf("typeddata: %v", err)
	}
	want, err := td.GetMessageHash(challengeAddress)
	if err != nil {
		t.Fatalf("GetMessageHash: %v", err)
	}
	if got := hash.String(); got != mustFelt(t, want.String()).String() {
		t.Errorf("hash %s, starknet.go computes %s", got, want)
	}
	if td.Revision.Version() != 1 {
		t.Errorf("revision %d, want 1 (Poseidon)", td.Revision.Version())
	}
}

// The JSON is what a wallet's signTypedData takes: the four members, the
// revision 1 domain, and a message with every member its type names.
func TestWalletChallengeShape(t *testing.T) {
	t.Parallel()
	js, _, err := starknet.WalletChallenge("SN_MAIN", 7, mustFelt(t, "0x1"), challengeNonce, challengeIssued, challengeExpires)
	if err != nil {
		t.Fatalf("WalletChallenge: %v", err)
	}
	var td struct {
		Types       map[string][]struct{ Name, Type string } `json:"types"`
		PrimaryType string                                   `json:"primaryType"`
		Domain      map[string]any                           `json:"domain"`
		Message     map[string]any                           `json:"message"`
	}
	dec := json.NewDecoder(strings.NewReader(string(js)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&td); err != nil {
		t.Fatalf("decode %s: %v", js, err)
	}
	if td.PrimaryType != "WalletLink" || len(td.Types) != 2 || len(td.Types["StarknetDomain"]) != 4 {
		t.Errorf("primaryType %q, types %v", td.PrimaryType, td.Types)
	}
	wantDomain := map[string]any{"name": "Obsqra", "version": "1", "chainId": "SN_MAIN", "revision": "1"}
	if len(td.Domain) != len(wantDomain) {
		t.Errorf("domain %v, want %v", td.Domain, wantDomain)
	}
	for k, v := range wantDomain {
		if td.Domain[k] != v {
			t.Errorf("domain[%s] = %v, want %v", k, td.Domain[k], v)
		}
	}
	members := td.Types["WalletLink"]
	if len(members) != len(td.Message) {
		t.Errorf("WalletLink has %d members, the message %d", len(members), len(td.Message))
	}
	for _, m := range members {
		if _, ok := td.Message[m.Name]; !ok {
			t.Errorf("the message lacks %s", m.Name)
		}
	}
	wantMessage := map[string]any{
		"statement": "Link this wallet to your Obsqra account", "user": "7",
		"nonce": "0x00112233445566778899aabbccddeeff", "issuedAt": 1767323045.0, "expiresAt": 1767323345.0,
	}
	for k, v := range wantMessage {
		if td.Message[k] != v {
			t.Errorf("message[%s] = %v, want %v", k, td.Message[k], v)
		}
	}
}

// Every input is part of what is signed.
func TestWalletChallengeHashCoversEveryInput(t *testing.T) {
	t.Parallel()
	address := mustFelt(t, challengeAddress)
	otherNonce := challengeNonce
	otherNonce[15] ^= 1
	for _, tc := range []struct {
		name    string
		chainID string
		user    int64
		address obsqra.Felt
		nonce   [16]byte
		issued  time.Time
		expires time.Time
	}{
		{"chain", "SN_MAIN", 42, address, challengeNonce, challengeIssued, challengeExpires},
		{"user", "SN_SEPOLIA", 43, address, challengeNonce, challengeIssued, challengeExpires},
		{"address", "SN_SEPOLIA", 42, mustFelt(t, "0x1234"), challengeNonce, challengeIssued, challengeExpires},
		{"nonce", "SN_SEPOLIA", 42, address, otherNonce, challengeIssued, challengeExpires},
		{"issuedAt", "SN_SEPOLIA", 42, address, challengeNonce, challengeIssued.Add(-time.Second), challengeExpires},
		{"expiresAt", "SN_SEPOLIA", 42, address, challengeNonce, challengeIssued, challengeExpires.Add(time.Second)},
	} {
		_, hash, err := starknet.WalletChallenge(tc.chainID, tc.user, tc.address, tc.nonce, tc.issued, tc.expires)
		if err != nil {
			t.Fatalf("%s: WalletChallenge: %v", tc.name, err)
		}
		if hash.String() == challengeHash {
			t.Errorf("another %s gives the same hash", tc.name)
		}
	}
	// The address's spelling does not matter: it is a number.
	_, hash, err := starknet.WalletChallenge("SN_SEPOLIA", 42, mustFelt(t, strings.ToUpper("0x123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")),
		challengeNonce, challengeIssued, challengeExpires)
	if err != nil || hash.String() != challengeHash {
		t.Errorf("WalletChallenge(unpadded address) = %s, %v, want %s", hash, err, challengeHash)
	}
}

func TestWalletChallengeRefusesBadInput(t *testing.T) {
	t.Parallel()
	address := mustFelt(t, "0x1")
	for _, tc := range []struct {
		name    string
		chainID string
		user    int64
		issued  time.Time
		expires time.Time
	}{
		{"no chain id", "", 1, challengeIssued, challengeExpires},
		{"chain id too long", strings.Repeat("X", 32), 1, challengeIssued, challengeExpires},
		{"chain id not ASCII", "SN_É", 1, challengeIssued, challengeExpires},
		{"user 0", "SN_SEPOLIA", 0, challengeIssued, challengeExpires},
		{"negative user", "SN_SEPOLIA", -5, challengeIssued, challengeExpires},
		{"expired at issue", "SN_SEPOLIA", 1, challengeIssued, challengeIssued},
		{"before 1970", "SN_SEPOLIA", 1, time.Unix(-10, 0), time.Unix(10, 0)},
	} {
		js, hash, err := starknet.WalletChallenge(tc.chainID, tc.user, address, challengeNonce, tc.issued, tc.expires)
		if obsqra.ErrorCode(err) != obsqra.EINVALID || js != nil || !hash.IsZero() {
			t.Errorf("%s: WalletChallenge = %s, %s, %v; want an EINVALID error", tc.name, js, hash, err)
		}
	}
}

// MessageHash agrees with starknet.go's own test vector of revision 1
// (example_baseTypes, which starknet.js shares).
func TestMessageHashVector(t *testing.T) {
	t.Parallel()
	js := `{"types": {"StarknetDomain": [{"name": "name", "type": "shortstring"}, {"name": "version", "type": "shortstring"}, {"name": "chainId", "type": "shortstring"}, {"name": "revision", "type": "shortstring"}], "Example": [{"name": "n0", "type": "felt"}, {"name": "n1", "type": "bool"}, {"name": "n2", "type": "string"}, {"name": "n3", "type": "selector"}, {"name": "n4", "type": "u128"}, {"name": "n5", "type": "i128"}, {"name": "n6", "type": "ContractAddress"}, {"name": "n7", "type": "ClassHash"}, {"name": "n8", "type": "timestamp"}, {"name": "n9", "type": "shortstring"}]}, "primaryType": "Example", "domain": {"name": "StarkNet Mail", "version": "1", "chainId": "1", "revision": "1"}, "message": {"n0": "0x3e8", "n1": true, "n2": "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua.", "n3": "transfer", "n4": 10, "n5": -10, "n6": "0x3e8", "n7": "0x3e8", "n8": 1000, "n9": "transfer"}}`
	got, err := starknet.MessageHash([]byte(js), mustFelt(t, "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"))
	if err != nil {
		t.Fatalf("MessageHash: %v", err)
	}
	if want := mustFelt(t, "0xdb7829db8909c0c5496f5952bcfc4fc894341ce01842537fc4f448743480b6"); got != want {
		t.Errorf("MessageHash = %s, want %s", got, want)
	}
	if _, err := starknet.MessageHash([]byte(`{"types":{}}`), mustFelt(t, "0x1")); err == nil {
		t.Errorf("MessageHash(invalid typed data) = nil error")
	}
}
