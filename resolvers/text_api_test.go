package resolvers_test

import (
	"log/slog"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/obsqra/obsqra/account"
	"github.com/obsqra/obsqra/advisor"
	"github.com/obsqra/obsqra/ledger"
	"github.com/obsqra/obsqra/market"
	"github.com/obsqra/obsqra/portfolio"
	"github.com/obsqra/obsqra/resolvers"
	"github.com/obsqra/obsqra/server"
	"github.com/obsqra/obsqra/store"
	"github.com/obsqra/obsqra/store/storetest"
)

// newFullHandler returns the real handler over db with every service an
// input of the schema reaches (no scheduler, no live hub, no Starknet
// node), admin@example.com as an admin email, and sign-in and registration
// limits no test reaches.
func newFullHandler(tb testing.TB, db *store.DB) (http.Handler, *account.Service) {
	tb.Helper()
	tokens, err := account.NewTokens(testKey, 30*time.Minute)
	if err != nil {
		tb.Fatal(err)
	}
	const many = 1 << 30
	accounts, err := account.New(db, account.Config{Tokens: tokens, RefreshTTL: 24 * time.Hour, BcryptCost: 4,
		AdminEmails: []string{"admin@example.com"},
		Throttle:    account.ThrottlePolicy{AccountLimit: many, AddressLimit: many, RegisterLimit: many}})
	if err != nil {
		tb.Fatal(err)
	}
	decisions := newDecisions(tb, db, nil)
	markets, err := market.New(db, decisions, market.Config{})
	if err != nil {
		tb.Fatal(err)
	}
	advice, err := advisor.New(db, markets, decisions, advisor.Config{})
	if err != nil {
		tb.Fatal(err)
	}
	schema := resolvers.NewExecutableSchema(&resolvers.Resolver{Accounts: accounts, Market: markets, Decisions: decisions, Advisor: advice,
		Portfolio: portfolio.New(db, portfolio.Config{}), Ledger: ledger.New(db, nil, ledger.Config{})})
	srv := server.New(server.Config{Version: "test", Introspection: true, Logger: slog.New(slog.DiscardHandler)}, schema, accounts, db)
	return srv.Handler(), accounts
}

