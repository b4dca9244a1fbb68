package server_test

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestWebSocketClosedSocketSkipsQueuedOperations holds an operation before
// it starts, closes the socket, and then lets it go: it must not be
// parsed, validated or executed for a socket that is gone.
func TestWebSocketClosedSocketSkipsQueuedOperations(t *testing.T) {
	t.Parallel()
	queued := make(chan struct{}, 4)
	b := setupWS(t)
	b.srv.SetWSOperationQueued(func(ctx context.Context) {
		queued <- struct{}{}
		<-ctx.Done() // the socket's close cancels the operation
	})
	c := b.dial(t, "graphql-transport-ws")
	c.init(nil)
	for i := range 3 {
		c.subscribe(fmt.Sprint(i), `{ whoami }`, nil)
	}
	for range 3 {
		select {
		case <-queued:
		case <-time.After(wait):
			t.Fatal("the operations never started")
		}
	}

	c.conn.Close()
	b.closeAll(t) // waits for every goroutine of every socket

	if n := b.schema.execs.Load(); n != 0 {
		t.Errorf("executed %d operations of a closed socket, want 0", n)
	}
}
