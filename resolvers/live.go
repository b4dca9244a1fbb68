package resolvers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/graph"
	"github.com/obsqra/obsqra/live"
	"github.com/obsqra/obsqra/market"
)

// Hub is what the subscriptions need of the live fan-out (*live.Hub).
type Hub interface {
	Subscribe(ctx context.Context, viewer int64, filter live.Filter, after *int64) (*live.Subscription, error)
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
		return &graph.RiskScoreEvent{Cursor: live.Cursor(e.ID), RiskScore: v}, nil
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
		return &graph.MetricsEvent{Cursor: live.Cursor(e.ID), Metrics: v}, nil
	}), nil
}

// PredictionCreated resolves predictionCreated: market forecasts for
// anyone, and the viewer's own suggestions (the hub never passes another
// user's event).
func (r *subscriptionResolver) PredictionCreated(ctx context.Context, kinds []obsqra.PredictionKind, after *string) (<-chan *graph.PredictionEvent, error) {
	if len(kinds) > 3 {
		return nil, obsqra.Errorf(obsqra.EINVALID, "kinds: at most 3, got %d", len(kinds))
	}
	want := slices.Clone(kinds)
	sub, err := r.subscribeOwn(ctx, false, after, func(e *obsqra.Event) bool {
		if e.Topic != obsqra.TopicPredictionCreated {
			return false
		}
		if len(want) == 0 {
			return true
		}
		var p struct {
			Kind obsqra.PredictionKind `json:"kind"`
		}
		return json.Unmarshal(e.Payload, &p) == nil && slices.Contains(want, p.Kind)
	})
	if err != nil {
		return nil, err
	}
	return stream(ctx, sub, func(e *obsqra.Event) (*graph.PredictionEvent, error) {
		v, err := obsqra.EventValue[obsqra.Prediction](e)
		if err != nil {
			return nil, err
		}
		return &graph.PredictionEvent{Cursor: live.Cursor(e.ID), Prediction: v}, nil
	}), nil
}

// AllocationRecorded resolves allocationRecorded: the viewer's own
// allocations.
func (r *subscriptionResolver) AllocationRecorded(ctx context.Context, after *string) (<-chan *graph.AllocationEvent, error) {
	sub, err := r.subscribeOwn(ctx, true, after, func(e *obsqra.Event) bool {
		return e.Topic == obsqra.TopicAllocationRecorded
	})
	if err != nil {
		return nil, err
	}
	return stream(ctx, sub, func(e *obsqra.Event) (*graph.AllocationEvent, error) {
		v, err := obsqra.EventValue[obsqra.Allocation](e)
		if err != nil {
			return nil, err
		}
		return &graph.AllocationEvent{Cursor: live.Cursor(e.ID), Allocation: v}, nil
	}), nil
}

// subscribeOwn subscribes the viewer to the events filter selects among
// those they may see (public ones and their own); signIn refuses an
// anonymous viewer. Without a cursor the stream is shared by the viewer's
// subscribers asking the same, and by those only: what it carries depends
// on the viewer, so it is never public (a signed-in subscriber joining an
// anonymous stream would miss their own events).
func (r *subscriptionResolver) subscribeOwn(ctx context.Context, signIn bool, after *string, filter live.Filter) (*live.Subscription, error) {
	if err := obsqra.AuthErrorFromContext(ctx); err != nil {
		return nil, err
	}
	viewer := obsqra.UserIDFromContext(ctx)
	if signIn && viewer == 0 {
		return nil, obsqra.Errorf(obsqra.EUNAUTHENTICATED, "sign in first")
	}
	from, err := afterCursor(after)
	if err != nil {
		return nil, err
	}
	if r.Live == nil {
		return nil, errors.New("subscriptions: no live hub is running")
	}
	sub, err := r.Live.Subscribe(ctx, viewer, filter, from)
	if err == nil && from == nil {
		obsqra.ShareStream(ctx)
	}
	return sub, err
}

// afterCursor parses a subscription's after argument.
func afterCursor(after *string) (*int64, error) {
	if after == nil {
		return nil, nil
	}
	id, err := live.ParseCursor(*after)
	if err != nil {
		return nil, obsqra.Errorf(obsqra.EINVALID, "after: %s", obsqra.ErrorMessage(err))
	}
	return &id, nil
}

