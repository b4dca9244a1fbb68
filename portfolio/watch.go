package portfolio

import (
	"context"

	"github.com/obsqra/obsqra"
)

// DashboardWatch is the rule of which events can change one viewer's
// dashboard: a score or a sample of a protocol the dashboard holds, an
// allocation of the viewer's, a prediction (a forecast, or a suggestion of
// the viewer's; the live fan-out passes a viewer no one else's events).
// The held protocols are those of the dashboard as last read through it.
type DashboardWatch struct {
	s      *Service
	window int
	held   *obsqra.ProtocolSet
	filter obsqra.EventFilter
}

// WatchDashboard returns the watch of the signed-in user's dashboard over
// windowDays. It holds no protocol until its first Dashboard read:
// subscribe with its Filter first, then read, so that no change slips
// between the two.
// Errors: EUNAUTHENTICATED.
func (s *Service) WatchDashboard(ctx context.Context, windowDays int) (*DashboardWatch, error) {
	if _, err := obsqra.RequireUser(ctx); err != nil {
		return nil, err
	}
	held := obsqra.NewProtocolSet()
	return &DashboardWatch{s: s, window: windowDays, held: held, filter: obsqra.EventFilter{Rules: []obsqra.EventRule{
		{Topic: obsqra.TopicAllocationRecorded},
		{Topic: obsqra.TopicPredictionCreated},
		{Topic: obsqra.TopicRiskScored, Protocols: held},
		{Topic: obsqra.TopicMetricsIngested, Protocols: held},
	}}}, nil
}

// Filter selects, by their routing keys, the events that may change the
// dashboard. It follows the protocols held as Dashboard reads them, and is
// safe for concurrent use while it does.
func (w *DashboardWatch) Filter() obsqra.EventFilter { return w.filter }

// Dashboard reads the dashboard again (see Service.Dashboard) and makes
// Filter follow the protocols it holds.
// Errors: those of Service.Dashboard.
func (w *DashboardWatch) Dashboard(ctx context.Context) (*obsqra.Dashboard, error) {
	d, err := w.s.Dashboard(ctx, w.window)
	if err != nil {
		return nil, err
	}
	ids := make([]int64, len(d.Protocols))
	for i, p := range d.Protocols {
		ids[i] = p.ProtocolID
	}
	w.held.Replace(ids)
	return d, nil
}
