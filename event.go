package obsqra

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Event is one row of the transactional outbox: a change as of the commit
// that made it. Events are appended in the same unit of work as the change
// and read back in id order by the live fan-out (and by subscribers resuming
// from a cursor).
//
// Besides its payload, an event carries routing keys (OwnerID, ProtocolID,
// Kind), stored in columns of their own, so that the fan-out can choose its
// subscribers (see EventFilter) without decoding the payload. The
// constructors of the catalogue below set them with the payload.
type Event struct {
	// ID grows with commit order: a reader that remembers the last id it saw
	// never skips an event.
	ID int64
	// Topic names what happened, e.g. "allocation.recorded" (the Topic
	// constants below).
	Topic string
	// OwnerID is the user who may see the event, or 0 for a public event.
	OwnerID int64
	// ProtocolID is the protocol the event is about, or 0 for none (an
	// allocation, a suggestion, a transaction).
	ProtocolID int64
	// Kind is what kind of its topic the event is: a prediction's kind
	// (PredictionKind) for TopicPredictionCreated, "" otherwise.
	Kind string
	// Payload is the event's JSON object as of the commit.
	Payload json.RawMessage
	// CreatedAt is when the event was appended.
	CreatedAt time.Time
	// TraceParent is the W3C traceparent of the span the event was
	// appended in ("00-" trace id "-" span id "-" flags), or "" when it
	// was appended outside a trace. The hub links the span of the
	// event's delivery to it, on whichever instance delivers it.
	TraceParent string

	// value is Payload decoded, shared by the copies of the event; nil
	// until SetPayload (see Value).
	value *eventValue
}

// eventValue is an event's payload decoded once.
type eventValue struct {
	once sync.Once
	v    any
	err  error
}

// SetPayload sets e's payload and makes e ready to share its decoded value:
// Value then decodes the payload at most once for e and all its copies,
// however many goroutines ask. A reader of the outbox calls it for every
// event it reads.
func (e *Event) SetPayload(p json.RawMessage) {
	e.Payload = p
	e.value = &eventValue{}
}

// ShareValue makes e share o's decoded payload when both are the same
// event (same id and topic) read with SetPayload: whichever of them is
// decoded first is decoded for both, so a reader that reads an event again
// (a replay) need not decode it again. It reports whether it did.
func (e *Event) ShareValue(o *Event) bool {
	if e.ID != o.ID || e.Topic != o.Topic || e.value == nil || o.value == nil {
		return false
	}
	e.value = o.value
	return true
}

// Value returns e's payload decoded as the type its topic has in the
// catalogue (*RiskScore for TopicRiskScored, and so on). After SetPayload
// it decodes once, and every caller, on any goroutine, receives the same
// value, which must not be modified; an event made otherwise is decoded
// at each call.
// Errors: for a topic the catalogue does not hold, or a payload that does
// not decode.
func (e *Event) Value() (any, error) {
	if e.value == nil {
		return decodeEvent(e.Topic, e.Payload)
	}
	e.value.once.Do(func() { e.value.v, e.value.err = decodeEvent(e.Topic, e.Payload) })
	return e.value.v, e.value.err
}

// EventValue returns e's decoded payload (see Event.Value) as a *T.
// Errors: those of Value; when e's topic does not carry a T.
func EventValue[T any](e *Event) (*T, error) {
	v, err := e.Value()
	if err != nil {
		return nil, err
	}
	t, ok := v.(*T)
	if !ok {
		return nil, fmt.Errorf("event %d: topic %q carries %T, not %T", e.ID, e.Topic, v, t)
	}
	return t, nil
}

// The catalogue: every topic of the outbox with its payload, a domain type
// whose JSON form is the payload, and its routing keys. Payloads already
// stored keep decoding: the types' JSON tags are the names the payloads
// have always had.
const (
	// TopicMetricsIngested carries a new metrics sample (*MetricsSample),
	// public, keyed by its protocol.
	TopicMetricsIngested = "metrics.ingested"
	// TopicRiskScored carries a new risk score (*RiskScore), public, keyed
	// by its protocol.
	TopicRiskScored = "risk.scored"
	// TopicPredictionCreated carries a new prediction (*Prediction), keyed
	// by its kind and protocol. Market forecasts are public; a rebalance
	// suggestion belongs to its user.
	TopicPredictionCreated = "prediction.created"
	// TopicAllocationRecorded carries a new allocation (*Allocation) to its
	// user.
	TopicAllocationRecorded = "allocation.recorded"
	// TopicTransactionUpdated carries a transaction (*Transaction), as of
	// the commit, to its user.
	TopicTransactionUpdated = "transaction.updated"
)

// TopicAccountChanged is the topic of an event appended whenever what a
// user's credentials allow may have changed: a session of theirs ended
// (logout, a reused refresh token, a password change, a deactivation), or
// their role or standing changed. It travels through the outbox like every
// other change, so every instance hears it, and the server then checks the
// user's open sockets against the user and sessions as they are now. It is
// the user's own event (OwnerID) and no subscription of the API selects it.
// Its payload is an *AccountChange.
const TopicAccountChanged = "account.changed"

