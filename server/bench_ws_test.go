package server_test

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/obsqra/obsqra/server"
)

// BenchmarkSharedFanOut measures one event of a shared subscription
// reaching every one of 2,000 WebSocket subscribers through the real
// transport (one execution, one encoding, 2,000 frames written), from
// publish to the last client's read. The load generator runs in the same
// process, on the same two cores.
func BenchmarkSharedFanOut(b *testing.B) {
	const clients = 2000
	schema := newWSSchema()
	srv := server.New(server.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), WSSendBuffer: 1 << 20}, schema, &wsAuth{}, &fakePinger{})
	ts := httptest.NewServer(srv.Handler())
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
	var exec *wsSub
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
			case exec = <-schema.topic("shared-bench"):
			case <-time.After(wait):
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
		exec.events <- fmt.Sprintf("risk score %d", i)
		for range clients {
			<-got
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/clients, "ns/delivery")
}
