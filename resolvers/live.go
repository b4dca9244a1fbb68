package resolvers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

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
	sub, err := r.subscribe(ctx, market.TopicRiskScored, protocols, after)
	if err != nil {
		return nil, err
	}
	return stream(ctx, sub, func(e *obsqra.Event) (*graph.RiskScoreEvent, error) {
		var p market.RiskPayload
		if err := json.Unmarshal(e.Payload, &p); err != nil {
			return nil, fmt.Errorf("decode risk event %d: %w", e.ID, err)
		}
		return &graph.RiskScoreEvent{Cursor: live.Cursor(e.ID), RiskScore: p.RiskScore()}, nil
	}), nil
}

// MetricsUpdated resolves metricsUpdated: market-wide, no sign-in needed.
func (r *subscriptionResolver) MetricsUpdated(ctx context.Context, protocols []string, after *string) (<-chan *graph.MetricsEvent, error) {
	sub, err := r.subscribe(ctx, market.TopicMetricsIngested, protocols, after)
	if err != nil {
		return nil, err
	}
	return stream(ctx, sub, func(e *obsqra.Event) (*graph.MetricsEvent, error) {
		var p market.MetricsPayload
		if err := json.Unmarshal(e.Payload, &p); err != nil {
			return nil, fmt.Errorf("decode metrics event %d: %w", e.ID, err)
		}
		return &graph.MetricsEvent{Cursor: live.Cursor(e.ID), Metrics: p.Sample()}, nil
	}), nil
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
	var from *int64
	if after != nil {
		id, err := live.ParseCursor(*after)
		if err != nil {
			return nil, obsqra.Errorf(obsqra.EINVALID, "after: %s", obsqra.ErrorMessage(err))
		}
		from = &id
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
	out := make(chan *T)
	go func() {
		defer close(out)
		defer sub.Close()
		var last int64
		for {
			select {
			case e, ok := <-sub.C():
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
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

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