// TestTextNoDatabaseStoresIsBadUserInput (issue 15): a NUL character in
// any text or JSON input, whether a variable or a literal, at any depth, is
// BAD_USER_INPUT naming the field, with the same message on both databases
// (PostgreSQL answered INTERNAL_SERVER_ERROR, SQLite stored it), and
// nothing is stored: the request runs no statement beyond signing in.
func TestTextNoDatabaseStoresIsBadUserInput(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		h, _ := newFullHandler(t, db)
		admin := registerVia(t, h, "admin@example.com").AccessToken
		ada := registerVia(t, h, "ada@example.com").AccessToken

		const (
			register       = `mutation($in: RegisterInput!) { register(input: $in) { auth { accessToken } } }`
			logTransaction = `mutation($in: LogTransactionInput!) { logTransaction(input: $in) { id } }`
			nul            = "must not contain the NUL character (U+0000)"
		)
		user := func(email, password, fullName string) map[string]any {
			return map[string]any{"in": map[string]any{"email": email, "password": password, "fullName": fullName}}
		}
		transaction := func(field string, v any) map[string]any {
			in := map[string]any{"txHash": "0x1", "type": "DEPOSIT", "amount": "1.5", "token": "STRK"}
			in[field] = v
			return map[string]any{"in": in}
		}
		tests := []struct {
			name, token, query string
			vars               map[string]any
			message            string
			path               []any
		}{
			{"fullName variable", "", register, user("nul@example.com", "correct horse", "a\x00b"),
				"input.fullName " + nul, []any{"register", "input", "fullName"}},
			{"email variable", "", register, user("nul\x00@example.com", "correct horse", "Ada"),
				"input.email " + nul, []any{"register", "input", "email"}},
			{"password variable", "", register, user("nul@example.com", "correct\x00horse", "Ada"),
				"input.password " + nul, []any{"register", "input", "password"}},
			{"fullName literal", "", `mutation { register(input: {email: "nul@example.com", password: "correct horse", fullName: "a\u0000b"}) { auth { accessToken } } }`, nil,
				"input.fullName " + nul, []any{"register", "input", "fullName"}},
			{"details value", ada, logTransaction, transaction("details", map[string]any{"a": "\x00"}),
				"input.details " + nul, []any{"logTransaction", "input", "details"}},
			{"details key", ada, logTransaction, transaction("details", map[string]any{"\x00": 1}),
				"a key of input.details " + nul, []any{"logTransaction", "input", "details"}},
			{"details nested", ada, logTransaction, transaction("details", map[string]any{"a": []any{1, map[string]any{"b": "x\x00"}}}),
				"input.details " + nul, []any{"logTransaction", "input", "details"}},
			{"details nested key", ada, logTransaction, transaction("details", map[string]any{"a": map[string]any{"b\x00": true}}),
				"a key of input.details " + nul, []any{"logTransaction", "input", "details"}},
			{"details literal", ada, `mutation { logTransaction(input: {txHash: "0x1", type: DEPOSIT, amount: "1.5", token: "STRK", details: {a: ["\u0000"]}}) { id } }`, nil,
				"input.details " + nul, []any{"logTransaction", "input", "details"}},
			{"token", ada, logTransaction, transaction("token", "ST\x00RK"),
				"input.token " + nul, []any{"logTransaction", "input", "token"}},
			{"ID variable", "", `query($id: ID!) { node(id: $id) { id } }`, map[string]any{"id": "VXNlcjox\x00"},
				"id " + nul, []any{"node", "id"}},
			{"ID literal", admin, `mutation { setUserActive(userId: "\u0000", active: false) { id } }`, nil,
				"userId " + nul, []any{"setUserActive", "userId"}},
			{"String argument", ada, `mutation($t: String!) { refreshSession(refreshToken: $t) { accessToken } }`, map[string]any{"t": "\x00"},
				"refreshToken " + nul, []any{"refreshSession", "refreshToken"}},
			{"list element", "", `query($p: [String!]) { backtest(protocols: $p, horizonDays: 7) { windowDays } }`, map[string]any{"p": []any{"nostra", "zk\x00lend"}},
				"protocols[1] " + nul, []any{"backtest", "protocols", float64(1)}},
			{"slug literal", "", `{ protocol(slug: "a\u0000b") { id } }`, nil,
				"slug " + nul, []any{"protocol", "slug"}},
			{"admin JSON", admin, `mutation($ids: JSON) { upsertProtocol(input: {slug: "nulfi", name: "Nul", category: LENDING, auditScore: 50, launchedOn: "2024-01-01", sourceIds: $ids}) { id } }`,
				map[string]any{"ids": map[string]any{"defillama_project": "nul\x00"}},
				"input.sourceIds " + nul, []any{"upsertProtocol", "input", "sourceIds"}},
		}
		for _, tt := range tests {
			before := db.Statements()
			r := do(t, h, tt.token, tt.query, tt.vars)
			if r.code() != "BAD_USER_INPUT" || len(r.Errors) != 1 || r.Errors[0].Message != tt.message || !slices.Equal(r.Errors[0].Path, tt.path) {
				t.Errorf("%s: errors = %+v, want one BAD_USER_INPUT %q at %v", tt.name, r.Errors, tt.message, tt.path)
			}
			// Signing in is one statement (the session's); nothing else runs.
			signIn := int64(0)
			if tt.token != "" {
				signIn = 1
			}
			if ran := db.Statements() - before; ran > signIn {
				t.Errorf("%s: ran %d statements, want at most %d", tt.name, ran, signIn)
			}
		}

		// Nothing was stored: the email is free, Ada logged nothing and no
		// protocol nulfi exists.
		registerVia(t, h, "nul@example.com")
		if r := do(t, h, ada, `{ transactions { edges { node { id } } } }`, nil); len(r.Errors) > 0 || string(r.Data["transactions"]) != `{"edges":[]}` {
			t.Errorf("transactions = %s %+v, want none", r.Data["transactions"], r.Errors)
		}
		if r := do(t, h, "", `{ protocol(slug: "nulfi") { id } }`, nil); len(r.Errors) > 0 || string(r.Data["protocol"]) != "null" {
			t.Errorf("protocol(nulfi) = %s %+v, want null", r.Data["protocol"], r.Errors)
		}

		// The same inputs without the NUL are taken.
		r := do(t, h, ada, logTransaction, transaction("details", map[string]any{"a": []any{1, map[string]any{"b": "x"}}, "\u00e9": "\u2603"}))
		if len(r.Errors) > 0 {
			t.Errorf("logTransaction(details without NUL) = %+v", r.Errors)
		}
	})
}
