package resolvers_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/account"
	"github.com/obsqra/obsqra/market"
	"github.com/obsqra/obsqra/resolvers"
	"github.com/obsqra/obsqra/server"
	"github.com/obsqra/obsqra/starknet"
	"github.com/obsqra/obsqra/starknet/starknettest"
	"github.com/obsqra/obsqra/store"
	"github.com/obsqra/obsqra/store/storetest"
)

// TestDeployedRiskParamsAPI: with a RiskEngine configured, admins read a
// model version's deployed parameters beside ours, adopt one as a new
// version whose scores name it, and map a version of ours to one; the
// mismatch check reports what differs; others, bad versions, an unknown
// version and a node that does not answer get their own errors.
func TestDeployedRiskParamsAPI(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		node := starknettest.NewNode(t)
		client, err := starknet.New(starknet.Config{URLs: []string{node.URL}, Network: starknet.NetworkSepolia})
		if err != nil {
			t.Fatal(err)
		}
		engineAddr, _ := obsqra.ParseAddress("0xe1")
		felts := func(vs ...int) []obsqra.Felt {
			out := make([]obsqra.Felt, len(vs))
			for i, v := range vs {
				big.NewInt(int64(v)).FillBytes(out[i][:])
			}
			return out
		}
		d := obsqra.DefaultRiskParams()
		node.SetFunction(engineAddr, "get_model_params", func(calldata []obsqra.Felt) ([]obsqra.Felt, error) {
			switch calldata[0] {
			case obsqra.FeltFromUint64(1): // the contract's defaults, ours too
				return felts(d.WUtilization, d.WVolatility, d.WLiquidity0, d.WLiquidity1, d.WLiquidity2, d.WLiquidity3, d.WAudit, d.WAge, d.AgeCapDays, d.ClampMin, d.ClampMax), nil
			case obsqra.FeltFromUint64(2):
				return felts(30, 35, 0, 5, 15, 30, 3, 10, 730, 5, 95), nil
			}
			return felts(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), nil
		})
		tokens, _ := account.NewTokens(testKey, 30*time.Minute)
		accounts, err := account.New(db, account.Config{Tokens: tokens, RefreshTTL: time.Hour, BcryptCost: 4, AdminEmails: []string{"admin@example.com"}})
		if err != nil {
			t.Fatal(err)
		}
		decisions := newDecisions(t, db, nil)
		var logged syncBuffer
		markets, err := market.New(db, decisions, market.Config{Engine: starknet.RiskEngine{Client: client, Address: engineAddr},
			Logger: slog.New(slog.NewTextHandler(&logged, nil))})
		if err != nil {
			t.Fatal(err)
		}
		schema := resolvers.NewExecutableSchema(&resolvers.Resolver{Accounts: accounts, Market: markets, Decisions: decisions})
		h := server.New(server.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, schema, accounts, db).Handler()
		admin := registerVia(t, h, "admin@example.com").AccessToken
		user := registerVia(t, h, "user@example.com").AccessToken

		const deployed = `query($v: String) { riskParams { version chainVersion deployed(chainVersion: $v) { chainVersion known matches ourVersion wUtilization clampMax } } }`
		one := obsqra.FeltFromUint64(1).String()
		r := do(t, h, admin, deployed, map[string]any{"v": "0x1"})
		if got := string(r.Data["riskParams"]); len(r.Errors) > 0 || got != `{"version":1,"chainVersion":null,"deployed":{"chainVersion":"`+one+`","known":true,"matches":true,"ourVersion":1,"wUtilization":25,"clampMax":95}}` {
			t.Fatalf("deployed(0x1) = %s %+v", got, r.Errors)
		}
		r = do(t, h, admin, deployed, map[string]any{"v": "0x9"})
		if !strings.Contains(string(r.Data["riskParams"]), `"known":false,"matches":false`) {
			t.Errorf("deployed(0x9) = %s %+v", r.Data["riskParams"], r.Errors)
		}
		for _, c := range []struct {
			token, v, code, mention string
		}{
			{user, "0x1", "FORBIDDEN", ""},
			{"", "0x1", "UNAUTHENTICATED", ""},
			{admin, "0xzz", "BAD_USER_INPUT", "chainVersion"},
		} {
			r := do(t, h, c.token, deployed, map[string]any{"v": c.v})
			if r.code() != c.code || !strings.Contains(r.Errors[0].Message, c.mention) {
				t.Errorf("deployed(%s) as %q = %+v, want %s", c.v, c.token, r.Errors, c.code)
			}
		}
		if r := do(t, h, admin, `{ riskParams { deployed { known } } }`, nil); r.code() != "BAD_USER_INPUT" || !strings.Contains(r.Errors[0].Message, "mapped to no chain model version") {
			t.Errorf("deployed() unmapped = %+v", r.Errors)
		}

		// Adopt model version 2: a new version with its values, naming it.
		const set = `mutation($in: RiskParamsInput!) { setRiskParams(input: $in) { version chainVersion wUtilization wVolatility } }`
		two := obsqra.FeltFromUint64(2).String()
		r = do(t, h, admin, set, map[string]any{"in": map[string]any{"fromChainVersion": "0x2"}})
		if got := string(r.Data["setRiskParams"]); len(r.Errors) > 0 || got != `{"version":2,"chainVersion":"`+two+`","wUtilization":30,"wVolatility":35}` {
			t.Fatalf("setRiskParams(fromChainVersion 0x2) = %s %+v", got, r.Errors)
		}
		if ok, err := markets.CheckDeployedParams(context.Background()); !ok || err != nil {
			t.Errorf("CheckDeployedParams after adopting = %v, %v", ok, err)
		}
		// A score made now names the chain version in its decision.
		got, err := markets.Ingest(context.Background(), obsqra.SourceImport, []obsqra.MetricsInput{{
			Protocol: "zklend", ObservedAt: time.Now().UTC().Add(-time.Hour), ApyBps: 420, UtilizationBps: 7300}})
		if err != nil {
			t.Fatal(err)
		}
		dec, err := db.Decision(context.Background(), got[0].Risk.DecisionID)
		if err != nil || !strings.Contains(string(dec.Inputs), `"chainVersion":"`+two+`"`) {
			t.Errorf("risk score decision inputs %s (%v) do not name the chain version", dec.Inputs, err)
		}
		for _, c := range []struct {
			in      map[string]any
			mention string
		}{
			{map[string]any{"fromChainVersion": "0x9"}, "no model version"},
			{map[string]any{"fromChainVersion": "0x2", "wAudit": 4}, "no other field"},
			{map[string]any{"fromChainVersion": "zz"}, "input.fromChainVersion"},
			{map[string]any{"wAudit": 4, "chainVersion": "zz"}, "input.chainVersion"},
		} {
			r := do(t, h, admin, set, map[string]any{"in": c.in})
			if r.code() != "BAD_USER_INPUT" || !strings.Contains(r.Errors[0].Message, c.mention) {
				t.Errorf("setRiskParams(%v) = %+v, want BAD_USER_INPUT naming %q", c.in, r.Errors, c.mention)
			}
		}
		// Mapped to version 2 with other values: the check says they differ.
		r = do(t, h, admin, set, map[string]any{"in": map[string]any{"wAudit": 4, "chainVersion": "0x2"}})
		if len(r.Errors) > 0 || !strings.Contains(string(r.Data["setRiskParams"]), `"version":3,"chainVersion":"`+two+`"`) {
			t.Fatalf("setRiskParams(mapped) = %s %+v", r.Data["setRiskParams"], r.Errors)
		}
		if strings.Contains(logged.String(), "differ") {
			t.Errorf("a warning before any mismatch: %s", logged.String())
		}
		if ok, err := markets.CheckDeployedParams(context.Background()); ok || err != nil {
			t.Errorf("CheckDeployedParams with other values = %v, %v, want a mismatch", ok, err)
		}
		if l := logged.String(); !strings.Contains(l, "level=WARN") || !strings.Contains(l, "risk parameters differ from the deployed RiskEngine") ||
			!strings.Contains(l, "version=3") || !strings.Contains(l, "chain_version="+two) {
			t.Errorf("the mismatch was logged as %q", l)
		}
		if r := do(t, h, admin, `{ riskParams { deployed { matches ourVersion } } }`, nil); string(r.Data["riskParams"]) != `{"deployed":{"matches":false,"ourVersion":3}}` {
			t.Errorf("deployed() mapped = %s %+v", r.Data["riskParams"], r.Errors)
		}
		// A preview takes values, not versions.
		if r := do(t, h, "", `{ riskScorePreview(input: {utilization: 5000, volatility: 100, liquidity: 1, auditScore: 90, ageDays: 400}, params: {chainVersion: "0x1"}) { score } }`, nil); r.code() != "BAD_USER_INPUT" {
			t.Errorf("riskScorePreview(chainVersion) = %+v", r.Errors)
		}
		// The node down: a coded error, not a hang.
		node.FailNext(100, starknettest.HTTP500)
		if r := do(t, h, admin, deployed, map[string]any{"v": "0x1"}); r.code() != "SERVICE_UNAVAILABLE" {
			t.Errorf("deployed with the node down = %+v, want SERVICE_UNAVAILABLE", r.Errors)
		}
		if _, err := markets.CheckDeployedParams(context.Background()); obsqra.ErrorCode(err) != obsqra.EUNAVAILABLE {
			t.Errorf("CheckDeployedParams with the node down = %v, want EUNAVAILABLE", err)
		}
	})
}

// syncBuffer is a bytes.Buffer safe for a logger and a test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
