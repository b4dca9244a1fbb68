package main

import (
	"log/slog"
	"testing"

	"github.com/obsqra/obsqra/config"
	"github.com/obsqra/obsqra/live"
)

// TestLiveOptions: the hub gets the configured limits, and configuration's
// defaults are the hub's own (documented in live.Limits).
func TestLiveOptions(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	want := live.Limits{
		Subscription: live.DefaultSubscriptionBytes, Connection: live.DefaultConnectionBytes,
		Address: live.DefaultAddressBytes, Total: live.DefaultTotalBytes,
		SubscriptionsPerUser: live.DefaultSubscriptionsPerUser,

		SubscriptionsPerAddress: live.DefaultSubscriptionsPerAddress,
		Subscriptions:           live.DefaultSubscriptions,
	}
	if got := liveOptions(cfg, slog.Default()).Limits; got != want {
		t.Errorf("default limits %+v, want live's defaults %+v", got, want)
	}
	cfg, err = config.Load(func(k string) string {
		return map[string]string{"LIVE_CONNECTION_BUFFER_BYTES": "4096", "LIVE_SUBSCRIPTIONS_PER_USER": "3"}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := liveOptions(cfg, slog.Default()).Limits; got.Connection != 4096 || got.SubscriptionsPerUser != 3 {
		t.Errorf("configured limits %+v, want Connection 4096 and SubscriptionsPerUser 3", got)
	}
}
