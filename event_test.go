package obsqra_test

import (
	"encoding/base64"
	"sync"
	"testing"

	"github.com/obsqra/obsqra"
)

func TestEventCursorRoundTrip(t *testing.T) {
	t.Parallel()
	for _, id := range []int64{0, 1, 42, 1 << 62} {
		got, err := obsqra.ParseEventCursor(obsqra.EventCursor(id))
		if err != nil || got != id {
			t.Errorf("ParseEventCursor(EventCursor(%d)) = %d, %v", id, got, err)
		}
	}
	if got, want := obsqra.EventCursor(0), "ZXY6MA"; got != want {
		t.Errorf("EventCursor(0) = %q, want %q (the cursors clients hold)", got, want)
	}
	enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	for _, bad := range []string{"", "42", "ev:42", enc("ev:"), enc("ev:-1"), enc("ev:+1"), enc("ev:01"), enc("xx:1"), enc("ev:1 "), obsqra.EventCursor(5) + "="} {
		if _, err := obsqra.ParseEventCursor(bad); obsqra.ErrorCode(err) != obsqra.EINVALID {
			t.Errorf("ParseEventCursor(%q) error = %v, want EINVALID", bad, err)
		}
	}
}

func TestEventFilterMatch(t *testing.T) {
	t.Parallel()
	risk := func(protocol int64) *obsqra.Event {
		return &obsqra.Event{Topic: obsqra.TopicRiskScored, ProtocolID: protocol}
	}
	forecast := &obsqra.Event{Topic: obsqra.TopicPredictionCreated, ProtocolID: 3, Kind: string(obsqra.PredictionYieldForecast)}
	held := obsqra.NewProtocolSet(3, 1, 3)
	for _, c := range []struct {
		name   string
		filter obsqra.EventFilter
		event  *obsqra.Event
		want   bool
	}{
		{"zero filter", obsqra.EventFilter{}, risk(1), true},
		{"topic", obsqra.EventFilter{Rules: []obsqra.EventRule{{Topic: obsqra.TopicRiskScored}}}, risk(7), true},
		{"other topic", obsqra.EventFilter{Rules: []obsqra.EventRule{{Topic: obsqra.TopicMetricsIngested}}}, risk(7), false},
		{"held protocol", obsqra.EventFilter{Rules: []obsqra.EventRule{{Topic: obsqra.TopicRiskScored, Protocols: held}}}, risk(1), true},
		{"protocol not held", obsqra.EventFilter{Rules: []obsqra.EventRule{{Topic: obsqra.TopicRiskScored, Protocols: held}}}, risk(2), false},
		{"empty set", obsqra.EventFilter{Rules: []obsqra.EventRule{{Topic: obsqra.TopicRiskScored, Protocols: obsqra.NewProtocolSet()}}}, risk(0), false},
		{"kind", obsqra.EventFilter{Rules: []obsqra.EventRule{{Topic: obsqra.TopicPredictionCreated, Kinds: []string{"RISK_FORECAST", "YIELD_FORECAST"}}}}, forecast, true},
		{"other kind", obsqra.EventFilter{Rules: []obsqra.EventRule{{Topic: obsqra.TopicPredictionCreated, Kinds: []string{"RISK_FORECAST"}}}}, forecast, false},
		{"second rule", obsqra.EventFilter{Rules: []obsqra.EventRule{{Topic: obsqra.TopicRiskScored}, {Topic: obsqra.TopicPredictionCreated}}}, forecast, true},
	} {
		if got := c.filter.Match(c.event); got != c.want {
			t.Errorf("%s: Match(%+v) = %v, want %v", c.name, c.event, got, c.want)
		}
	}
	held.Replace([]int64{2})
	if f := (obsqra.EventFilter{Rules: []obsqra.EventRule{{Topic: obsqra.TopicRiskScored, Protocols: held}}}); !f.Match(risk(2)) || f.Match(risk(1)) {
		t.Errorf("after Replace([2]) the filter does not follow the set")
	}
}

// TestEventValueDecodesOnce: the copies of an event read from the outbox
// share one decoded value, whichever goroutine asks first.
func TestEventValueDecodesOnce(t *testing.T) {
	t.Parallel()
	made, err := obsqra.RiskScoredEvent("vesu", &obsqra.RiskScore{ID: 7, ProtocolID: 4, Score: 42})
	if err != nil {
		t.Fatal(err)
	}
	if made.ProtocolID != 4 || made.OwnerID != 0 {
		t.Errorf("RiskScoredEvent keys = protocol %d, owner %d, want 4, 0", made.ProtocolID, made.OwnerID)
	}
	var read obsqra.Event
	read.Topic = made.Topic
	read.SetPayload(made.Payload)
	copies := []obsqra.Event{read, read}
	var wg sync.WaitGroup
	got := make([]*obsqra.RiskScore, 8)
	for i := range got {
		wg.Go(func() {
			got[i], _ = obsqra.EventValue[obsqra.RiskScore](&copies[i%2])
		})
	}
	wg.Wait()
	for i, r := range got {
		if r == nil || r != got[0] || r.Score != 42 || r.ProtocolID != 4 {
			t.Fatalf("value %d = %p %+v, want the one shared score 42 of protocol 4", i, r, r)
		}
	}
	if _, err := obsqra.EventValue[obsqra.Allocation](&read); err == nil {
		t.Errorf("EventValue[Allocation] of a risk event = nil error, want one")
	}
}
