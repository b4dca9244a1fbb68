package scheduler

import "time"

// Clock is the scheduler's time: when jobs are due, when runs time out and
// when leadership is checked. The default is the system clock; tests use a
// clock they advance by hand.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// NewTimer returns a timer that fires once, d from now.
	NewTimer(d time.Duration) Timer
}

// Timer is a one-shot timer of a Clock.
type Timer interface {
	// C returns the channel on which the timer sends once when it fires.
	C() <-chan time.Time
	// Stop keeps the timer from firing. It reports false when the timer had
	// already fired or been stopped.
	Stop() bool
}

// systemClock is the Clock of time.Now and time.NewTimer.
type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) NewTimer(d time.Duration) Timer { return systemTimer{time.NewTimer(d)} }

type systemTimer struct{ t *time.Timer }

func (t systemTimer) C() <-chan time.Time { return t.t.C }

func (t systemTimer) Stop() bool { return t.t.Stop() }
