package obsqra_test

import (
	"encoding/base64"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

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

// TestEventShareValue: an event read twice shares its first reading's
// decoded payload, and only the same event's.
func TestEventShareValue(t *testing.T) {
	t.Parallel()
	made, err := obsqra.RiskScoredEvent("vesu", &obsqra.RiskScore{ID: 7, ProtocolID: 4, Score: 42})
	if err != nil {
		t.Fatal(err)
	}
	read := func(id int64) *obsqra.Event {
		e := &obsqra.Event{ID: id, Topic: made.Topic}
		e.SetPayload(made.Payload)
		return e
	}
	first, again, other := read(9), read(9), read(10)
	v, _ := obsqra.EventValue[obsqra.RiskScore](first)
	if !again.ShareValue(first) {
		t.Fatal("ShareValue of the same event = false")
	}
	if w, _ := obsqra.EventValue[obsqra.RiskScore](again); w != v {
		t.Errorf("after ShareValue: decoded again (%p, not %p)", w, v)
	}
	if other.ShareValue(first) {
		t.Error("ShareValue of another event's reading = true")
	}
	if w, _ := obsqra.EventValue[obsqra.RiskScore](other); w == v {
		t.Error("another event holds the first one's value")
	}
	if (&obsqra.Event{ID: 9, Topic: made.Topic, Payload: made.Payload}).ShareValue(first) {
		t.Error("ShareValue of an event not read with SetPayload = true")
	}
}

// TestEventPayloadKeys: the catalogue writes the payloads the outbox has
// always held, key for key (the mirror structs the services had are gone;
// the domain types' JSON tags stand for them), and nothing more: a
// sample's staleness, a prediction's outcome and the watcher's last check
// are not part of an event.
func TestEventPayloadKeys(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	tvl := obsqra.MustDecimal("12.5")
	fail, block, emitted, exec := "boom", int64(7), 3, obsqra.ExecReverted
	metrics, _ := obsqra.MetricsIngestedEvent("vesu", &obsqra.MetricsSample{ID: 1, ProtocolID: 4, TvlUsd: &tvl, Stale: true, ObservedAt: now})
	risk, _ := obsqra.RiskScoredEvent("vesu", &obsqra.RiskScore{ID: 2, ProtocolID: 4})
	actual := 1.5
	pred, _ := obsqra.PredictionCreatedEvent(&obsqra.Prediction{ID: 3, Kind: obsqra.PredictionRebalanceSuggestion, UserID: 9,
		DecisionID: 5, Details: obsqra.JSONObject(`{"plan":{}}`), Actual: &actual, Error: &actual, ScoredAt: &now})
	alloc, _ := obsqra.AllocationRecordedEvent(&obsqra.Allocation{ID: 4, UserID: 9, Weights: []obsqra.Weight{{ProtocolID: 4, WeightBps: 10000}}})
	txn, _ := obsqra.TransactionUpdatedEvent(&obsqra.Transaction{ID: 5, UserID: 9, ExecutionStatus: &exec, FailureReason: &fail,
		BlockNumber: &block, Fee: &obsqra.Fee{Amount: obsqra.MustDecimal("1"), Unit: "FRI"}, EventsEmitted: &emitted, LastCheckedAt: &now})
	for _, c := range []struct {
		e               *obsqra.Event
		owner, protocol int64
		kind            string
		keys            string
	}{
		{metrics, 0, 4, "", "apyBps createdAt id liquidityTier observedAt protocol protocolId source tvlUsd utilizationBps volatilityBps"},
		{risk, 0, 4, "", "components computedAt decisionId id inputs modelVersion observedAt paramsVersion protocol protocolId sampleId score"},
		{pred, 9, 0, "REBALANCE_SUGGESTION", "confidence createdAt decisionId details horizonDays id inputsDigest kind last lower80 lower95 model modelVersion origin point target tolerance upper80 upper95 userId windowEnd windowStart"},
		{alloc, 9, 0, "", "createdAt id reason userId weights"},
		{txn, 9, 0, "", "amount blockNumber createdAt eventsEmitted executionStatus failureReason fee id status token txHash type updatedAt userId"},
	} {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(c.e.Payload, &m); err != nil {
			t.Fatalf("%s payload %s: %v", c.e.Topic, c.e.Payload, err)
		}
		keys := slices.Sorted(maps.Keys(m))
		if got := strings.Join(keys, " "); got != c.keys {
			t.Errorf("%s payload keys = %s, want %s", c.e.Topic, got, c.keys)
		}
		if c.e.OwnerID != c.owner || c.e.ProtocolID != c.protocol || c.e.Kind != c.kind {
			t.Errorf("%s keys = owner %d, protocol %d, kind %q, want %d, %d, %q", c.e.Topic, c.e.OwnerID, c.e.ProtocolID, c.e.Kind, c.owner, c.protocol, c.kind)
		}
	}
	if !strings.Contains(string(txn.Payload), `"fee":{"amount":"1","unit":"FRI"}`) {
		t.Errorf("transaction payload %s, want its fee as {amount, unit}", txn.Payload)
	}
}
