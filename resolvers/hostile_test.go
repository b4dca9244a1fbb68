package resolvers_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/store"
	"github.com/obsqra/obsqra/store/storetest"
)

// Requests a hostile client could send. Each must get a small answer, a
// code the client can act on, and never an internal error.

// TestHistoryComplexity: a history nested in a history's rows multiplies
// the rows of the response, so each history costs its page size times its
// selection; the dashboard still fits the budget.
func TestHistoryComplexity(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		h := setup(t, db)
		admin := registerVia(t, h, "admin@example.com").AccessToken
		ingestVia(t, h, admin, slugs, 3)

		// 5 protocols × 100 samples × (100 + 100) samples each: a response
		// of 100,000 samples from one request.
		nested := `{ protocols { metricsHistory(first: 100) { edges { node { protocol {
			b1: metricsHistory(first: 100) { edges { node { apyBps } } }
			b2: metricsHistory(first: 100) { edges { node { apyBps } } } } } } } } }`
		byVariable := `query($n: Int) { protocols { riskHistory(first: $n) { edges { node { protocol {
			riskHistory(first: $n) { edges { node { score } } } } } } } } }`
		for _, tt := range []struct {
			name, query string
			vars        map[string]any
		}{
			{"nested metricsHistory", nested, nil},
			{"nested riskHistory, first by variable", byVariable, map[string]any{"n": 100}},
			// About 20 × 20 × 17 = 6,800: default pages in default pages,
			// selecting each score with its components and inputs.
			{"default page size", `{ protocols { riskHistory { edges { node { protocol {
				riskHistory { edges { node { score components { utilization volatility liquidity audit age unclamped }
					inputs { utilization volatility liquidity auditScore ageDays } } } } } } } } } }`, nil},
		} {
			r := do(t, h, "", tt.query, tt.vars)
			if r.code() != "COMPLEXITY_LIMIT_EXCEEDED" || len(r.Data["protocols"]) > 0 && string(r.Data["protocols"]) != "null" {
				t.Errorf("%s: %.200s %+v, want COMPLEXITY_LIMIT_EXCEEDED", tt.name, r.Data["protocols"], r.Errors)
			}
		}

		// What the frontend asks for still passes, and so does one level of
		// nesting with small pages.
		r := do(t, h, "", dashboardQuery, nil)
		if len(r.Errors) > 0 || len(decode[[]protocolRow](t, r.Data["protocols"])) != len(slugs) {
			t.Fatalf("dashboard query: %+v", r.Errors)
		}
		r = do(t, h, "", byVariable, map[string]any{"n": 5})
		if len(r.Errors) > 0 {
			t.Errorf("nested riskHistory(first: 5): %+v", r.Errors)
		}
		// One full page of 100 scores with every field fits the budget.
		r = do(t, h, "", `{ protocol(slug: "zklend") { riskHistory(first: 100) { edges { cursor node { id score observedAt
			paramsVersion modelVersion computedAt decisionId protocol { slug }
			components { utilization volatility liquidity audit age unclamped }
			inputs { utilization volatility liquidity auditScore ageDays } } } pageInfo { hasNextPage endCursor } } } }`, nil)
		if len(r.Errors) > 0 {
			t.Errorf("a page of 100 scores with every field: %+v", r.Errors)
		}
	})
}

