package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/graph"
	"github.com/obsqra/obsqra/obsqratest"
	"github.com/obsqra/obsqra/server"
)

// testBundle is a server under test with its collaborators.
type testBundle struct {
	srv      *server.Server
	handler  http.Handler
	resolver *fakeResolver
	auth     *fakeAuth
	db       *fakePinger
	logs     *syncBuffer
}

// setup returns a server over the generated schema with fake resolvers,
// authenticator and database. Options change the config before New.
func setup(t *testing.T, opts ...func(*server.Config)) *testBundle {
	t.Helper()
	resolver := &fakeResolver{}
	return setupSchema(t, graph.NewExecutableSchema(graph.Config{Resolvers: resolver}), resolver, opts...)
}

// setupSchema is setup over any executable schema.
func setupSchema(t *testing.T, schema graphql.ExecutableSchema, resolver *fakeResolver, opts ...func(*server.Config)) *testBundle {
	t.Helper()
	logs := &syncBuffer{}
	cfg := server.Config{
		Version:       "v1.2.3-test",
		Introspection: true,
		CORSOrigins:   []string{"https://app.example.com"},
		Logger:        slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, opt := range opts {
		opt(&cfg)
	}
	b := &testBundle{
		resolver: resolver,
		auth:     &fakeAuth{},
		db:       &fakePinger{},
		logs:     logs,
	}
	b.srv = server.New(cfg, schema, b.auth, b.db)
	b.handler = b.srv.Handler()
	return b
}

// ada is the user of the fake authenticator's good token.
var ada = &obsqra.User{
	ID:          7,
	Email:       "ada@example.com",
	FullName:    "Ada Lovelace",
	Role:        obsqra.RoleUser,
	Active:      true,
	CreatedAt:   time.Date(2026, 11, 25, 19, 40, 0, 0, time.UTC),
	Preferences: obsqra.DefaultPreferences(),
}

const goodToken = "good-token"

// fakeAuth accepts goodToken, panics on "panic-token", and refuses any
// other token as expired.
type fakeAuth struct{ calls atomic.Int64 }

func (a *fakeAuth) Authenticate(_ context.Context, token string) (*obsqra.Principal, error) {
	a.calls.Add(1)
	switch token {
	case goodToken:
		return &obsqra.Principal{User: ada, SessionID: "session-1"}, nil
	case "panic-token":
		panic("authenticator exploded with secret s3cr3t")
	default:
		return nil, obsqra.Errorf(obsqra.EUNAUTHENTICATED, "access token expired")
	}
}

// fakePinger answers with err, or calls ping when set.
type fakePinger struct {
	calls atomic.Int64
	mu    sync.Mutex
	err   error
	ping  func(ctx context.Context) error
}

func (p *fakePinger) Ping(ctx context.Context) error {
	p.calls.Add(1)
	p.mu.Lock()
	err, ping := p.err, p.ping
	p.mu.Unlock()
	if ping != nil {
		return ping(ctx)
	}
	return err
}

func (p *fakePinger) set(err error, ping func(ctx context.Context) error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.err, p.ping = err, ping
}

// fakeResolver implements graph.ResolverRoot. me and login default to
// reporting the request's auth error, principal, and a fixed payload;
// protocols to fakeProtocols and latestRisk to a score of 42; tests replace
// them to return errors, panic or block.
type fakeResolver struct {
	// The embedded root stays nil: the fake serves the fields below, and
	// any other field would panic, which the tests do not ask for.
	graph.ResolverRoot
	me         func(ctx context.Context) (*obsqra.User, error)
	login      func(ctx context.Context, input graph.LoginInput) (*obsqra.AuthPayload, error)
	protocols  func(ctx context.Context) ([]*obsqra.Protocol, error)
	latestRisk func(ctx context.Context, p *obsqra.Protocol) (*obsqra.RiskScore, error)
}

func (r *fakeResolver) Query() graph.QueryResolver         { return fakeQuery{r: r} }
func (r *fakeResolver) Mutation() graph.MutationResolver   { return fakeMutation{r: r} }
func (r *fakeResolver) Protocol() graph.ProtocolResolver   { return fakeProtocol{r: r} }
func (r *fakeResolver) RiskScore() graph.RiskScoreResolver { return fakeRiskScore{} }

// fakeProtocols are what the fake's protocols field answers.
var fakeProtocols = []*obsqra.Protocol{{ID: 1, Slug: "zklend", Name: "zkLend"}, {ID: 2, Slug: "vesu", Name: "Vesu"}}

type fakeQuery struct {
	graph.QueryResolver // nil: only Node and Me are served
	r                   *fakeResolver
}

func (q fakeQuery) Node(context.Context, string) (obsqra.Node, error) {
	return nil, obsqra.Errorf(obsqra.ENOTFOUND, "no such node")
}

func (q fakeQuery) Me(ctx context.Context) (*obsqra.User, error) {
	if q.r.me != nil {
		return q.r.me(ctx)
	}
	return obsqra.Viewer(ctx)
}

func (q fakeQuery) Protocols(ctx context.Context) ([]*obsqra.Protocol, error) {
	if q.r.protocols != nil {
		return q.r.protocols(ctx)
	}
	return fakeProtocols, nil
}

type fakeProtocol struct {
	graph.ProtocolResolver // nil: only LatestRisk is served
	r                      *fakeResolver
}

func (p fakeProtocol) LatestRisk(ctx context.Context, protocol *obsqra.Protocol) (*obsqra.RiskScore, error) {
	if p.r.latestRisk != nil {
		return p.r.latestRisk(ctx, protocol)
	}
	return &obsqra.RiskScore{ID: protocol.ID, ProtocolID: protocol.ID, Score: 42, ObservedAt: fakeObservedAt}, nil
}

// fakeObservedAt is when the fake's risk scores were observed.
var fakeObservedAt = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

type fakeRiskScore struct {
	graph.RiskScoreResolver // nil: only ObservedAt is served
}

func (fakeRiskScore) ObservedAt(_ context.Context, s *obsqra.RiskScore) (*time.Time, error) {
	return &s.ObservedAt, nil
}

type fakeMutation struct {
	graph.MutationResolver // nil: only the account mutations are served
	r                      *fakeResolver
}

var errNotImplemented = errors.New("not implemented in the fake")

func (m fakeMutation) Register(context.Context, graph.RegisterInput) (*obsqra.Registration, error) {
	return nil, errNotImplemented
}

func (m fakeMutation) Login(ctx context.Context, input graph.LoginInput) (*obsqra.AuthPayload, error) {
	if m.r.login != nil {
		return m.r.login(ctx, input)
	}
	return &obsqra.AuthPayload{AccessToken: goodToken, RefreshToken: "r", TokenType: "Bearer", ExpiresIn: 900, User: ada}, nil
}

func (m fakeMutation) RefreshSession(context.Context, string) (*obsqra.AuthPayload, error) {
	return nil, errNotImplemented
}

func (m fakeMutation) Logout(context.Context, *string, *bool) (bool, error) {
	return false, errNotImplemented
}

func (m fakeMutation) UpdatePreferences(context.Context, obsqra.PreferencesPatch) (*obsqra.User, error) {
	return ada, nil
}

func (m fakeMutation) ChangePassword(context.Context, graph.ChangePasswordInput) (bool, error) {
	return false, errNotImplemented
}

func (m fakeMutation) DeactivateAccount(context.Context, string) (bool, error) {
	return false, errNotImplemented
}

func (m fakeMutation) SetUserActive(context.Context, string, bool) (*obsqra.User, error) {
	return nil, errNotImplemented
}

// syncBuffer is the shared log buffer with the filters these tests use.
type syncBuffer struct{ obsqratest.Buffer }

// entries returns the JSON log entries whose msg is msg.
func (b *syncBuffer) entries(t *testing.T, msg string) []map[string]any {
	t.Helper()
	return b.Entries(t, "msg", msg)
}

// levels returns the JSON log entries at level ("DEBUG", "ERROR", …).
func (b *syncBuffer) levels(t *testing.T, level string) []map[string]any {
	t.Helper()
	return b.Entries(t, "level", level)
}

// gqlResult is a GraphQL response.
type gqlResult struct {
	Data   json.RawMessage `json:"data"`
	Errors []gqlErr        `json:"errors"`
}

type gqlErr struct {
	Message    string         `json:"message"`
	Path       []any          `json:"path"`
	Extensions map[string]any `json:"extensions"`
}

// serve runs req through the handler.
func (b *testBundle) serve(req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	b.handler.ServeHTTP(rec, req)
	return rec
}

// graphQL POSTs query with variables and headers (name, value pairs) to
// /graphql and decodes the response.
func (b *testBundle) graphQL(t *testing.T, query string, variables map[string]any, headers ...string) (*httptest.ResponseRecorder, gqlResult) {
	t.Helper()
	body, err := json.Marshal(map[string]any{"query": query, "variables": variables})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, "/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	rec := b.serve(req)
	return rec, decodeResult(t, rec)
}

func decodeResult(t *testing.T, rec *httptest.ResponseRecorder) gqlResult {
	t.Helper()
	var res gqlResult
	if err := json.Unmarshal(rec.Body.Bytes(), &res); err != nil {
		t.Fatalf("response %d %q is not JSON: %v", rec.Code, rec.Body.String(), err)
	}
	return res
}

// onlyError returns the one error of res, failing the test otherwise.
func onlyError(t *testing.T, res gqlResult) gqlErr {
	t.Helper()
	if len(res.Errors) != 1 {
		t.Fatalf("errors = %+v, want exactly one", res.Errors)
	}
	return res.Errors[0]
}

func noErrors(t *testing.T, rec *httptest.ResponseRecorder, res gqlResult) {
	t.Helper()
	if rec.Code != http.StatusOK || len(res.Errors) != 0 {
		t.Fatalf("status %d, errors %+v; want 200 and no errors", rec.Code, res.Errors)
	}
}

func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	b := setup(t)
	entered := make(chan struct{})
	release := make(chan struct{})
	b.resolver.me = func(ctx context.Context) (*obsqra.User, error) {
		close(entered)
		<-release
		return ada, nil
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- b.srv.Serve(ctx, ln, time.Minute) }()

	type result struct {
		status int
		body   string
		err    error
	}
	slow := make(chan result, 1)
	go func() {
		resp, err := http.Post("http://"+ln.Addr().String()+"/graphql", "application/json",
			strings.NewReader(`{"query":"{ me { email } }"}`))
		if err != nil {
			slow <- result{err: err}
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		slow <- result{status: resp.StatusCode, body: string(body), err: err}
	}()

	<-entered
	cancel()
	<-b.srv.ShuttingDown()

	if rec := b.serve(httptest.NewRequest(http.MethodGet, "/ready", nil)); rec.Code != http.StatusServiceUnavailable ||
		!strings.Contains(rec.Body.String(), `"reason":"shutting down"`) {
		t.Errorf("GET /ready while shutting down = %d %s, want 503 shutting down", rec.Code, rec.Body)
	}
	select {
	case err := <-served:
		t.Fatalf("Serve returned %v before the in-flight request finished", err)
	default:
	}

	close(release)
	got := <-slow
	if got.err != nil || got.status != http.StatusOK || got.body != `{"data":{"me":{"email":"ada@example.com"}}}` {
		t.Errorf("in-flight request = %d %q, %v; want 200 with ada's email", got.status, got.body, got.err)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve = %v, want nil after a graceful shutdown", err)
	}
}

func TestServeShutdownTimeout(t *testing.T) {
	t.Parallel()
	b := setup(t)
	entered := make(chan struct{})
	release := make(chan struct{})
	defer close(release)
	b.resolver.me = func(ctx context.Context) (*obsqra.User, error) {
		close(entered)
		<-release
		return ada, nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	served := make(chan error, 1)
	go func() { served <- b.srv.Serve(ctx, ln, time.Millisecond) }()
	go func() {
		resp, err := http.Post("http://"+ln.Addr().String()+"/graphql", "application/json",
			strings.NewReader(`{"query":"{ me { email } }"}`))
		if err == nil {
			resp.Body.Close()
		}
	}()
	<-entered
	cancel()
	if err := <-served; !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Serve with a stuck request = %v, want the shutdown deadline", err)
	}
}

func TestListenAndServeBadAddress(t *testing.T) {
	t.Parallel()
	b := setup(t)
	if err := b.srv.ListenAndServe(t.Context(), "not-an-address", time.Second); err == nil {
		t.Fatal("ListenAndServe(not-an-address) = nil, want an error")
	}
}