// TopicMarketChanged is the topic of an event appended whenever the
// market's reference data changed outside ingestion: a protocol was
// created, replaced, enabled or disabled, or new risk parameters were
// activated. It is public and keyed by the protocol it is about (0 for
// risk parameters); no subscription of the API selects it, but every
// instance's read caches follow it (a cached answer that lists protocols
// or shows parameters is stale once it is heard). Its payload is a
// *MarketChange.
const TopicMarketChanged = "market.changed"

// MarketChange is the payload of a TopicMarketChanged event.
type MarketChange struct {
	// What changed: MarketProtocolChanged or MarketRiskParamsChanged.
	What string `json:"what"`
	// ProtocolID is the protocol that changed, 0 for risk parameters.
	ProtocolID int64 `json:"protocolId,omitempty"`
}

// What a MarketChange is about.
const (
	MarketProtocolChanged   = "protocol"
	MarketRiskParamsChanged = "risk_params"
)

// MarketChangedEvent returns the public event saying that the market's
// reference data changed: what, of protocolID (0 for none).
func MarketChangedEvent(what string, protocolID int64) *Event {
	payload, _ := json.Marshal(MarketChange{What: what, ProtocolID: protocolID}) // cannot fail
	return &Event{Topic: TopicMarketChanged, ProtocolID: protocolID, Payload: payload}
}

// catalogue decodes each topic's payload.
var catalogue = map[string]func(json.RawMessage) (any, error){
	TopicMarketChanged:      decodeAs[MarketChange],
	TopicMetricsIngested:    decodeAs[MetricsSample],
	TopicRiskScored:         decodeAs[RiskScore],
	TopicPredictionCreated:  decodeAs[Prediction],
	TopicAllocationRecorded: decodeAs[Allocation],
	TopicTransactionUpdated: decodeAs[Transaction],
	TopicAccountChanged:     decodeAs[AccountChange],
}

func decodeAs[T any](p json.RawMessage) (any, error) {
	v := new(T)
	if err := json.Unmarshal(p, v); err != nil {
		return nil, err
	}
	return v, nil
}

func decodeEvent(topic string, payload json.RawMessage) (any, error) {
	decode, ok := catalogue[topic]
	if !ok {
		return nil, fmt.Errorf("decode event: no payload type for topic %q", topic)
	}
	v, err := decode(payload)
	if err != nil {
		return nil, fmt.Errorf("decode %s event: %w", topic, err)
	}
	return v, nil
}

// newEvent returns the event of topic with v's JSON as payload.
func newEvent(topic string, v any) (*Event, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode %s event: %w", topic, err)
	}
	return &Event{Topic: topic, Payload: b}, nil
}

// MetricsIngestedEvent returns the public event of a stored metrics sample
// m of the protocol with the given slug.
// Errors: only internal ones.
func MetricsIngestedEvent(slug string, m *MetricsSample) (*Event, error) {
	// The payload also names the protocol's slug, as it always has:
	// servers of the previous version, sharing the outbox during a deploy,
	// still filter on it.
	e, err := newEvent(TopicMetricsIngested, struct {
		Protocol string `json:"protocol"`
		*MetricsSample
	}{slug, m})
	if err != nil {
		return nil, err
	}
	e.ProtocolID = m.ProtocolID
	return e, nil
}

// RiskScoredEvent returns the public event of a stored risk score r of
// the protocol with the given slug.
// Errors: only internal ones.
func RiskScoredEvent(slug string, r *RiskScore) (*Event, error) {
	e, err := newEvent(TopicRiskScored, struct {
		Protocol string `json:"protocol"` // see MetricsIngestedEvent
		*RiskScore
	}{slug, r})
	if err != nil {
		return nil, err
	}
	e.ProtocolID = r.ProtocolID
	return e, nil
}

// PredictionCreatedEvent returns the event of a recorded prediction p,
// owned by its user (public when it has none).
// Errors: only internal ones (Details that are not JSON).
func PredictionCreatedEvent(p *Prediction) (*Event, error) {
	e, err := newEvent(TopicPredictionCreated, p)
	if err != nil {
		return nil, err
	}
	e.OwnerID, e.ProtocolID, e.Kind = p.UserID, p.ProtocolID, string(p.Kind)
	return e, nil
}

// AllocationRecordedEvent returns the event of a recorded allocation a,
// owned by its user.
// Errors: only internal ones.
func AllocationRecordedEvent(a *Allocation) (*Event, error) {
	e, err := newEvent(TopicAllocationRecorded, a)
	if err != nil {
		return nil, err
	}
	e.OwnerID = a.UserID
	return e, nil
}

