package rest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/account"
	"github.com/obsqra/obsqra/advisor"
	"github.com/obsqra/obsqra/decision"
	"github.com/obsqra/obsqra/ledger"
	"github.com/obsqra/obsqra/market"
	"github.com/obsqra/obsqra/obsqratest"
	"github.com/obsqra/obsqra/portfolio"
	"github.com/obsqra/obsqra/ratelimit"
	"github.com/obsqra/obsqra/resolvers"
	"github.com/obsqra/obsqra/rest"
	"github.com/obsqra/obsqra/server"
	"github.com/obsqra/obsqra/starknet"
	"github.com/obsqra/obsqra/starknet/starknettest"
	"github.com/obsqra/obsqra/store"
)

var testKey = []byte("rest tests: 0123456789abcdef0123")

// env is the whole server over one database, as `obsqra serve` builds it:
// the REST API and the GraphQL API over the same services.
type env struct {
	t        testing.TB
	h        http.Handler
	db       *store.DB
	clock    *obsqratest.Clock
	accounts *account.Service
	markets  *market.Service
	advice   *advisor.Service
	folio    *portfolio.Service
	node     *starknettest.Node
	// validate checks a response against the OpenAPI document.
	validate func(t testing.TB, req *http.Request, status int, header http.Header, body []byte)
}

type envOptions struct {
	accounts func(*account.Config)
	budget   int64 // the anonymous budget a minute (users get 10×); 0: none
	timeout  time.Duration
}

func newEnv(t testing.TB, db *store.DB, o envOptions) *env {
	t.Helper()
	clock := obsqratest.NewClock(time.Now().UTC().Truncate(time.Second))
	db.Now = clock.Now
	tokens, err := account.NewTokens(testKey, 30*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	node := starknettest.NewNode(t)
	client, err := starknet.New(starknet.Config{URLs: []string{node.URL}, Network: starknet.NetworkSepolia})
	if err != nil {
		t.Fatal(err)
	}
	acfg := account.Config{Tokens: tokens, RefreshTTL: 24 * time.Hour, BcryptCost: 4, Starknet: client}
	if o.accounts != nil {
		o.accounts(&acfg)
	}
	accounts, err := account.New(db, acfg)
	if err != nil {
		t.Fatal(err)
	}
	decisions, err := decision.New(db, decision.Key(testKey), market.NewRiskScores(db, nil, nil), advisor.Optimizations{})
	if err != nil {
		t.Fatal(err)
	}
	markets, err := market.New(db, decisions, market.Config{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	advice, err := advisor.New(db, markets, decisions, advisor.Config{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	folio := portfolio.New(db, portfolio.Config{Now: clock.Now})
	txs := ledger.New(db, nil, ledger.Config{Now: clock.Now})
	schema := resolvers.NewExecutableSchema(&resolvers.Resolver{Accounts: accounts, Market: markets, Decisions: decisions,
		Advisor: advice, Portfolio: folio, Ledger: txs, Now: clock.Now})
	api := &rest.API{Accounts: accounts, Market: markets, Advisor: advice, Portfolio: folio, Ledger: txs, Now: clock.Now, Version: "test", Timeout: o.timeout}
	scfg := server.Config{Version: "1.0.0", Introspection: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), REST: api,
		CORSOrigins: []string{"http://localhost:3000"}}
	if o.budget > 0 {
		at := time.Now()
		scfg.RateLimits = &server.RateLimits{
			Limiter:   ratelimit.New(db, func() time.Time { return at }),
			Anonymous: &ratelimit.Policy{Name: "anonymous", Capacity: o.budget, Window: time.Minute},
			User:      &ratelimit.Policy{Name: "user", Capacity: 10 * o.budget, Window: time.Minute},
			Admin:     &ratelimit.Policy{Name: "admin", Capacity: 100 * o.budget, Window: time.Minute},
		}
	}
	srv := server.New(scfg, schema, accounts, db)
	api.Budget = srv
	e := &env{t: t, h: srv.Handler(), db: db, clock: clock, accounts: accounts, markets: markets, advice: advice, folio: folio, node: node}
	e.validate = openAPIValidator(t, e.h)
	return e
}

// openAPIValidator loads the server's OpenAPI document with kin-openapi,
// checks it, and returns a check of responses against it.
func openAPIValidator(t testing.TB, h http.Handler) func(testing.TB, *http.Request, int, http.Header, []byte) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v1/openapi.json", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /api/v1/openapi.json: %d %s", rec.Code, rec.Body)
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(rec.Body.Bytes())
	if err != nil {
		t.Fatalf("load the OpenAPI document: %v", err)
	}
	if !doc.IsOpenAPI31OrLater() {
		t.Fatalf("the document is OpenAPI %s, want 3.1", doc.OpenAPI)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("the OpenAPI document is invalid: %v", err)
	}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatalf("router of the OpenAPI document: %v", err)
	}
	return func(tb testing.TB, req *http.Request, status int, header http.Header, body []byte) {
		tb.Helper()
		if req.Method == http.MethodOptions || status == http.StatusTemporaryRedirect || status == http.StatusNotFound && !strings.Contains(string(body), `"code"`) ||
			status == http.StatusMethodNotAllowed || !strings.HasPrefix(req.URL.Path, rest.Prefix+"/") ||
			strings.HasPrefix(req.URL.Path, rest.Prefix+"/docs") || req.URL.Path == rest.Prefix+"/openapi.json" {
			return // the framework's answers and the pages, not a route's
		}
		r := req.Clone(context.Background())
		r.URL.Scheme, r.URL.Host, r.Host = "", "", ""
		route, params, err := router.FindRoute(r)
		if err != nil {
			if err == routers.ErrPathNotFound {
				tb.Fatalf("%s %s answered %d but is not in the OpenAPI document", req.Method, req.URL.Path, status)
			}
			tb.Fatalf("find the route of %s %s: %v", req.Method, req.URL.Path, err)
		}
		in := &openapi3filter.ResponseValidationInput{
			RequestValidationInput: &openapi3filter.RequestValidationInput{Request: r, PathParams: params, Route: route,
				Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}},
			Status: status, Header: header, Body: io.NopCloser(bytes.NewReader(body)),
			Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
		}
		if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
			tb.Fatalf("%s %s: the %d response does not match the OpenAPI document: %v\nbody: %s", req.Method, req.URL.Path, status, err, body)
		}
	}
}

