package server

import (
	"context"
	"sync"
	"time"

	"github.com/obsqra/obsqra"
)

// Rechecks of the sockets of a user whose account changed.
const (
	// recheckTimeout bounds the checks of one user's sockets.
	recheckTimeout = 5 * time.Second
	// recheckRetry is how long a check that could not be made (the
	// database did not answer) waits before it is tried again.
	recheckRetry = time.Second
)

// accountRechecks runs at most one recheck per user at a time: a change
// heard while one runs makes it run once more, however many arrive.
type accountRechecks struct {
	mu sync.Mutex
	// users holds the users whose recheck is running; true when it must
	// run again once it is done.
	users map[int64]bool
}

// Observe lets the server act on an event of the outbox, as every instance
// hears it (live.Hub.OnEvent calls it for each one). On an
// obsqra.TopicAccountChanged event, the sessions or the standing of its
// user may have changed: the WebSockets the user signed in are checked
// again, at once and off the caller's goroutine. Those whose session ended
// or whose user is no longer active are closed with 4403 and the reason;
// the others take the user as they are now (a new role applies to their
// next operation). It never blocks, so the hub may call it while it
// dispatches.
func (s *Server) Observe(e *obsqra.Event) {
	if e.Topic == obsqra.TopicAccountChanged && e.OwnerID != 0 {
		s.accountChanged(e.OwnerID)
	}
}

// accountChanged starts a recheck of userID's sockets, or has the running
// one run again.
func (s *Server) accountChanged(userID int64) {
	r := &s.rechecks
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, running := r.users[userID]; running {
		r.users[userID] = true
		return
	}
	if r.users == nil {
		r.users = make(map[int64]bool)
	}
	r.users[userID] = false
	go s.recheckUser(userID)
}

// recheckUser checks the sockets of userID until no change arrived while
// it did.
func (s *Server) recheckUser(userID int64) {
	r := &s.rechecks
	for {
		if !s.recheckSockets(userID) {
			// Not every check could be made: try again soon, as a new
			// change would.
			s.afterFunc(recheckRetry, func() { s.accountChanged(userID) })
		}
		r.mu.Lock()
		if r.users[userID] {
			r.users[userID] = false
			r.mu.Unlock()
			continue
		}
		delete(r.users, userID)
		r.mu.Unlock()
		return
	}
}

// recheckSockets checks every socket signed in as userID; it reports
// false when a check could not be made.
func (s *Server) recheckSockets(userID int64) bool {
	ctx, cancel := context.WithTimeout(context.Background(), recheckTimeout)
	defer cancel()
	return s.sockets.Recheck(ctx, userID)
}