// TransactionUpdatedEvent returns the event of transaction t as it is now,
// owned by its user.
// Errors: only internal ones (Details that are not JSON).
func TransactionUpdatedEvent(t *Transaction) (*Event, error) {
	e, err := newEvent(TopicTransactionUpdated, t)
	if err != nil {
		return nil, err
	}
	e.OwnerID = t.UserID
	return e, nil
}

// AccountChange is the payload of a TopicAccountChanged event.
type AccountChange struct {
	UserID int64 `json:"userId"`
	// Reason is why: one of the Revoke* reasons when sessions ended, or
	// AccountRoleChanged, AccountActivated.
	Reason string `json:"reason"`
}

// Reasons of an AccountChange that ends no session. AccountUpdated is any
// change of the user's row (preferences, profile, password hash, email,
// wallet, verification), appended by the store with the change itself, so
// that every read model keeping the user hears of it.
const (
	AccountRoleChanged = "role_changed"
	AccountActivated   = "activated"
	AccountUpdated     = "updated"
)

// AccountChangedEvent returns the outbox event saying that user's account
// changed for reason.
func AccountChangedEvent(userID int64, reason string) *Event {
	payload, _ := json.Marshal(AccountChange{UserID: userID, Reason: reason}) // cannot fail
	return &Event{Topic: TopicAccountChanged, OwnerID: userID, Payload: payload}
}

// EventFilter selects events by their routing keys, never by their
// payloads: an event matches when one of Rules does. The zero filter has
// no rules and matches every event. Whatever the filter, the live fan-out
// passes a viewer only public events and their own.
type EventFilter struct {
	Rules []EventRule
}

// EventRule selects the events of one topic, optionally only those of
// some protocols or kinds.
type EventRule struct {
	Topic string
	// Protocols, when not nil, keeps only the events whose ProtocolID it
	// contains (an empty set keeps none); nil keeps any protocol.
	Protocols *ProtocolSet
	// Kinds, when not empty, keeps only the events of these kinds.
	Kinds []string
}

// Match reports whether f selects e. It reads only e's keys, and is safe
// for concurrent use.
func (f *EventFilter) Match(e *Event) bool {
	if len(f.Rules) == 0 {
		return true
	}
	for i := range f.Rules {
		if f.Rules[i].match(e) {
			return true
		}
	}
	return false
}

func (r *EventRule) match(e *Event) bool {
	if e.Topic != r.Topic {
		return false
	}
	if r.Protocols != nil && !r.Protocols.Contains(e.ProtocolID) {
		return false
	}
	return len(r.Kinds) == 0 || slices.Contains(r.Kinds, e.Kind)
}

// ProtocolSet is a set of protocol ids that may be replaced while filters
// holding it are matched (the protocols a dashboard holds change when it
// is read again): safe for concurrent use.
type ProtocolSet struct {
	ids atomic.Pointer[[]int64] // sorted
}

// NewProtocolSet returns the set of ids.
func NewProtocolSet(ids ...int64) *ProtocolSet {
	s := &ProtocolSet{}
	s.Replace(ids)
	return s
}

// Replace makes ids the set's members.
func (s *ProtocolSet) Replace(ids []int64) {
	sorted := slices.Clone(ids)
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)
	s.ids.Store(&sorted)
}

// Contains reports whether id is a member of s.
func (s *ProtocolSet) Contains(id int64) bool {
	ids := s.ids.Load()
	if ids == nil {
		return false
	}
	_, ok := slices.BinarySearch(*ids, id)
	return ok
}

// Why a subscription to the outbox ends, besides its context: the live
// fan-out ends subscriptions with them, and the API tells the client.
var (
	// ErrSlowSubscriber: a live event would have taken the subscriber's
	// queue past its bounds. It can resume from the cursor of the last
	// event it received.
	ErrSlowSubscriber = errors.New("live: subscriber too slow, its buffer overflowed; resume from the last cursor")
	// ErrEventsStopped: the fan-out stopped (the server is shutting down).
	ErrEventsStopped = errors.New("live: hub stopped")
)

// eventCursorPrefix marks a subscription cursor, so that another kind of
// opaque string (a connection cursor) is refused rather than misread.
const eventCursorPrefix = "ev:"

// EventCursor returns the opaque cursor of the event with id: what a
// client passes back as `after` to resume after it.
func EventCursor(id int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(eventCursorPrefix + strconv.FormatInt(id, 10)))
}

// ParseEventCursor returns the event id of a cursor made by EventCursor.
// Errors: EINVALID for anything else.
func ParseEventCursor(s string) (int64, error) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil {
		if rest, ok := strings.CutPrefix(string(raw), eventCursorPrefix); ok {
			if id, err := strconv.ParseInt(rest, 10, 64); err == nil && id >= 0 && strconv.FormatInt(id, 10) == rest {
				return id, nil
			}
		}
	}
	return 0, Errorf(EINVALID, "%q is not a subscription cursor", s)
}
