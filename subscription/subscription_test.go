package subscription_test

import (
	"context"
	"errors"
	"testing"

	"github.com/obsqra/obsqra/subscription"
)

// TestState: what a subscription says through its context is what the
// transport reads; the first error wins; without a State in the context
// nothing happens.
func TestState(t *testing.T) {
	t.Parallel()
	ctx, st := subscription.NewContext(context.Background())
	if st.Shareable() || st.Public() || st.Backlog() || st.Err() != nil {
		t.Fatalf("new State: shareable %v, public %v, backlog %v, err %v; want nothing said",
			st.Shareable(), st.Public(), st.Backlog(), st.Err())
	}

	subscription.Share(ctx)
	if !st.Shareable() || st.Public() {
		t.Errorf("after Share: shareable %v, public %v; want true, false", st.Shareable(), st.Public())
	}
	subscription.SharePublic(ctx)
	if !st.Shareable() || !st.Public() {
		t.Errorf("after SharePublic: shareable %v, public %v; want true, true", st.Shareable(), st.Public())
	}

	ready := false
	subscription.SetBacklog(ctx, func() bool { return ready })
	if st.Backlog() {
		t.Error("Backlog() = true with nothing ready")
	}
	ready = true
	if !st.Backlog() {
		t.Error("Backlog() = false with events ready")
	}

	first, second := errors.New("too slow"), errors.New("later")
	subscription.End(ctx, nil)
	subscription.End(ctx, first)
	subscription.End(ctx, second)
	if err := st.Err(); !errors.Is(err, first) {
		t.Errorf("Err() = %v, want %v (the first error recorded)", err, first)
	}

	// A context without a State: every call is a no-op.
	bare := context.Background()
	subscription.End(bare, first)
	subscription.Share(bare)
	subscription.SharePublic(bare)
	subscription.SetBacklog(bare, func() bool { return true })
}
