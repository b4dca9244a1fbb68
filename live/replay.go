// Replays: a subscription resuming from a cursor reads the outbox page by
// page, paying for each page before it reads it, until it joins the hub's
// live dispatch.

package live

import (
	"context"
	"fmt"
	"sync"

	"github.com/obsqra/obsqra"
)

// replay queues the events after the cursor from the outbox, page by page,
// then hands the stream over to the hub (join). Before it reads a page it
// charges the page's estimated bytes to its budgets, waiting while they have
// no room, so a replay waiting for its receiver holds no event it has not
// paid for: what thousands of replays hold together stays within the
// budgets (plus what a page of unusually large payloads exceeds its
// estimate by). The page's events are then queued against that charge,
// and what is left of it is given back.
func (s *Subscription) replay(ctx context.Context, after int64) {
	h := s.h
	last := after
	estimate := int64(h.opts.ReplayPage) * ReplayEventEstimate
	for {
		if s.join(last, false) {
			return
		}
		if !s.reserve(ctx, estimate, h.opts.ReplayPage) {
			return
		}
		events, err := h.src.EventsAfter(ctx, last, h.opts.ReplayPage)
		if err != nil {
			s.refund(estimate)
			h.remove(s)
			s.end(fmt.Errorf("live: replay: %w", err))
			return
		}
		h.recent.share(events)
		if len(events) == 0 {
			s.refund(estimate)
			// The hub dispatched events that are gone (pruned meanwhile):
			// nothing is left to replay before its position.
			s.join(last, true)
			return
		}
		prepaid := estimate
		for i := range events {
			last = events[i].ID
			if !s.visible(&events[i]) {
				continue
			}
			// A copy: the queue keeps what it paid for, not the page.
			e := events[i]
			prepaid -= Cost(&e)
			if !s.enqueuePaid(&e, max(-prepaid, 0)) {
				return
			}
			prepaid = max(prepaid, 0)
		}
		s.refund(prepaid)
	}
}

// ReplayEventEstimate is what a replay reserves per event of a page before
// reading it: the overhead and a payload of a risk score or a sample with
// room to spare.
const ReplayEventEstimate = EventOverhead + 512

// join hands the subscription over to the hub when the replay has reached
// the last event the hub dispatched (or always, with force), and reports
// whether it did. Under the hub's lock, no event is dispatched between the
// check and the handover: the hub queues exactly the events after
// max(last, its position), so none is missed and none comes twice.
func (s *Subscription) join(last int64, force bool) bool {
	s.h.mu.Lock()
	defer s.h.mu.Unlock()
	if last < s.h.last && !force {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.direct = true
	s.seen = max(last, s.h.last)
	s.liveAfter = s.seen
	return true
}

// reserve charges n bytes to s and its budgets for a page of at most
// count events, waiting while a budget has no room or the queue has no
// slots: a replay goes at its receiver's pace. It reports false when the
// subscription has ended or ctx is done.
func (s *Subscription) reserve(ctx context.Context, n int64, count int) bool {
	s.mu.Lock()
	for {
		if s.ended {
			s.mu.Unlock()
			return false
		}
		wait := (<-chan struct{})(s.space)
		if len(s.queue) == 0 || len(s.queue)+count <= s.max {
			var ok bool
			// Charged as queued to pass the same checks as an event,
			// then held apart as reserved.
			if ok, wait = s.reserveLocked(n, true); ok {
				s.queued -= n
				s.reserved += n
				s.mu.Unlock()
				return true
			}
		}
		s.mu.Unlock()
		if s.h.testReplayWaits != nil {
			s.h.testReplayWaits(s)
		}
		select {
		case <-wait:
		case <-s.done:
		case <-ctx.Done():
			return false // ctx's AfterFunc ends the subscription
		}
		s.mu.Lock()
	}
}

// enqueuePaid queues a replayed event whose cost was reserved, but for
// extra bytes, which are charged now whatever the budgets say (a payload
// larger than the page's estimate). It reports false when the subscription
// has ended (and gives the event's charge back).
func (s *Subscription) enqueuePaid(e *obsqra.Event, extra int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return false // its reservation was given back when it ended
	}
	cost := Cost(e)
	paid := min(cost-extra, s.reserved)
	s.reserved -= paid
	if unpaid := cost - paid; unpaid > 0 {
		a := &s.h.acct
		a.mu.Lock()
		s.chargeAcctLocked(unpaid)
		a.mu.Unlock()
	}
	s.queued += cost
	s.queue = append(s.queue, e)
	signal(s.ready)
	return true
}

// refund gives back up to n reserved bytes a page did not use (none once
// the subscription has ended: ending gave them back).
func (s *Subscription) refund(n int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n = min(n, s.reserved)
	if n <= 0 {
		return
	}
	s.reserved -= n
	s.releaseAcctLocked(n)
	signal(s.space)
}

// recentCount is how many of the latest events the hub keeps to share
// their decoded payloads: a restart's reconnecting clients resume from
// about the same cursors, and a replay's pages are read again by every
// subscription replaying them. At a few hundred bytes of payload and as
// much decoded, it holds a few MiB at most.
const recentCount = 4096

// recentEvents are the latest events the hub's readers read (the
// dispatcher and the replays), by id modulo recentCount, so that an event
// read again shares the decoded payload of its first reading (see
// obsqra.Event.ShareValue): an event's payload is decoded once per
// process while it is among the latest recentCount read, however many
// subscriptions deliver or replay it.
type recentEvents struct {
	mu     sync.Mutex
	events [recentCount]obsqra.Event
}

// share makes each of events share the decoded payload of the same event
// read before, or remembers it for the next reader.
func (r *recentEvents) share(events []obsqra.Event) {
	if len(events) == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range events {
		e := &events[i]
		slot := &r.events[uint64(e.ID)%recentCount]
		if !e.ShareValue(slot) && e.ID >= slot.ID {
			*slot = *e
		}
	}
}
