package obsqratest

import (
	"sync"
	"time"
)

// Clock is a clock that moves only when the test moves it, with timers
// that fire when it passes them. Its zero value reads the zero time; its
// methods are safe for concurrent use. Hand its Now to what takes a
// func() time.Time.
type Clock struct {
	mu      sync.Mutex
	now     time.Time
	timers  map[*Timer]bool
	changed func()
}

// NewClock returns a clock that reads now.
func NewClock(now time.Time) *Clock {
	return &Clock{now: now}
}

// OnChange makes the clock call f, outside its lock, after every move and
// every new timer, so that a test can wait on what the clock does instead
// of sleeping. Call it before the clock is shared.
func (c *Clock) OnChange(f func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.changed = f
}

// Now returns the clock's reading.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Set moves the clock to t, forward or back, and fires the timers due by
// then.
func (c *Clock) Set(t time.Time) { c.move(func(time.Time) time.Time { return t }) }

// Advance moves the clock d ahead and fires the timers due by then.
func (c *Clock) Advance(d time.Duration) { c.move(func(now time.Time) time.Time { return now.Add(d) }) }

// AdvanceTo moves the clock to t; Set by another name, for a test that
// reads as moving forward.
func (c *Clock) AdvanceTo(t time.Time) { c.Set(t) }

// AddDays moves the clock n calendar days on.
func (c *Clock) AddDays(n int) {
	c.move(func(now time.Time) time.Time { return now.AddDate(0, 0, n) })
}

// move sets the clock to to(now) in one step, so that concurrent moves add
// up, fires the timers due, and then tells the OnChange function.
func (c *Clock) move(to func(now time.Time) time.Time) {
	c.mu.Lock()
	c.now = to(c.now)
	for tm := range c.timers {
		if !tm.at.After(c.now) {
			tm.ch <- c.now
			delete(c.timers, tm)
		}
	}
	f := c.changed
	c.mu.Unlock()
	if f != nil {
		f()
	}
}

// NewTimer returns a timer that fires once the clock has moved d on; at
// once when d <= 0.
func (c *Clock) NewTimer(d time.Duration) *Timer {
	c.mu.Lock()
	tm := &Timer{c: c, at: c.now.Add(d), ch: make(chan time.Time, 1)}
	if d <= 0 {
		tm.ch <- c.now
	} else {
		if c.timers == nil {
			c.timers = map[*Timer]bool{}
		}
		c.timers[tm] = true
	}
	f := c.changed
	c.mu.Unlock()
	if f != nil {
		f()
	}
	return tm
}

// TimersAt returns how many timers wait to fire at t.
func (c *Clock) TimersAt(t time.Time) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for tm := range c.timers {
		if tm.at.Equal(t) {
			n++
		}
	}
	return n
}

// Timer is a one-shot timer of a Clock.
type Timer struct {
	c  *Clock
	at time.Time
	ch chan time.Time
}

// C returns the channel on which the timer sends the clock's reading once
// it fires.
func (t *Timer) C() <-chan time.Time { return t.ch }

// Stop keeps the timer from firing. It reports false when the timer had
// already fired or been stopped.
func (t *Timer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	pending := t.c.timers[t]
	delete(t.c.timers, t)
	return pending
}
