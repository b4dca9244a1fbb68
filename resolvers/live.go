package resolvers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/graph"
	"github.com/obsqra/obsqra/market"
	"github.com/obsqra/obsqra/subscription"
)

// Hub is what the subscriptions need of the live fan-out: *live.Hub
// through HubFunc.
type Hub interface {
	// Subscribe subscribes viewer to the events filter selects by their
	// routing keys, after the event with id *after when after is not nil.
	// A subscription ends with obsqra.ErrSlowSubscriber when its receiver
	// is too slow, obsqra.ErrEventsStopped when the fan-out stops.
	Subscribe(ctx context.Context, viewer int64, filter obsqra.EventFilter, after *int64) (Subscription, error)
}

// Subscription is one subscriber's stream of events (*live.Subscription).
type Subscription interface {
	// Next waits for the next event; false when the stream has ended (Err
	// says why) or ctx is done.
	Next(ctx context.Context) (*obsqra.Event, bool)
	// Ready receives when events are waiting or the stream has ended;
	// Take then returns them one by one, nil when none is left, and open
	// false once the stream has ended.
	Ready() <-chan struct{}
	Take() (e *obsqra.Event, open bool)
	// Waiting reports whether an event is waiting to be taken.
	Waiting() bool
	Err() error
	Close()
}

// HubFunc is a Subscribe method whose subscriptions are of a concrete type
// S, such as (*live.Hub).Subscribe, as a Hub: cmd/obsqra wires
// HubFunc[*live.Subscription](hub.Subscribe).
type HubFunc[S Subscription] func(ctx context.Context, viewer int64, filter obsqra.EventFilter, after *int64) (S, error)

