// The byte budgets and counts every subscription is charged against: its
// own, its connection's, its address's, the hub's, and its user's
// subscriptions.

package live

import (
	"sync"

	"github.com/obsqra/obsqra"
)

// accounts are the bytes charged to connections, addresses and the hub,
// and the subscriptions of each user. Its lock is taken last, under the
// hub's and a subscription's. An entry is deleted when it reaches zero, so
// the maps hold only what is in use.
type accounts struct {
	mu    sync.Mutex
	total usage
	conns map[*obsqra.Client]*usage
	addrs map[string]*usage
	users map[int64]int
	// addrSubs counts the subscriptions of each client address; subs all
	// of them.
	addrSubs map[string]int
	subs     int
}

// usage is the bytes charged to one level; room, made when a replay waits
// for it, is closed when bytes are released.
type usage struct {
	bytes int64
	room  chan struct{}
}

// wait returns the channel closed when u next releases bytes.
func (u *usage) wait() <-chan struct{} {
	if u.room == nil {
		u.room = make(chan struct{})
	}
	return u.room
}

func (u *usage) release(n int64) {
	u.bytes -= n
	if u.room != nil {
		close(u.room)
		u.room = nil
	}
}

// fits reports whether cost more bytes keep used within limit; a replay
// may fill only half of it (see Limits). An event alone in an empty level
// always fits.
func fits(used, cost, limit int64, replay bool) bool {
	if used == 0 {
		return true
	}
	if replay {
		limit /= 2
	}
	return used+cost <= limit
}

// reserveLocked charges cost to s, its connection, its address and the
// hub if every budget has room (a replay's room, or a live event's; see
// Limits). Otherwise it charges nothing and returns a channel that
// receives when the level that refused releases bytes. Called with s.mu
// held.
func (s *Subscription) reserveLocked(cost int64, replay bool) (ok bool, wait <-chan struct{}) {
	lim := &s.h.opts.Limits
	if !fits(s.queued, cost, lim.Subscription, replay) {
		return false, s.space
	}
	a := &s.h.acct
	a.mu.Lock()
	defer a.mu.Unlock()
	conn := a.conns[s.conn]
	if conn != nil && !fits(conn.bytes, cost, lim.Connection, replay) {
		return false, conn.wait()
	}
	var addr *usage
	if s.addr != "" {
		addr = a.addrs[s.addr]
		if addr != nil && !fits(addr.bytes, cost, lim.Address, replay) {
			return false, addr.wait()
		}
	}
	if !fits(a.total.bytes, cost, lim.Total, replay) {
		return false, a.total.wait()
	}
	s.chargeAcctLocked(cost)
	s.queued += cost
	return true, nil
}

// chargeAcctLocked charges n bytes to s's connection, address and the hub,
// whatever their limits. Called with s.mu and the accounts' lock held.
func (s *Subscription) chargeAcctLocked(n int64) {
	a := &s.h.acct
	conn := a.conns[s.conn]
	if conn == nil {
		conn = &usage{}
		a.conns[s.conn] = conn
	}
	conn.bytes += n
	if s.addr != "" {
		addr := a.addrs[s.addr]
		if addr == nil {
			addr = &usage{}
			a.addrs[s.addr] = addr
		}
		addr.bytes += n
	}
	a.total.bytes += n
}

// releaseLocked gives back n bytes of s's queue, waking the replays
// waiting for them. Called with s.mu held.
func (s *Subscription) releaseLocked(n int64) {
	if n == 0 {
		return
	}
	s.queued -= n
	s.releaseAcctLocked(n)
}

// releaseAcctLocked gives back n bytes charged to s's connection, address
// and the hub. Called with s.mu held.
func (s *Subscription) releaseAcctLocked(n int64) {
	a := &s.h.acct
	a.mu.Lock()
	defer a.mu.Unlock()
	if conn := a.conns[s.conn]; conn != nil {
		if conn.release(n); conn.bytes == 0 {
			delete(a.conns, s.conn)
		}
	}
	if addr := a.addrs[s.addr]; addr != nil {
		if addr.release(n); addr.bytes == 0 {
			delete(a.addrs, s.addr)
		}
	}
	a.total.release(n)
}

// count counts s against the subscriptions of its user, its address and
// the hub, or returns ERATELIMIT naming the limit it would pass.
func (a *accounts) count(s *Subscription, lim *Limits) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case s.viewer != 0 && a.users[s.viewer] >= lim.SubscriptionsPerUser:
		return obsqra.Errorf(obsqra.ERATELIMIT, "at most %d subscriptions per user; end one first", lim.SubscriptionsPerUser)
	case s.addr != "" && a.addrSubs[s.addr] >= lim.SubscriptionsPerAddress:
		return obsqra.Errorf(obsqra.ERATELIMIT, "at most %d subscriptions from one address; end one first", lim.SubscriptionsPerAddress)
	case a.subs >= lim.Subscriptions:
		return obsqra.Errorf(obsqra.ERATELIMIT, "the server holds as many subscriptions as it may (%d); try again later", lim.Subscriptions)
	}
	if s.viewer != 0 {
		a.users[s.viewer]++
	}
	if s.addr != "" {
		a.addrSubs[s.addr]++
	}
	a.subs++
	return nil
}

// uncount gives back what count counted for s.
func (a *accounts) uncount(s *Subscription) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if s.viewer != 0 {
		if a.users[s.viewer]--; a.users[s.viewer] <= 0 {
			delete(a.users, s.viewer)
		}
	}
	if s.addr != "" {
		if a.addrSubs[s.addr]--; a.addrSubs[s.addr] <= 0 {
			delete(a.addrSubs, s.addr)
		}
	}
	a.subs--
}
