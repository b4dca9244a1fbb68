package obsqra

import "time"

// Backoff is the jittered exponential wait between the attempts of a
// retry: the clients of the feeds and of the Starknet nodes share it, each
// with its own bounds, so that both wait alike.
type Backoff struct {
	// Base is the wait after the first failure, before jitter; it doubles
	// after each later one.
	Base time.Duration
	// Max caps the doubled wait, before jitter.
	Max time.Duration
}

// Delay returns the wait after the attempt-th failure (1 for the first):
// Base doubled attempt-1 times and capped at Max, then drawn uniformly from
// the upper half of that by rnd, a uniform number in [0, 1) (callers inject
// it so that tests are deterministic). An attempt below 1 counts as 1. A
// doubling that overflows, or a Base that is not positive, yields Max.
func (b Backoff) Delay(attempt int, rnd func() float64) time.Duration {
	attempt = max(attempt, 1)
	d := b.Max
	if attempt-1 < 32 {
		if s := b.Base << (attempt - 1); s > 0 && s < d {
			d = s
		}
	}
	half := d / 2
	return half + time.Duration(rnd()*float64(d-half))
}