// response is what the server answered.
type response struct {
	status int
	header http.Header
	body   []byte
}

// json decodes the body, numbers kept as json.Number.
func (r response) json(t testing.TB) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("status %d, body %q: %v", r.status, r.body, err)
	}
	return v
}

// object decodes the body as an object.
func (r response) object(t testing.TB) map[string]any {
	t.Helper()
	m, ok := r.json(t).(map[string]any)
	if !ok {
		t.Fatalf("status %d: body %s is not an object", r.status, r.body)
	}
	return m
}

// problems returns the locations of a 422's problems, as "body.email".
func (r response) problems(t testing.TB) []string {
	t.Helper()
	if r.status != http.StatusUnprocessableEntity {
		t.Fatalf("status %d, want 422: %s", r.status, r.body)
	}
	var b struct {
		Detail []struct {
			Loc  []any  `json:"loc"`
			Msg  string `json:"msg"`
			Type string `json:"type"`
		} `json:"detail"`
		Code string `json:"code"`
	}
	if err := json.Unmarshal(r.body, &b); err != nil || b.Code != "BAD_USER_INPUT" {
		t.Fatalf("422 body %s: %v", r.body, err)
	}
	var out []string
	for _, d := range b.Detail {
		var parts []string
		for _, l := range d.Loc {
			parts = append(parts, strings.Trim(strings.TrimSuffix(strings.TrimPrefix(jsonText(l), `"`), `"`), `"`))
		}
		out = append(out, strings.Join(parts, "."))
	}
	return out
}

func jsonText(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// do sends a request from 203.0.113.5 (body: nil, a string sent as is, or
// a value encoded as JSON), checks the answer against the OpenAPI
// document, and returns it.
func (e *env) do(t testing.TB, method, target string, body any, headers ...string) response {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req := httptest.NewRequest(method, target, rd)
	req.RemoteAddr = "203.0.113.5:4321"
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	resp := response{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
	if e.validate != nil {
		e.validate(t, req, resp.status, resp.header, resp.body)
	}
	return resp
}

// register signs up email and returns the access token.
func (e *env) register(t testing.TB, email string) string {
	t.Helper()
	r := e.do(t, http.MethodPost, "/api/v1/auth/register", map[string]any{"email": email, "password": "c0rrect-Horse-battery", "full_name": "Test"})
	if r.status != http.StatusOK {
		t.Fatalf("register %s: %d %s", email, r.status, r.body)
	}
	tok, _ := r.object(t)["access_token"].(string)
	return tok
}

// signedIn is the context of the user of token, for calls to services.
func (e *env) signedIn(t testing.TB, token string) context.Context {
	t.Helper()
	p, err := e.accounts.Authenticate(context.Background(), token)
	if err != nil {
		t.Fatal(err)
	}
	return obsqra.NewContextWithPrincipal(context.Background(), p)
}

// regimes are the seeded protocols' markets: APY and utilisation in bps,
// and how much the APY wobbles from day to day.
var regimes = map[string][3]int{
	"nostra": {550, 9000, 6},
	"zklend": {400, 2000, 4},
	"ekubo":  {300, 2500, 3},
}

// ingestDays feeds one sample a day of each protocol for the last days
// days, at noon (or now, today).
func (e *env) ingestDays(t testing.TB, days int) {
	t.Helper()
	now := e.clock.Now()
	today := now.Truncate(24 * time.Hour)
	var in []obsqra.MetricsInput
	for d := days - 1; d >= 0; d-- {
		at := today.Add(-time.Duration(d)*24*time.Hour + 12*time.Hour)
		if at.After(now) {
			at = now
		}
		day := int(at.Unix() / 86400)
		for slug, r := range regimes {
			w := int(math.Round(float64(r[2]) * math.Sin(float64(day)*0.7+float64(len(slug)))))
			in = append(in, obsqra.MetricsInput{Protocol: slug, ObservedAt: at, ApyBps: r[0] + w, UtilizationBps: r[1]})
		}
	}
	if _, err := e.markets.Ingest(context.Background(), obsqra.SourceImport, in); err != nil {
		t.Fatalf("Ingest: %v", err)
	}
}

// recordAllocation records an allocation of the user of ctx.
func (e *env) recordAllocation(t testing.TB, ctx context.Context, reason obsqra.AllocationReason, weights map[string]int, txHash *obsqra.Felt) {
	t.Helper()
	var ws []obsqra.WeightInput
	for slug, bps := range weights {
		ws = append(ws, obsqra.WeightInput{Protocol: slug, WeightBps: bps})
	}
	if _, err := e.folio.RecordAllocation(ctx, obsqra.RecordAllocationInput{Weights: ws, Reason: reason, TxHash: txHash}); err != nil {
		t.Fatalf("RecordAllocation: %v", err)
	}
}
