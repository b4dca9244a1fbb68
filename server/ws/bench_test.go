package ws_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/gorilla/websocket"
	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/server/ws"
	"github.com/obsqra/obsqra/subscription"
)

// fanOutSchema is an executable schema of one shared subscription,
// ticks(topic), whose events the benchmark sends on the channel each
// execution hands over on started.
type fanOutSchema struct {
	schema  *ast.Schema
	started chan chan string
}

func newFanOutSchema() *fanOutSchema {
	return &fanOutSchema{
		schema: gqlparser.MustLoadSchema(&ast.Source{Name: "fanout.graphqls", Input: `
			type Query { ok: Boolean }
			type Subscription { ticks(topic: String!): String! }
		`}),
		started: make(chan chan string, 1),
	}
}

func (s *fanOutSchema) Schema() *ast.Schema { return s.schema }

func (*fanOutSchema) Complexity(context.Context, string, string, int, map[string]any) (int, bool) {
	return 0, false
}

func (s *fanOutSchema) Exec(ctx context.Context) graphql.ResponseHandler {
	field := graphql.GetOperationContext(ctx).Operation.SelectionSet[0].(*ast.Field)
	subscription.Share(ctx)
	events := make(chan string)
	s.started <- events
	return func(ctx context.Context) *graphql.Response {
		select {
		case <-ctx.Done():
			return nil
		case e := <-events:
			data, _ := json.Marshal(map[string]string{field.Alias: e})
			return &graphql.Response{Data: data}
		}
	}
}

// fanOutServer serves schema over the WebSocket transport alone: the
// server's HTTP middleware and extensions act once per connection or
// operation, never per event, which is what the benchmark measures.
func fanOutServer(schema graphql.ExecutableSchema, maxConns int) (*ws.Transport, *httptest.Server) {
	t := ws.New(ws.Config{
		Logger:             slog.New(slog.NewTextHandler(io.Discard, nil)),
		SendBuffer:         1 << 20,
		MaxConnsPerAddress: maxConns,
		Authenticate: func(context.Context, string) (*obsqra.Principal, error) {
			return nil, obsqra.Errorf(obsqra.EUNAUTHENTICATED, "no tokens here")
		},
		PresentError: func(ctx context.Context, err error) *gqlerror.Error { return graphql.DefaultErrorPresenter(ctx, err) },
		Recover:      graphql.DefaultRecover,
		CheckOrigin:  func(*http.Request) bool { return true },
	})
	h := handler.New(schema)
	h.AddTransport(t)
	return t, httptest.NewServer(h)
}

// BenchmarkSharedFanOut measures one event of a shared subscription
// reaching every one of 2,000 WebSocket subscribers through the real
// transport (one execution, one encoding, 2,000 frames written), from
// publish to the last client's read. The load generator runs in the same
// process, on the same two cores.
func BenchmarkSharedFanOut(b *testing.B) {
	const clients = 2000
	schema := newFanOutSchema()
	// Every client comes from one address.
	srv, ts := fanOutServer(schema, clients)
	defer ts.Close()
	url := "ws" + strings.TrimPrefix(ts.URL, "http") + "/graphql"
	sub := `{"type":"subscribe","id":"1","payload":{"query":"subscription($topic: String!) { ticks(topic: $topic) }","variables":{"topic":"shared-bench"}}}`

	got := make(chan struct{}, clients)
	var conns []*websocket.Conn
	var wg sync.WaitGroup
	defer func() {
		for _, c := range conns {
			c.Close()
		}
		wg.Wait()
	}()
	var events chan string
	for i := range clients {
		c, _, err := (&websocket.Dialer{Subprotocols: []string{"graphql-transport-ws"}}).Dial(url, nil)
		if err != nil {
			b.Fatalf("dial %d: %v", i, err)
		}
		conns = append(conns, c)
		c.WriteMessage(websocket.TextMessage, []byte(`{"type":"connection_init"}`))
		if _, m, err := c.ReadMessage(); err != nil || !strings.Contains(string(m), "connection_ack") {
			b.Fatalf("init %d: %s %v", i, m, err)
		}
		c.WriteMessage(websocket.TextMessage, []byte(sub))
		if i == 0 {
			select {
			case events = <-schema.started:
			case <-time.After(10 * time.Second):
				b.Fatal("the subscription did not start")
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				_, m, err := c.ReadMessage()
				if err != nil {
					return
				}
				var msg struct{ Type string }
				if json.Unmarshal(m, &msg) == nil && msg.Type == "next" {
					got <- struct{}{}
				}
			}
		}()
	}
	deadline := time.Now().Add(time.Minute)
	for srv.SharedSubscribers() < clients {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d subscribers joined", srv.SharedSubscribers(), clients)
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		events <- fmt.Sprintf("risk score %d", i)
		for range clients {
			<-got
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/clients, "ns/delivery")
}
