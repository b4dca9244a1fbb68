package resolvers_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/account"
	"github.com/obsqra/obsqra/market"
	"github.com/obsqra/obsqra/portfolio"
	"github.com/obsqra/obsqra/resolvers"
	"github.com/obsqra/obsqra/server"
	"github.com/obsqra/obsqra/starknet"
	"github.com/obsqra/obsqra/starknet/starknettest"
	"github.com/obsqra/obsqra/store"
	"github.com/obsqra/obsqra/store/storetest"
)

// TestWalletPositionsAPI: admins name protocols' position tokens; a user's
// linked wallet's positions are read at one block for every token, share
// tokens converted to their asset on that block, as exact decimals, and
// kept for the block; a node that lags is asked again, one that fails is
// SERVICE_UNAVAILABLE; no wallet and bad token settings are refused.
func TestWalletPositionsAPI(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		node := starknettest.NewNode(t)
		client, err := starknet.New(starknet.Config{URLs: []string{node.URL}, Network: starknet.NetworkSepolia})
		if err != nil {
			t.Fatal(err)
		}
		node.SetBlockNumber(500)
		tokens, _ := account.NewTokens(testKey, 30*time.Minute)
		accounts, err := account.New(db, account.Config{Tokens: tokens, RefreshTTL: time.Hour, BcryptCost: 4, AdminEmails: []string{"admin@example.com"}, Starknet: client})
		if err != nil {
			t.Fatal(err)
		}
		decisions := newDecisions(t, db, nil)
		markets, err := market.New(db, decisions, market.Config{})
		if err != nil {
			t.Fatal(err)
		}
		folio := portfolio.New(db, portfolio.Config{Chain: client, Lagging: starknet.ErrBlockNotFound})
		schema := resolvers.NewExecutableSchema(&resolvers.Resolver{Accounts: accounts, Market: markets, Decisions: decisions, Portfolio: folio})
		h := server.New(server.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, schema, accounts, db).Handler()
		admin := registerVia(t, h, "admin@example.com").AccessToken
		ada := registerVia(t, h, "ada@example.com").AccessToken
		wallet, key := node.NewAccount(t)

		const positions = `{ walletPositions { wallet blockNumber positions { protocol { slug } token underlying amount } } }`
		if r := do(t, h, ada, positions, nil); r.code() != "BAD_USER_INPUT" || !strings.Contains(r.Errors[0].Message, "linked wallet") {
			t.Fatalf("walletPositions without a wallet = %+v", r.Errors)
		}
		r := do(t, h, ada, `mutation($a: String!) { requestWalletChallenge(address: $a) { typedData } }`, map[string]any{"a": wallet.String()})
		ch := decode[struct{ TypedData json.RawMessage }](t, r.Data["requestWalletChallenge"])
		if r := do(t, h, ada, `mutation($in: ConnectWalletInput!) { connectWallet(input: $in) { walletAddress } }`,
			map[string]any{"in": map[string]any{"address": wallet.String(), "signature": key.SignTypedData(ch.TypedData, wallet)}}); len(r.Errors) > 0 {
			t.Fatalf("connectWallet: %+v", r.Errors)
		}

		usdc, _ := obsqra.ParseAddress("0x53c91253bc9682c04929ca02ed00b3e423f6710d2ee7e0d5ebb06f3ecf368a8")
		aToken, _ := obsqra.ParseAddress("0xa70")
		vault, _ := obsqra.ParseAddress("0x7a1")
		u256 := func(v *big.Int) []obsqra.Felt { l, h := starknet.U256Felts(v); return []obsqra.Felt{l, h} }
		// 1,234.5 USDC (6 decimals) in the aToken; 100 vault shares worth
		// 1.05 USDC each at block 500, 1.10 after.
		node.SetBlockFunction(aToken, "balanceOf", func(_ uint64, cd []obsqra.Felt) ([]obsqra.Felt, error) {
			if cd[0] != wallet {
				return u256(big.NewInt(0)), nil
			}
			return u256(big.NewInt(1_234_500_000)), nil
		})
		node.SetBlockFunction(vault, "balance_of", func(_ uint64, cd []obsqra.Felt) ([]obsqra.Felt, error) {
			return u256(big.NewInt(100_000_000)), nil
		})
		node.SetBlockFunction(vault, "convert_to_assets", func(block uint64, cd []obsqra.Felt) ([]obsqra.Felt, error) {
			shares, _ := starknet.U256(cd[0], cd[1])
			rate := int64(105)
			if block > 500 {
				rate = 110
			}
			return u256(new(big.Int).Div(new(big.Int).Mul(shares, big.NewInt(rate)), big.NewInt(100))), nil
		})
		const upsert = `mutation($in: UpsertProtocolInput!) { upsertProtocol(input: $in) { slug positionToken { address decimals underlying shares entryPoint } } }`
		protocol := func(slug string, token map[string]any) map[string]any {
			return map[string]any{"in": map[string]any{"slug": slug, "name": slug, "category": "LENDING", "auditScore": 80, "launchedOn": "2024-01-01", "positionToken": token}}
		}
		for _, c := range []struct {
			token   map[string]any
			mention string
		}{
			{map[string]any{"address": aToken.String(), "decimals": 19, "underlying": usdc.String()}, "positionToken.decimals"},
			{map[string]any{"address": aToken.String(), "decimals": -1, "underlying": usdc.String()}, "positionToken.decimals"},
			{map[string]any{"address": aToken.String(), "decimals": 6, "underlying": usdc.String(), "entryPoint": "balance"}, "positionToken.entryPoint"},
			{map[string]any{"address": "0x0", "decimals": 6, "underlying": usdc.String()}, "positionToken: address"},
		} {
			if r := do(t, h, admin, upsert, protocol("nostra", c.token)); r.code() != "BAD_USER_INPUT" || !strings.Contains(r.Errors[0].Message, c.mention) {
				t.Errorf("upsertProtocol(%v) = %+v, want BAD_USER_INPUT naming %s", c.token, r.Errors, c.mention)
			}
		}
		// 18 decimals, the most, are taken.
		if r := do(t, h, admin, upsert, protocol("ekubo", map[string]any{"address": aToken.String(), "decimals": 18, "underlying": usdc.String()})); len(r.Errors) > 0 {
			t.Fatalf("upsertProtocol(18 decimals) = %+v", r.Errors)
		}
		r = do(t, h, admin, upsert, protocol("nostra", map[string]any{"address": aToken.String(), "decimals": 6, "underlying": usdc.String()}))
		if len(r.Errors) > 0 || !strings.Contains(string(r.Data["upsertProtocol"]), `"decimals":6`) || !strings.Contains(string(r.Data["upsertProtocol"]), `"entryPoint":"balanceOf"`) {
			t.Fatalf("upsertProtocol(nostra) = %s %+v", r.Data["upsertProtocol"], r.Errors)
		}
		r = do(t, h, admin, upsert, protocol("vesu", map[string]any{"address": vault.String(), "decimals": 6, "underlying": usdc.String(), "shares": true, "entryPoint": "balance_of"}))
		if len(r.Errors) > 0 {
			t.Fatalf("upsertProtocol(vesu) = %+v", r.Errors)
		}
		if r := do(t, h, admin, upsert, protocol("ekubo", nil)); len(r.Errors) > 0 {
			t.Fatalf("upsertProtocol(ekubo, no token) = %+v", r.Errors)
		}

		type result struct {
			Wallet      string
			BlockNumber int
			Positions   []struct {
				Protocol          struct{ Slug string }
				Token, Underlying string
				Amount            string
			}
		}
		read := func(what string) result {
			t.Helper()
			r := do(t, h, ada, positions, nil)
			if len(r.Errors) > 0 {
				t.Fatalf("%s: walletPositions: %+v", what, r.Errors)
			}
			return decode[result](t, r.Data["walletPositions"])
		}
		before := len(node.CallBlocks())
		got := read("at 500")
		amounts := map[string]string{}
		for _, p := range got.Positions {
			amounts[p.Protocol.Slug] = p.Amount
			if p.Underlying != usdc.String() {
				t.Errorf("%s underlying %s", p.Protocol.Slug, p.Underlying)
			}
		}
		if got.Wallet != wallet.String() || got.BlockNumber != 500 || len(got.Positions) != 2 || amounts["nostra"] != "1234.5" || amounts["vesu"] != "105" {
			t.Fatalf("walletPositions = %+v", got)
		}
		blocks := node.CallBlocks()[before:]
		if len(blocks) != 3 {
			t.Fatalf("the node was called %d times (%v), want 3: two balances and one conversion", len(blocks), blocks)
		}
		for _, b := range blocks {
			if b != 500 {
				t.Errorf("a call read block %d, want 500 for every one", b)
			}
		}
		// The same block again: answered from what was read.
		read("at 500 again")
		if n := len(node.CallBlocks()); n != before+3 {
			t.Errorf("asked again at the same block, the node got %d more calls", n-before-3)
		}
		// A new block: read again, the share worth more.
		node.SetBlockNumber(501)
		if got := read("at 501"); got.BlockNumber != 501 || !strings.Contains(strings.Join([]string{got.Positions[0].Amount, got.Positions[1].Amount}, ","), "110") {
			t.Errorf("walletPositions at 501 = %+v", got)
		}
		// A node behind the block for two calls: asked again.
		node.SetBlockNumber(502)
		node.LagNext(2)
		if got := read("lagging"); got.BlockNumber != 502 {
			t.Errorf("walletPositions after a lag = %+v", got)
		}
		// Behind for good: a coded error, not a hang.
		node.SetBlockNumber(503)
		node.LagNext(100)
		if r := do(t, h, ada, positions, nil); r.code() != "SERVICE_UNAVAILABLE" || !strings.Contains(r.Errors[0].Message, "behind block 503") {
			t.Errorf("walletPositions on a node that stays behind = %+v", r.Errors)
		}
		node.LagNext(-100)
		// The node down.
		node.SetBlockNumber(504)
		node.FailNext(3, starknettest.HTTP500) // every try of the client's
		if r := do(t, h, ada, positions, nil); r.code() != "SERVICE_UNAVAILABLE" || strings.Contains(r.Errors[0].Message, "127.0.0.1") {
			t.Errorf("walletPositions with the node down = %+v, want SERVICE_UNAVAILABLE without the node's address", r.Errors)
		}
		if r := do(t, h, "", positions, nil); r.code() != "UNAUTHENTICATED" {
			t.Errorf("walletPositions signed out = %+v", r.Errors)
		}

		// The weights of an allocation, from the wallet: 1,234.5 USDC in
		// nostra and 100 shares worth 1.10 (110 USDC) in vesu, at 505.
		node.SetBlockNumber(505)
		const record = `mutation($in: RecordAllocationInput!) { recordAllocation(input: $in) { weights { protocol { slug } weightBps } walletBlock } }`
		r = do(t, h, ada, record, map[string]any{"in": map[string]any{"fromWallet": true}})
		if got := string(r.Data["recordAllocation"]); len(r.Errors) > 0 ||
			got != `{"weights":[{"protocol":{"slug":"nostra"},"weightBps":9182},{"protocol":{"slug":"vesu"},"weightBps":818}],"walletBlock":505}` {
			t.Fatalf("recordAllocation(fromWallet) = %s %+v", got, r.Errors)
		}
		if r := do(t, h, ada, record, map[string]any{"in": map[string]any{"fromWallet": true, "weights": []map[string]any{{"protocol": "nostra", "weightBps": 10000}}}}); r.code() != "BAD_USER_INPUT" || !strings.Contains(r.Errors[0].Message, "input.weights must be omitted") {
			t.Errorf("recordAllocation(fromWallet and weights) = %+v", r.Errors)
		}
		if r := do(t, h, ada, record, map[string]any{"in": map[string]any{}}); r.code() != "BAD_USER_INPUT" || !strings.Contains(r.Errors[0].Message, "input.weights") {
			t.Errorf("recordAllocation(neither) = %+v", r.Errors)
		}
		// Given weights record no block.
		r = do(t, h, ada, record, map[string]any{"in": map[string]any{"weights": []map[string]any{{"protocol": "nostra", "weightBps": 10000}}}})
		if got := string(r.Data["recordAllocation"]); len(r.Errors) > 0 || !strings.HasSuffix(got, `"walletBlock":null}`) {
			t.Errorf("recordAllocation(weights) = %s %+v", got, r.Errors)
		}
		// vesu's asset changes: the positions no longer add up.
		other, _ := obsqra.ParseAddress("0xe7e")
		if r := do(t, h, admin, upsert, protocol("vesu", map[string]any{"address": vault.String(), "decimals": 6, "underlying": other.String(), "shares": true, "entryPoint": "balance_of"})); len(r.Errors) > 0 {
			t.Fatal(r.Errors)
		}
		if r := do(t, h, ada, record, map[string]any{"in": map[string]any{"fromWallet": true}}); r.code() != "BAD_USER_INPUT" || !strings.Contains(r.Errors[0].Message, "2 different assets") {
			t.Errorf("recordAllocation(fromWallet, two assets) = %+v", r.Errors)
		}
		// Nothing held: refused.
		node.SetBlockFunction(aToken, "balanceOf", func(uint64, []obsqra.Felt) ([]obsqra.Felt, error) { return u256(big.NewInt(0)), nil })
		node.SetBlockFunction(vault, "balance_of", func(uint64, []obsqra.Felt) ([]obsqra.Felt, error) { return u256(big.NewInt(0)), nil })
		node.SetBlockNumber(506)
		if r := do(t, h, ada, record, map[string]any{"in": map[string]any{"fromWallet": true}}); r.code() != "BAD_USER_INPUT" || !strings.Contains(r.Errors[0].Message, "holds no position") {
			t.Errorf("recordAllocation(fromWallet, nothing held) = %+v", r.Errors)
		}
	})
}