// subscribe checks a market subscription's arguments and subscribes to the
// events of topic about the given protocols (all when none are given).
func (r *subscriptionResolver) subscribe(ctx context.Context, topic string, protocols []string, after *string) (*live.Subscription, error) {
	if err := obsqra.AuthErrorFromContext(ctx); err != nil {
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
	slugs := slices.Clone(protocols)
	filter := func(e *obsqra.Event) bool {
		if e.Topic != topic {
			return false
		}
		if len(slugs) == 0 {
			return true
		}
		var p struct {
			Protocol string `json:"protocol"`
		}
		return json.Unmarshal(e.Payload, &p) == nil && slices.Contains(slugs, p.Protocol)
	}
	sub, err := r.Live.Subscribe(ctx, obsqra.UserIDFromContext(ctx), filter, from)
	if err == nil && from == nil {
		// From now on only, and market data is the same for every viewer:
		// the transport may run it once for everyone asking the same.
		obsqra.SharePublicStream(ctx)
	}
	return sub, err
}

// stream turns a live subscription into the channel a subscription
// resolver returns: one value per event, converted by convert. The
// subscription's own bounded buffer absorbs bursts; when it overflows, the
// stream ends with RATE_LIMITED naming the cursor to resume after.
func stream[T any](ctx context.Context, sub *live.Subscription, convert func(*obsqra.Event) (*T, error)) <-chan *T {
	// A few converted events may wait, so that the transport can see that
	// more are ready and send a commit's events together.
	out := make(chan *T, streamReadAhead)
	obsqra.SetStreamBacklog(ctx, func() bool { return len(out) > 0 || sub.Waiting() })
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
				obsqra.EndStream(ctx, err)
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
	case errors.Is(err, live.ErrSlowConsumer):
		resume := "subscribe again without after"
		if last > 0 {
			resume = fmt.Sprintf("subscribe again with after: %q", live.Cursor(last))
		}
		obsqra.EndStream(ctx, obsqra.Errorf(obsqra.ERATELIMIT, "events arrived faster than this subscriber read them; %s", resume))
	case errors.Is(err, live.ErrStopped):
		// The server is shutting down: the connection closes with 1001
		// (going away), which tells the client to reconnect and resume.
	default:
		obsqra.EndStream(ctx, err)
	}
}

// dashboardInterval is the least time between two dashboards sent to a
// subscriber.
const dashboardInterval = time.Second

// DashboardUpdated resolves dashboardUpdated: the viewer's dashboard now,
// then again when an event that may change it arrives (a score or sample
// of a held protocol, the viewer's allocation or suggestion, a forecast),
// at most once per dashboardInterval and only when it did change.
func (r *subscriptionResolver) DashboardUpdated(ctx context.Context, windowDays *int) (<-chan *obsqra.Dashboard, error) {
	if _, err := obsqra.RequireUser(ctx); err != nil {
		return nil, err
	}
	w := 7
	if windowDays != nil {
		w = *windowDays
	}
	if r.Live == nil {
		return nil, errors.New("subscriptions: no live hub is running")
	}
	var mu sync.Mutex
	held := map[int64]bool{}
	filter := func(e *obsqra.Event) bool {
		switch e.Topic {
		case obsqra.TopicAllocationRecorded, obsqra.TopicPredictionCreated:
			return true
		case obsqra.TopicRiskScored, obsqra.TopicMetricsIngested:
			var p struct {
				ProtocolID int64 `json:"protocolId"`
			}
			if json.Unmarshal(e.Payload, &p) != nil {
				return false
			}
			mu.Lock()
			defer mu.Unlock()
			return held[p.ProtocolID]
		}
		return false
	}
	// Subscribed before the first dashboard is read, so no change slips
	// between the two.
	sub, err := r.Live.Subscribe(ctx, obsqra.UserIDFromContext(ctx), filter, nil)
	if err != nil {
		return nil, err
	}
	load := func() (*obsqra.Dashboard, []byte, error) {
		d, err := r.Portfolio.Dashboard(ctx, w)
		if err != nil {
			return nil, nil, err
		}
		mu.Lock()
		clear(held)
		for _, p := range d.Protocols {
			held[p.ProtocolID] = true
		}
		mu.Unlock()
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
					obsqra.EndStream(ctx, err)
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
