// The Subscription: one subscriber's queue of events, what it may see,
// and how it ends.

package live

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/obsqra/obsqra"
)

// Subscription is one subscriber's stream of events. Its events wait in a
// queue that holds no memory while empty (a waiting subscription costs a
// few hundred bytes, not its budget), bounded by Options.Buffer and
// Options.Limits.
type Subscription struct {
	h      *Hub
	viewer int64
	filter obsqra.EventFilter
	conn   *obsqra.Client // the connection its queue is charged to
	addr   string         // the address its queue is charged to; "" for none
	max    int
	stop   func()

	ready chan struct{} // signalled when an event is queued or the subscription ends
	space chan struct{} // signalled when the receiver takes an event (the replay waits on it)
	done  chan struct{} // closed by end

	mu       sync.Mutex
	queue    []*obsqra.Event // events for the receiver, in order
	queued   int64           // the bytes of queue, as Cost counts them
	reserved int64           // bytes a replay charged for a page it is reading (see reserve)
	direct   bool            // the hub queues live events itself (the replay is over)
	seen     int64           // events up to this id are not to be queued (again)
	// liveAfter: the events after this id were queued by the hub as they
	// came (their delivery lag is observed), those up to it replayed.
	liveAfter int64
	err       error
	ended     bool
}

// Ready returns a channel that receives when events are waiting or the
// subscription has ended: the receiver then calls Take until it reports
// none. Every subscriber of an event receives the same *Event: it must not
// be modified.
func (s *Subscription) Ready() <-chan struct{} { return s.ready }

// Take returns the next waiting event, or nil when none is; open is false
// once the subscription has ended and every event queued before has been
// taken (Err then says why).
func (s *Subscription) Take() (e *obsqra.Event, open bool) {
	s.mu.Lock()
	if len(s.queue) == 0 {
		open = !s.ended
		s.mu.Unlock()
		return nil, open
	}
	e = s.queue[0]
	s.queue[0] = nil
	s.queue = s.queue[1:]
	if len(s.queue) == 0 {
		s.queue = nil // an idle subscription holds no queue
	}
	s.releaseLocked(Cost(e))
	signal(s.space)
	live := e.ID > s.liveAfter
	s.mu.Unlock()
	if live {
		s.h.opts.Observer.EventDelivered(time.Since(e.CreatedAt))
	}
	return e, true
}

// Next returns the next event, waiting for it; ok is false when the
// subscription has ended (Err says why) or ctx is done.
func (s *Subscription) Next(ctx context.Context) (e *obsqra.Event, ok bool) {
	for {
		e, open := s.Take()
		if e != nil || !open {
			return e, e != nil
		}
		select {
		case <-s.ready:
		case <-ctx.Done():
			return nil, false
		}
	}
}

// Waiting reports whether an event is waiting to be taken.
func (s *Subscription) Waiting() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue) > 0
}

// Err returns why the subscription ended: ErrSlowConsumer, ErrStopped,
// the context's error, or a read error during replay; nil while it runs.
func (s *Subscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Close ends the subscription and drops the events still waiting.
func (s *Subscription) Close() {
	s.stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.endLocked(context.Canceled)
	s.dropLocked()
}

// visible reports whether the viewer may see e and the filter wants it.
func (s *Subscription) visible(e *obsqra.Event) bool {
	if e.OwnerID != 0 && e.OwnerID != s.viewer {
		return false
	}
	return s.filter.Match(e)
}

// signal wakes the one waiting on c, if any; a signal already pending
// stands for both.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// deliver is called by the hub, under its lock, for every new event.
func (s *Subscription) deliver(e *obsqra.Event) {
	if !s.visible(e) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended || !s.direct || e.ID <= s.seen {
		return
	}
	if len(s.queue) >= s.max {
		s.endLocked(ErrSlowConsumer)
		return
	}
	if ok, _ := s.reserveLocked(Cost(e), false); !ok {
		s.endLocked(ErrSlowConsumer)
		return
	}
	s.queue = append(s.queue, e)
	s.seen = e.ID
	signal(s.ready)
}

// end ends the subscription with err (the first reason wins).
func (s *Subscription) end(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.endLocked(err)
}

// endLocked ends the subscription with err. The events waiting stay for
// the receiver of a slow consumer, which takes them before it learns why
// the stream ended; otherwise no one will take them.
func (s *Subscription) endLocked(err error) {
	if s.ended {
		return
	}
	s.ended, s.err = true, err
	close(s.done)
	signal(s.ready)
	if errors.Is(err, ErrSlowConsumer) {
		s.h.opts.Observer.SubscriptionTooSlow()
	} else {
		s.dropLocked()
	}
	s.h.acct.uncount(s)
}

// dropLocked drops the events waiting and releases their bytes.
func (s *Subscription) dropLocked() {
	clear(s.queue)
	s.queue = nil
	s.releaseLocked(s.queued)
	if s.reserved > 0 {
		s.releaseAcctLocked(s.reserved)
		s.reserved = 0
	}
}