// TestBadTimesAreBadUserInput: a Time that is not RFC 3339, or that no
// database stores, is BAD_USER_INPUT wherever it comes in.
func TestBadTimesAreBadUserInput(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		h := setup(t, db)
		admin := registerVia(t, h, "admin@example.com").AccessToken
		const history = `query($from: Time, $to: Time) { protocols { metricsHistory(from: $from, to: $to) { edges { cursor } } } }`
		const ingest = `mutation($in: [MetricsInput!]!) { ingestMetrics(input: $in) { id } }`
		sample := func(at any) map[string]any {
			return map[string]any{"in": []any{map[string]any{"protocol": "nostra", "observedAt": at, "apyBps": 400}}}
		}
		tests := []struct {
			name, token, query string
			vars               map[string]any
			message            string
		}{
			{"word", "", `{ protocols { metricsHistory(from: "yesterday") { edges { cursor } } } }`, nil, "not an RFC 3339 time"},
			{"month 13", "", `{ protocols { riskHistory(to: "2024-13-01T00:00:00Z") { edges { cursor } } } }`, nil, "not an RFC 3339 time"},
			{"variable", "", history, map[string]any{"from": "2024-01-01"}, "not an RFC 3339 time"},
			{"no zone", "", history, map[string]any{"from": "2024-01-01 00:00:00"}, "not an RFC 3339 time"},
			{"empty", "", history, map[string]any{"to": ""}, "not an RFC 3339 time"},
			{"number", "", history, map[string]any{"from": 1700000000}, "RFC 3339"},
			{"year 0", "", history, map[string]any{"from": "0000-01-01T00:00:00Z"}, "not between 1970 and 9999"},
			{"before 1970", "", history, map[string]any{"to": "1969-12-31T23:59:59Z"}, "not between 1970 and 9999"},
			{"year 10000 in UTC", "", history, map[string]any{"to": "9999-12-31T23:00:00-05:00"}, "not between 1970 and 9999"},
			{"long", "", history, map[string]any{"from": strings.Repeat("9", 10000)}, "not an RFC 3339 time"},
			{"ingest word", admin, ingest, sample("yesterday"), "not an RFC 3339 time"},
			{"ingest number", admin, ingest, sample(1700000000), "RFC 3339"},
			{"ingest inline", admin, `mutation { ingestMetrics(input: [{protocol: "nostra", observedAt: "2024-02-30T00:00:00Z", apyBps: 1}]) { id } }`, nil, "not an RFC 3339 time"},
		}
		for _, tt := range tests {
			r := do(t, h, tt.token, tt.query, tt.vars)
			if r.code() != "BAD_USER_INPUT" || !strings.Contains(r.Errors[0].Message, tt.message) || len(r.Errors[0].Message) > 200 {
				t.Errorf("%s: errors = %+v, want BAD_USER_INPUT containing %q", tt.name, r.Errors, tt.message)
			}
		}

		// Good times in any zone and with fractions pass, and times come
		// back as they did: RFC 3339 in UTC.
		at := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
		r := do(t, h, admin, `mutation($in: [MetricsInput!]!) { ingestMetrics(input: $in) { observedAt } }`,
			sample(at.In(time.FixedZone("", 5*3600+1800)).Format(time.RFC3339)))
		if want := `[{"observedAt":"` + at.Format(time.RFC3339) + `"}]`; len(r.Errors) > 0 || string(r.Data["ingestMetrics"]) != want {
			t.Errorf("ingestMetrics(+05:30) = %s %+v, want %s", r.Data["ingestMetrics"], r.Errors, want)
		}
		r = do(t, h, "", `query($from: Time, $to: Time) { protocol(slug: "nostra") { metricsHistory(from: $from, to: $to) { edges { node { observedAt } } } } }`,
			map[string]any{"from": "1970-01-01T00:00:00Z", "to": "9999-12-31T23:59:59.999999999Z"})
		if want := `{"metricsHistory":{"edges":[{"node":{"observedAt":"` + at.Format(time.RFC3339) + `"}}]}}`; len(r.Errors) > 0 || string(r.Data["protocol"]) != want {
			t.Errorf("metricsHistory(1970 to 9999) = %s %+v, want %s", r.Data["protocol"], r.Errors, want)
		}
	})
}

// TestHostileCursors: a cursor whose time no database stores is not a
// cursor of the list.
func TestHostileCursors(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		h := setup(t, db)
		admin := registerVia(t, h, "admin@example.com").AccessToken
		ingestVia(t, h, admin, []string{"zklend"}, 3)
		cursor := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
		for _, c := range []string{
			"h:-9223372036854775808:1",
			"h:9223372036854775807:1",
			fmt.Sprintf("h:%d:1", time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()),
			fmt.Sprintf("h:%d:1", time.Date(2008, 12, 31, 23, 59, 59, 0, time.UTC).UnixMicro()),
			"h:0:1",
		} {
			for _, field := range []string{"metricsHistory", "riskHistory"} {
				r := do(t, h, "", `query($after: String) { protocols { `+field+`(after: $after) { edges { cursor } } } }`,
					map[string]any{"after": cursor(c)})
				if r.code() != "BAD_USER_INPUT" || !strings.Contains(r.Errors[0].Message, "after: not a cursor") {
					t.Errorf("%s(after: %q) = %+v, want BAD_USER_INPUT", field, c, r.Errors)
				}
			}
		}
		// The edges of the range are cursors.
		for _, at := range []time.Time{time.Date(2009, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC)} {
			c := cursor(fmt.Sprintf("h:%d:1", at.UnixMicro()))
			r := do(t, h, "", `query($after: String) { protocols { riskHistory(after: $after) { edges { cursor } } } }`, map[string]any{"after": c})
			if len(r.Errors) > 0 {
				t.Errorf("riskHistory(after: %s) = %+v, want a page", at, r.Errors)
			}
		}
	})
}