// Subscribe calls f.
func (f HubFunc[S]) Subscribe(ctx context.Context, viewer int64, filter obsqra.EventFilter, after *int64) (Subscription, error) {
	s, err := f(ctx, viewer, filter, after)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// maxSubscribedProtocols bounds the protocols argument of a subscription.
const maxSubscribedProtocols = 100

type subscriptionResolver struct{ *Resolver }

// Subscription returns the resolvers of the Subscription type.
func (r *Resolver) Subscription() graph.SubscriptionResolver { return &subscriptionResolver{r} }

// RiskScoreUpdated resolves riskScoreUpdated: market-wide, no sign-in
// needed.
func (r *subscriptionResolver) RiskScoreUpdated(ctx context.Context, protocols []string, after *string) (<-chan *graph.RiskScoreEvent, error) {
	sub, err := r.subscribe(ctx, obsqra.TopicRiskScored, protocols, after)
	if err != nil {
		return nil, err
	}
	return stream(ctx, sub, func(e *obsqra.Event) (*graph.RiskScoreEvent, error) {
		v, err := obsqra.EventValue[obsqra.RiskScore](e)
		if err != nil {
			return nil, err
		}
		return &graph.RiskScoreEvent{Cursor: obsqra.EventCursor(e.ID), RiskScore: v}, nil
	}), nil
}

// MetricsUpdated resolves metricsUpdated: market-wide, no sign-in needed.
func (r *subscriptionResolver) MetricsUpdated(ctx context.Context, protocols []string, after *string) (<-chan *graph.MetricsEvent, error) {
	sub, err := r.subscribe(ctx, obsqra.TopicMetricsIngested, protocols, after)
	if err != nil {
		return nil, err
	}
	return stream(ctx, sub, func(e *obsqra.Event) (*graph.MetricsEvent, error) {
		v, err := obsqra.EventValue[obsqra.MetricsSample](e)
		if err != nil {
			return nil, err
		}
		return &graph.MetricsEvent{Cursor: obsqra.EventCursor(e.ID), Metrics: v}, nil
	}), nil
}

// PredictionCreated resolves predictionCreated: market forecasts for
// anyone, and the viewer's own suggestions (the hub never passes another
// user's event).
func (r *subscriptionResolver) PredictionCreated(ctx context.Context, kinds []obsqra.PredictionKind, after *string) (<-chan *graph.PredictionEvent, error) {
	if len(kinds) > 3 {
		return nil, obsqra.Errorf(obsqra.EINVALID, "kinds: at most 3, got %d", len(kinds))
	}
	rule := obsqra.EventRule{Topic: obsqra.TopicPredictionCreated}
	for _, k := range kinds {
		rule.Kinds = append(rule.Kinds, string(k))
	}
	sub, err := r.subscribeOwn(ctx, false, after, obsqra.EventFilter{Rules: []obsqra.EventRule{rule}})
	if err != nil {
		return nil, err
	}
	return stream(ctx, sub, func(e *obsqra.Event) (*graph.PredictionEvent, error) {
		v, err := obsqra.EventValue[obsqra.Prediction](e)
		if err != nil {
			return nil, err
		}
		return &graph.PredictionEvent{Cursor: obsqra.EventCursor(e.ID), Prediction: v}, nil
	}), nil
}

// AllocationRecorded resolves allocationRecorded: the viewer's own
// allocations.
func (r *subscriptionResolver) AllocationRecorded(ctx context.Context, after *string) (<-chan *graph.AllocationEvent, error) {
	sub, err := r.subscribeOwn(ctx, true, after, topicFilter(obsqra.TopicAllocationRecorded))
	if err != nil {
		return nil, err
	}
	return stream(ctx, sub, func(e *obsqra.Event) (*graph.AllocationEvent, error) {
		v, err := obsqra.EventValue[obsqra.Allocation](e)
		if err != nil {
			return nil, err
		}
		return &graph.AllocationEvent{Cursor: obsqra.EventCursor(e.ID), Allocation: v}, nil
	}), nil
}

// subscribeOwn subscribes the viewer to the events filter selects among
// those they may see (public ones and their own); signIn refuses an
// anonymous viewer. Without a cursor the stream is shared by the viewer's
// subscribers asking the same, and by those only: what it carries depends
// on the viewer, so it is never public (a signed-in subscriber joining an
// anonymous stream would miss their own events).
func (r *subscriptionResolver) subscribeOwn(ctx context.Context, signIn bool, after *string, filter obsqra.EventFilter) (Subscription, error) {
	u, err := obsqra.Viewer(ctx)
	if err != nil {
		return nil, err
	}
	if signIn && u == nil {
		return nil, obsqra.Errorf(obsqra.EUNAUTHENTICATED, "sign in first")
	}
	from, err := afterCursor(after)
	if err != nil {
		return nil, err
	}
	if r.Live == nil {
		return nil, errors.New("subscriptions: no live hub is running")
	}
	sub, err := r.Live.Subscribe(ctx, userID(u), filter, from)
	if err == nil && from == nil {
		subscription.Share(ctx)
	}
	return sub, err
}

// userID returns the id of u, or 0 (what the hub takes for anonymous)
// when u is nil.
func userID(u *obsqra.User) int64 {
	if u == nil {
		return 0
	}
	return u.ID
}

// afterCursor parses a subscription's after argument.
func afterCursor(after *string) (*int64, error) {
	if after == nil {
		return nil, nil
	}
	id, err := obsqra.ParseEventCursor(*after)
	if err != nil {
		return nil, obsqra.Errorf(obsqra.EINVALID, "after: %s", obsqra.ErrorMessage(err))
	}
	return &id, nil
}

// topicFilter selects the events of topic.
func topicFilter(topic string) obsqra.EventFilter {
	return obsqra.EventFilter{Rules: []obsqra.EventRule{{Topic: topic}}}
}

// subscribe checks a market subscription's arguments and subscribes to the
// events of topic about the given protocols (all when none are given).
func (r *subscriptionResolver) subscribe(ctx context.Context, topic string, protocols []string, after *string) (Subscription, error) {
	u, err := obsqra.Viewer(ctx)
	if err != nil {
		return nil, err
	}
	if len(protocols) > maxSubscribedProtocols {
		return nil, obsqra.Errorf(obsqra.EINVALID, "protocols: at most %d slugs, got %d", maxSubscribedProtocols, len(protocols))
	}
	for _, slug := range protocols {
		if !market.ValidSlug(slug) {
			return nil, obsqra.Errorf(obsqra.EINVALID, "protocols: %q is not a protocol slug", slug)
		}
	}
	from, err := afterCursor(after)
	if err != nil {
		return nil, err
	}
	if r.Live == nil {
		return nil, errors.New("subscriptions: no live hub is running")
	}
	rule := obsqra.EventRule{Topic: topic}
	if len(protocols) > 0 {
		// Events are keyed by protocol id. A slug that names no protocol
		// selects nothing: with only such slugs the set is empty, and
		// selects no event rather than all.
		ids, err := r.protocolIDs(ctx, protocols)
		if err != nil {
			return nil, err
		}
		rule.Protocols = obsqra.NewProtocolSet(ids...)
	}
	filter := obsqra.EventFilter{Rules: []obsqra.EventRule{rule}}
	sub, err := r.Live.Subscribe(ctx, userID(u), filter, from)
	if err == nil && from == nil {
		// From now on only, and market data is the same for every viewer:
		// the transport may run it once for everyone asking the same.
		subscription.SharePublic(ctx)
	}
	return sub, err
}

// protocolIDs returns the ids of the protocols among slugs, from the
// market's snapshot of protocols, and for a slug missing from it (a
// protocol created moments ago) from the table; a slug that names no
// protocol has no id.
func (r *subscriptionResolver) protocolIDs(ctx context.Context, slugs []string) ([]int64, error) {
	byID, err := r.Market.ProtocolsByID(ctx)
	if err != nil {
		return nil, err
	}
	bySlug := make(map[string]int64, len(byID))
	for id, p := range byID {
		bySlug[p.Slug] = id
	}
	ids := make([]int64, 0, len(slugs))
	for _, slug := range slugs {
		if id, ok := bySlug[slug]; ok {
			ids = append(ids, id)
			continue
		}
		p, err := r.Market.Protocol(ctx, slug)
		switch {
		case obsqra.ErrorCode(err) == obsqra.ENOTFOUND:
		case err != nil:
			return nil, err
		default:
			ids = append(ids, p.ID)
		}
	}
	return ids, nil
}

// stream turns a live subscription into the channel a subscription
// resolver returns: one value per event, converted by convert. The
// subscription's own bounded buffer absorbs bursts; when it overflows, the
// stream ends with RATE_LIMITED naming the cursor to resume after.
func stream[T any](ctx context.Context, sub Subscription, convert func(*obsqra.Event) (*T, error)) <-chan *T {
	// A few converted events may wait, so that the transport can see that
	// more are ready and send a commit's events together.
	out := make(chan *T, streamReadAhead)
	subscription.SetBacklog(ctx, func() bool { return len(out) > 0 || sub.Waiting() })
	go func() {
		defer close(out)
		defer sub.Close()
		var last int64
		for {
			e, ok := sub.Next(ctx)
			if !ok {
				endStream(ctx, sub.Err(), last)
				return
			}
			v, err := convert(e)
			if err != nil {
				subscription.End(ctx, err)
				return
			}
			select {
			case out <- v:
				last = e.ID
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

// streamReadAhead is how many converted events a subscription holds ready
// for its transport.
const streamReadAhead = 16

// endStream reports why a subscription ended on its own, if the client did
// not end it.
func endStream(ctx context.Context, err error, last int64) {
	switch {
	case err == nil || ctx.Err() != nil || errors.Is(err, context.Canceled):
	case errors.Is(err, obsqra.ErrSlowSubscriber):
		resume := "subscribe again without after"
		if last > 0 {
			resume = fmt.Sprintf("subscribe again with after: %q", obsqra.EventCursor(last))
		}
		subscription.End(ctx, obsqra.Errorf(obsqra.ERATELIMIT, "events arrived faster than this subscriber read them; %s", resume))
	case errors.Is(err, obsqra.ErrEventsStopped):
		// The server is shutting down: the connection closes with 1001
		// (going away), which tells the client to reconnect and resume.
	default:
		subscription.End(ctx, err)
	}
}

// dashboardInterval is the least time between two dashboards sent to a
// subscriber.
const dashboardInterval = time.Second

// DashboardUpdated resolves dashboardUpdated: the viewer's dashboard now,
// then again when an event that may change it arrives (portfolio's
// DashboardWatch says which), at most once per dashboardInterval and only
// when it did change.
func (r *subscriptionResolver) DashboardUpdated(ctx context.Context, windowDays *int) (<-chan *obsqra.Dashboard, error) {
	p, err := obsqra.RequireUser(ctx)
	if err != nil {
		return nil, err
	}
	w := 7
	if windowDays != nil {
		w = *windowDays
	}
	if r.Live == nil {
		return nil, errors.New("subscriptions: no live hub is running")
	}
	// What can change the dashboard is portfolio's rule; its filter
	// follows the protocols each read holds.
	watch, err := r.Portfolio.WatchDashboard(ctx, w)
	if err != nil {
		return nil, err
	}
	// Subscribed before the first dashboard is read, so no change slips
	// between the two.
	sub, err := r.Live.Subscribe(ctx, p.User.ID, watch.Filter(), nil)
	if err != nil {
		return nil, err
	}
	load := func() (*obsqra.Dashboard, []byte, error) {
		d, err := watch.Dashboard(ctx)
		if err != nil {
			return nil, nil, err
		}
		b, err := json.Marshal(d)
		return d, b, err
	}
	first, last, err := load()
	if err != nil {
		sub.Close()
		return nil, err
	}
	out := make(chan *obsqra.Dashboard)
	go func() {
		defer close(out)
		defer sub.Close()
		send := func(d *obsqra.Dashboard) bool {
			select {
			case out <- d:
				return true
			case <-ctx.Done():
				return false
			}
		}
		if !send(first) {
			return
		}
		sent := time.Now()
		var timer *time.Timer
		var due <-chan time.Time
		defer func() {
			if timer != nil {
				timer.Stop()
			}
		}()
		for {
			select {
			case <-sub.Ready():
				// Which events arrived does not matter: the dashboard is
				// read again.
				for {
					e, open := sub.Take()
					if !open {
						endStream(ctx, sub.Err(), 0)
						return
					}
					if e == nil {
						break
					}
				}
				if due == nil {
					timer = time.NewTimer(max(0, dashboardInterval-time.Since(sent)))
					due = timer.C
				}
			case <-due:
				due = nil
				d, b, err := load()
				if err != nil {
					subscription.End(ctx, err)
					return
				}
				if bytes.Equal(b, last) {
					continue
				}
				if !send(d) {
					return
				}
				last, sent = b, time.Now()
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}