// TestHostileSlugs: a string that cannot be a slug finds no protocol, and
// never reaches the database; one with a NUL character is not text at all
// (BAD_USER_INPUT, as every text input).
func TestHostileSlugs(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		h := setup(t, db)
		admin := registerVia(t, h, "admin@example.com").AccessToken
		for _, slug := range []string{"a\x00b", "zklend\x00"} {
			before := db.Statements()
			for _, q := range []string{`query($s: String!) { protocol(slug: $s) { id } }`, `mutation($s: String!) { setProtocolEnabled(slug: $s, enabled: false) { id } }`} {
				r := do(t, h, admin, q, map[string]any{"s": slug})
				if r.code() != "BAD_USER_INPUT" || r.Errors[0].Message != "slug must not contain the NUL character (U+0000)" {
					t.Errorf("%s with slug %q = %+v, want BAD_USER_INPUT", q, slug, r.Errors)
				}
			}
			if ran := db.Statements() - before; ran > 2 {
				t.Errorf("slug %q ran %d statements, want at most the 2 of signing in", slug, ran)
			}
		}
		for _, slug := range []string{"ZKLEND", "-zklend", "", strings.Repeat("a", 64), "zklend\xff", "zk lend"} {
			before := db.Statements()
			r := do(t, h, "", `query($s: String!) { protocol(slug: $s) { id } }`, map[string]any{"s": slug})
			if len(r.Errors) > 0 || string(r.Data["protocol"]) != "null" {
				t.Errorf("protocol(slug: %q) = %s %+v, want null", slug, r.Data["protocol"], r.Errors)
			}
			if ran := db.Statements() - before; ran != 0 {
				t.Errorf("protocol(slug: %q) ran %d statements, want none", slug, ran)
			}
			r = do(t, h, admin, `mutation($s: String!) { setProtocolEnabled(slug: $s, enabled: false) { id } }`, map[string]any{"s": slug})
			if r.code() != "NOT_FOUND" || !strings.Contains(r.Errors[0].Message, "no protocol has slug") {
				t.Errorf("setProtocolEnabled(slug: %q) = %+v, want NOT_FOUND", slug, r.Errors)
			}
		}
		// A real slug still works.
		r := do(t, h, admin, `mutation { setProtocolEnabled(slug: "zklend", enabled: false) { enabled } }`, nil)
		if got := string(r.Data["setProtocolEnabled"]); got != `{"enabled":false}` {
			t.Errorf("setProtocolEnabled(zklend) = %s %+v", got, r.Errors)
		}
	})
}

// TestDecisionNodes: node(id:) shows risk score decisions to anyone and
// decisions of other kinds only to admins; a decision whose stored JSON is
// broken is shown as a string, not a broken response.
func TestDecisionNodes(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		h := setup(t, db)
		admin := registerVia(t, h, "admin@example.com").AccessToken
		user := registerVia(t, h, "user@example.com").AccessToken
		var private, broken obsqra.Decision
		decisions := newDecisions(t, db, nil)
		err := db.WithTx(ctx, func(tx *store.Tx) error {
			private = obsqra.Decision{Kind: obsqra.DecisionKind("REBALANCE_SUGGESTION"), Inputs: obsqra.JSONObject(`{"user":2}`),
				Output: obsqra.JSONObject(`{"move":"all to vesu"}`), ModelVersion: "rebalance-v1"}
			if err := decisions.Append(ctx, tx, &private); err != nil {
				return err
			}
			broken = obsqra.Decision{Kind: obsqra.DecisionRiskScore, Inputs: obsqra.JSONObject(`{"utilization":5000}`),
				Output: obsqra.JSONObject(`{"score":4`), ModelVersion: obsqra.RiskModelVersion}
			return decisions.Append(ctx, tx, &broken)
		})
		if err != nil {
			t.Fatalf("AppendDecision = %v", err)
		}

		const node = `query($id: ID!) { node(id: $id) { id ... on Decision { hash } } }`
		vars := map[string]any{"id": private.NodeID()}
		for _, who := range []struct{ name, token string }{{"anonymous", ""}, {"user", user}} {
			r := do(t, h, who.token, node, vars)
			if len(r.Errors) > 0 || string(r.Data["node"]) != "null" {
				t.Errorf("node(%s decision) for %s = %s %+v, want null", private.Kind, who.name, r.Data["node"], r.Errors)
			}
		}
		r := do(t, h, admin, node, vars)
		if want := fmt.Sprintf(`{"id":%q,"hash":%q}`, private.NodeID(), private.Hash); len(r.Errors) > 0 || string(r.Data["node"]) != want {
			t.Errorf("node(%s decision) for an admin = %s %+v, want %s", private.Kind, r.Data["node"], r.Errors, want)
		}

		r = do(t, h, "", `query($id: ID!) { node(id: $id) { ... on Decision { kind inputs output } } }`, map[string]any{"id": broken.NodeID()})
		if want := `{"kind":"RISK_SCORE","inputs":{"utilization":5000},"output":"{\"score\":4"}`; len(r.Errors) > 0 || string(r.Data["node"]) != want {
			t.Errorf("node(decision with broken output) = %s %+v, want %s", r.Data["node"], r.Errors, want)
		}
	})
}

// TestHostileAliases: aliases of a field read from the database cost one
// statement, not one each.
func TestHostileAliases(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		h := setup(t, db)
		var q strings.Builder
		q.WriteString("{")
		for i := range 30 {
			fmt.Fprintf(&q, " a%d: riskParams { version }", i)
		}
		q.WriteString(" }")
		before := db.Statements()
		r := do(t, h, "", q.String(), nil)
		if len(r.Errors) > 0 || len(r.Data) != 30 {
			t.Fatalf("30 aliases of riskParams = %d fields, %+v", len(r.Data), r.Errors)
		}
		if ran := db.Statements() - before; ran != 1 {
			t.Errorf("30 aliases of riskParams ran %d statements, want 1", ran)
		}
	})
}
